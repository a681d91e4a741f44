import functools
import http.server
import io
import os
import re
import tarfile
import tempfile
import threading
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from shards import iter_samples, open_corpus, shard_urls
from shards.reader import MAX_MEMBER_BYTES, SkipAndCount, decode_sample, tar_members
from shards.sample import KEY_PATTERN
from tests.memory_probe import peak_traced_bytes
from tests.shards.corpus_factory import write_corpus, write_tar

SHARDS, PER_SHARD = 4, 5


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("corpus")
    samples = write_corpus(str(directory), SHARDS, PER_SHARD)
    return str(directory), samples


def _keys(dataset):
    return [s["__key__"] for s in dataset]


def test_round_trip_decodes_every_sample_in_order(corpus):
    directory, written = corpus
    read = list(iter_samples(directory))
    assert _keys(read) == [s["__key__"] for s in written]
    for sample, original in zip(read, written):
        assert set(sample) == {"__key__", "__url__", "jpg", "json", "txt"}
        assert sample["__url__"].startswith(directory) and sample["__url__"].endswith(".tar")
        assert isinstance(sample["jpg"], Image.Image) and sample["jpg"].mode == "RGB"
        assert sample["jpg"].size == (128, 256)
        assert sample["json"] == original["json"] and sample["txt"] == original["txt"]


def test_undecoded_samples_keep_the_written_bytes(corpus):
    directory, written = corpus
    read = list(open_corpus(directory, decode=False))
    assert [s["jpg"] for s in read] == [s["jpg"] for s in written]


def test_sample_shuffle_is_a_seeded_permutation(corpus):
    directory, written = corpus
    first = _keys(open_corpus(directory, shuffle=8, seed=3))
    assert first == _keys(open_corpus(directory, shuffle=8, seed=3))
    assert sorted(first) == [s["__key__"] for s in written] and first != sorted(first)
    assert first != _keys(open_corpus(directory, shuffle=8, seed=4))


def test_shard_shuffle_changes_shard_order_per_epoch(corpus):
    directory, written = corpus
    dataset = open_corpus(directory, shard_shuffle=True, seed=0, decode=False)
    epochs = [_keys(dataset) for _ in range(3)]
    for keys in epochs:
        assert sorted(keys) == [s["__key__"] for s in written]
    first_keys = {tuple(keys[:PER_SHARD]) for keys in epochs}
    assert len(first_keys) > 1  # at least two epochs started with different shards


def test_brace_pattern_and_url_list_select_shards(corpus):
    directory, written = corpus
    pattern = f"{directory}/synthpedes-{{000001..000002}}.tar"
    expected = [s["__key__"] for s in written[PER_SHARD : 3 * PER_SHARD]]
    assert _keys(open_corpus(pattern, decode=False)) == expected
    urls = shard_urls(pattern)
    assert len(urls) == 2 and _keys(open_corpus(urls, decode=False)) == expected


@pytest.mark.parametrize("shard_shuffle", [False, True])
def test_split_by_node_gives_ranks_disjoint_shards(corpus, monkeypatch, shard_shuffle):
    directory, written = corpus
    monkeypatch.setenv("WORLD_SIZE", "2")
    per_rank = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        per_rank.append(set(_keys(open_corpus(directory, shard_shuffle=shard_shuffle, seed=5, decode=False))))
    assert per_rank[0].isdisjoint(per_rank[1])
    assert len(per_rank[0]) == len(per_rank[1]) == SHARDS // 2 * PER_SHARD
    assert per_rank[0] | per_rank[1] == {s["__key__"] for s in written}


def test_dataloader_workers_share_the_shards_without_overlap(corpus):
    directory, written = corpus
    loader = torch.utils.data.DataLoader(open_corpus(directory, shuffle=4), batch_size=None, num_workers=2)
    keys = [sample["__key__"] for sample in loader]
    assert sorted(keys) == [s["__key__"] for s in written]


def test_batched_pipeline_for_training(corpus):
    directory, _ = corpus
    batches = list(open_corpus(directory, decode=False).batched(8, collation_fn=list, partial=False))
    assert [len(b) for b in batches] == [8, 8]


def test_epoch_size_fixes_the_number_of_samples(corpus, monkeypatch):
    directory, _ = corpus
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    dataset = open_corpus(directory, epoch_size=13, shuffle=4, decode=False)  # more than this rank's 10
    assert len(list(dataset)) == 13 and len(list(dataset)) == 13
    assert len(list(open_corpus(directory, epoch_size=7, resampled=True, decode=False))) == 7


def test_bad_sources_and_options_are_refused(corpus, tmp_path):
    directory, _ = corpus
    with pytest.raises(ValueError, match="not a corpus folder"):
        open_corpus(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="epoch_size"):
        open_corpus(directory, resampled=True)
    with pytest.raises(ValueError, match="shuffle"):
        open_corpus(directory, shuffle=-1)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_streams_shards_over_http(corpus):
    directory, written = corpus
    handler = functools.partial(_QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        keys = _keys(open_corpus(f"{base}/synthpedes-{{000000..000001}}.tar", decode=False))
        assert keys == [s["__key__"] for s in written[: 2 * PER_SHARD]]
        assert len(shard_urls(base)) == SHARDS  # a folder URL is listed through its manifest
    finally:
        server.shutdown()
        server.server_close()


def _raw(corpus, count=3):
    """The first ``count`` raw samples of the corpus (members as bytes)."""
    dataset = open_corpus(corpus[0], decode=False, split_by_node=False, split_by_worker=False)
    return [sample for sample, _ in zip(dataset, range(count))]


def _members(sample, **replace):
    """A raw sample's tar members, with some replaced (a None value leaves the member out)."""
    data = {m: sample[m] for m in ("jpg", "json", "txt")} | replace
    return [(f"{sample['__key__']}.{m}", d) for m, d in data.items() if d is not None]


def _read(shard, handler=None, **options):
    options = {"split_by_node": False, "split_by_worker": False, **options}
    if handler is not None:
        options["handler"] = handler
    return [s["__key__"] for s in open_corpus(shard, **options)]


def _damaged_shard(tmp_path, corpus):
    """Three samples of the corpus: the first with a garbage jpg, the second missing its txt, the third sound."""
    a0, a1, a2 = _raw(corpus)
    return _tar_shard(tmp_path, _members(a0, jpg=b"not a jpeg") + _members(a1, txt=None) + _members(a2)), (a0, a1, a2)


def _tar_shard(tmp_path, members, name="bad-000000.tar"):
    return write_tar(tmp_path / name, members)


def test_a_damaged_member_is_a_one_line_error_naming_shard_and_sample(corpus):
    sound = {**_raw(corpus, 1)[0], "__url__": "s-000007.tar"}
    huge = io.BytesIO()
    Image.new("RGB", (2048, 1025)).save(huge, "JPEG")  # 64x the corpus image: refused from its header
    for damage, message in (
        (dict(jpg=b"not a jpeg"), "damaged jpg member (not a JPEG)"),
        (dict(jpg=huge.getvalue()), "damaged jpg member (image too large: 2048x1025 pixels"),
        (dict(jpg=sound["jpg"][:200]), "damaged jpg member"),
        (dict(json=b'{"key": '), "damaged json member (Expecting value"),
        (dict(json=b"[" * 100_000), "damaged json member"),
        (dict(json=b'{"key": "x"}'), "damaged json member (record 'x': missing field"),
        (dict(txt=b"\xff"), "damaged txt member"),
    ):
        with pytest.raises(ValueError, match=r"^s-000007\.tar: sample 'p00000_000000': ") as error:
            decode_sample({**sound, **damage})
        assert message in str(error.value) and "\n" not in str(error.value)


def test_by_default_a_damaged_sample_stops_the_stream_in_one_line(tmp_path, corpus):
    shard, (a0, _, _) = _damaged_shard(tmp_path, corpus)
    expected = f"{shard}: sample '{a0['__key__']}': damaged jpg member"
    with pytest.raises(ValueError, match="^" + re.escape(expected)) as error:
        _read(shard)
    assert "\n" not in str(error.value)


def test_skip_and_count_handler_keeps_the_good_samples_and_counts_the_rest(tmp_path, corpus):
    handler = SkipAndCount()
    shard, (a0, a1, a2) = _damaged_shard(tmp_path, corpus)
    assert _read(shard, handler) == [a2["__key__"]] and handler.skipped == 2
    assert handler.reasons == [
        f"{shard}: sample {a0['__key__']!r}: damaged jpg member (not a JPEG); run `spac shards verify`",
        f"{shard}: sample {a1['__key__']!r}: no 'txt' member",
    ]


def test_skip_and_count_also_skips_an_unreadable_or_missing_shard(tmp_path, corpus):
    truncated = tmp_path / "cut-000000.tar"
    truncated.write_bytes(b"\x00garbage" * 100)
    handler = SkipAndCount()
    urls = [str(truncated), str(tmp_path / "gone-000000.tar"), *shard_urls(corpus[0])]
    assert len(_read(urls, handler, decode=False)) == SHARDS * PER_SHARD and handler.skipped == 2
    assert handler.reasons[0].startswith(f"{truncated}: unreadable tar at its start (")
    assert handler.reasons[1].startswith(f"{tmp_path / 'gone-000000.tar'}: cannot open the shard (")


@pytest.mark.parametrize(
    "name",
    [
        "../evil.jpg",
        "/etc/x",
        "/etc/x.jpg",
        "a/b.jpg",
        "k y.jpg",
        "k.cls",
        "k",
        "k.jpg.bak",
        ".jpg",
        "k.JPG",
        "k" * 91 + ".jpg",
        "k\n.jpg",
        "k.jpg\n",
    ],
)
def test_member_names_outside_the_sample_format_are_refused_never_yielded(tmp_path, corpus, name):
    (good,) = _raw(corpus, 1)
    shard = _tar_shard(tmp_path, [(name, b"x")] + _members(good))
    with pytest.raises(ValueError, match="^" + re.escape(f"{shard}: member {name!r}: not a sample member: ")) as error:
        _read(shard, decode=False)
    assert "\n" not in str(error.value)
    handler = SkipAndCount()
    assert _read(shard, handler) == [good["__key__"]] and handler.skipped == 1


def test_a_bad_member_inside_a_sample_drops_that_sample_once(tmp_path, corpus):
    a0, a1, a2 = _raw(corpus)
    link = tarfile.TarInfo(f"{a1['__key__']}.jpg")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    members = (
        _members(a0)[:1]
        + [(f"{a0['__key__']}.jpg", a0["jpg"])]
        + _members(a0)[1:]  # a duplicate
        + [(link, b"")]
        + _members(a1)[1:]
        + _members(a2)
    )
    handler = SkipAndCount()
    shard = _tar_shard(tmp_path, members)
    assert _read(shard, handler) == [a2["__key__"]] and handler.skipped == 2
    assert handler.reasons == [
        f"{shard}: sample {a0['__key__']!r}: member '{a0['__key__']}.jpg': a second 'jpg' member",
        f"{shard}: sample {a1['__key__']!r}: member '{a1['__key__']}.jpg': not a regular file (tar type b'2')",
    ]


def test_a_shard_cut_short_or_damaged_mid_way_is_reported_not_silently_ended(tmp_path, corpus):
    a0, a1 = _raw(corpus, 2)
    whole = Path(_tar_shard(tmp_path, _members(a0) + _members(a1), "whole-000000.tar")).read_bytes()
    second = whole.index(f"{a1['__key__']}.jpg".encode()) // 512 * 512  # a1's first header
    cut, flipped = tmp_path / "cut-000000.tar", tmp_path / "flip-000000.tar"
    cut.write_bytes(whole[:second])  # ends exactly after a0: no end-of-archive block
    flipped.write_bytes(whole[: second + 100] + b"\xff" + whole[second + 101 :])  # a1's header checksum breaks
    for shard, why in ((cut, "cut short"), (flipped, "a damaged header")):
        handler = SkipAndCount()
        assert _read(str(shard), handler, decode=False) == [a0["__key__"]] and handler.skipped == 1
        assert handler.reasons == [
            f"{shard}: unreadable tar after member '{a0['__key__']}.txt' ({why}" + handler.reasons[0].split(why, 1)[1]
        ]


class _CountingStream(io.RawIOBase):
    """A read-only stream over an open file that remembers its largest single read."""

    def __init__(self, file):
        self.file, self.largest, self.total = file, 0, 0

    def read(self, size=-1):
        data = self.file.read(size)
        self.largest, self.total = max(self.largest, len(data)), self.total + len(data)
        return data


def test_an_oversized_member_is_skipped_without_being_read(tmp_path, corpus):
    (good,) = _raw(corpus, 1)
    limit = 1 << 20
    shard = _tar_shard(tmp_path, [("big.jpg", limit + 1), ("big.json", b"{}")] + _members(good))
    with open(shard, "rb") as file:
        stream = _CountingStream(file)
        members = list(tar_members(stream, max_member_bytes=limit))
    assert [(m.name, m.data is None) for m in members][:2] == [("big.jpg", True), ("big.json", False)]
    assert members[0].problem == f"{limit + 1} bytes, over the limit of {limit} bytes per member"
    assert [m.data for m in members[2:]] == [good[m] for m in ("jpg", "json", "txt")]
    assert stream.total == os.path.getsize(shard) and stream.largest <= 64 * 1024  # skipped in small reads
    handler = SkipAndCount()
    assert _read(shard, handler, max_member_bytes=limit) == [good["__key__"]]
    assert handler.reasons == [f"{shard}: sample 'big': member 'big.jpg': {members[0].problem}"]
    with pytest.raises(ValueError, match="max_member_bytes"):
        open_corpus(shard, max_member_bytes=0)


def _read_undecoded_skipping(shard) -> tuple[list, SkipAndCount]:
    handler = SkipAndCount()
    return _read(shard, handler, decode=False), handler


def test_peak_memory_stays_small_for_a_member_over_the_default_limit(tmp_path, corpus):
    (good,) = _raw(corpus, 1)
    shard = _tar_shard(tmp_path, [("huge.jpg", MAX_MEMBER_BYTES + 1)] + _members(good))  # sparse: no disk
    (kept, handler), peak = peak_traced_bytes(_read_undecoded_skipping, shard)
    assert kept == [good["__key__"]] and handler.skipped == 1 and "over the limit" in handler.reasons[0]
    assert peak < 8 * 2**20  # the member is 64 MiB: it was never held in memory


_NOT_KEYS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=100).filter(
    lambda key: not KEY_PATTERN.fullmatch(key)
)


@settings(max_examples=40, deadline=None)
@given(key=_NOT_KEYS)
def test_property_a_key_outside_the_alphabet_is_refused_by_the_reader(corpus, key):
    (good,) = _raw(corpus, 1)
    with tempfile.TemporaryDirectory() as folder:
        shard = write_tar(os.path.join(folder, "k-000000.tar"), _members({**good, "__key__": key}) + _members(good))
        handler = SkipAndCount()
        samples = list(open_corpus(shard, decode=False, split_by_node=False, split_by_worker=False, handler=handler))
    assert [s["__key__"] for s in samples] == [good["__key__"]] and handler.skipped >= 1
    assert all(reason.startswith(f"{shard}: ") and "\n" not in reason for reason in handler.reasons)


@pytest.mark.parametrize(
    "fmt, mode",
    [(tarfile.USTAR_FORMAT, "w"), (tarfile.GNU_FORMAT, "w"), (tarfile.PAX_FORMAT, "w"), (tarfile.USTAR_FORMAT, "w:gz")],
)
def test_members_read_straight_from_the_stream_equal_tarfiles_own_read(tmp_path, corpus, fmt, mode):
    """tar_members reads a plain member's bytes from the stream itself (no per-member file object): the same
    bytes as tarfile's extractfile for every tar format, with pax headers, a contiguous-file member
    (read through extractfile) and a compressed shard."""
    directory, _ = corpus
    written = list(open_corpus(directory, decode=False, split_by_node=False, split_by_worker=False))[:4]
    path = tmp_path / "formats.tar"
    with tarfile.open(path, mode, format=fmt) as archive:
        for index, sample in enumerate(written[:4]):
            for member in ("jpg", "json", "txt"):
                info = tarfile.TarInfo(f"{sample['__key__']}.{member}")
                info.size = len(sample[member])
                if fmt == tarfile.PAX_FORMAT:
                    info.pax_headers = {"comment": "x" * (index * 300)}  # extended headers of several blocks
                if index == 3 and member == "txt":
                    info.type = tarfile.CONTTYPE
                archive.addfile(info, io.BytesIO(sample[member]))
    with open(path, "rb") as stream:
        read = [(m.name, m.data) for m in tar_members(stream)]
    with tarfile.open(path, "r") as archive:
        expected = [(info.name, archive.extractfile(info).read()) for info in archive.getmembers()]
    assert read == expected and len(read) == 12
    samples = list(open_corpus(str(path), decode=False, split_by_node=False, split_by_worker=False))
    assert [s["jpg"] for s in samples] == [s["jpg"] for s in written[:4]]


def test_a_member_cut_short_inside_its_data_is_an_unreadable_tar(tmp_path, corpus):
    directory, _ = corpus
    written = list(open_corpus(directory, decode=False, split_by_node=False, split_by_worker=False))[:1]
    whole = tmp_path / "whole.tar"
    write_tar(whole, [(f"{written[0]['__key__']}.{m}", written[0][m]) for m in ("jpg", "json", "txt")])
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole.read_bytes()[: 512 + len(written[0]["jpg"]) // 2])
    with open(cut, "rb") as stream, pytest.raises(tarfile.ReadError, match="unexpected end of data"):
        list(tar_members(stream))


def test_a_bad_checksum_in_the_first_header_is_an_unreadable_tar_at_its_start(tmp_path, corpus):
    whole = Path(shard_urls(corpus[0])[0]).read_bytes()
    damaged = tmp_path / "bad-000000.tar"
    damaged.write_bytes(whole[:148] + bytes([whole[148] ^ 1]) + whole[149:])
    handler = SkipAndCount()
    assert _read(str(damaged), handler, decode=False) == [] and handler.skipped == 1
    assert handler.reasons == [f"{damaged}: unreadable tar at its start (bad checksum)"]


def _member_ends(path):
    """Where the first member's data ends, (key, where its last member's data ends) for each sample of a
    sound shard, and where its end-of-archive block ends."""
    with open(path, "rb") as stream:
        members = list(tar_members(stream))
    ends = [(m.key, m.offset + len(m.data)) for m in members if m.member == "txt"]
    last = members[-1].offset + len(members[-1].data)
    return members[0].offset + len(members[0].data), ends, last + -last % 512 + 512


@settings(max_examples=60, deadline=None)
@given(fraction=st.floats(0, 1))
def test_property_a_shard_cut_anywhere_keeps_the_samples_read_whole_and_reports_the_cut_once(corpus, fraction):
    path = shard_urls(corpus[0])[1]
    whole = Path(path).read_bytes()
    first_end, ends, archive_end = _member_ends(path)
    cut = int(fraction * len(whole))
    with tempfile.TemporaryDirectory() as folder:
        shard = os.path.join(folder, "cut-000000.tar")
        with open(shard, "wb") as stream:
            stream.write(whole[:cut])
        handler = SkipAndCount()
        keys = _read(shard, handler, decode=False)
    assert keys == [key for key, end in ends if end <= cut]
    if cut >= archive_end:  # only zero padding after the end-of-archive block went
        assert handler.skipped == 0
    else:
        where = "at its start" if cut < first_end else "after member '"
        assert handler.skipped == 1 and handler.reasons[0].startswith(f"{shard}: unreadable tar {where}")
