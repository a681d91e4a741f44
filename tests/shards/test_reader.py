import functools
import http.server
import threading

import pytest
import torch
from PIL import Image

from shards import iter_samples, open_corpus, shard_urls
from tests.shards.corpus_factory import write_corpus

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
        assert set(sample) == {"__key__", "jpg", "json", "txt"}
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
    expected = [s["__key__"] for s in written[PER_SHARD:3 * PER_SHARD]]
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
        assert keys == [s["__key__"] for s in written[:2 * PER_SHARD]]
        assert len(shard_urls(base)) == SHARDS  # a folder URL is listed through its manifest
    finally:
        server.shutdown()
        server.server_close()


def test_a_damaged_member_is_a_one_line_error_naming_the_sample():
    from shards.reader import decode_sample

    with pytest.raises(ValueError, match=r"sample 'k1': damaged member"):
        decode_sample({"__key__": "k1", "jpg": b"not a jpeg", "json": b"{}", "txt": b"t"})


def _tar_with(path, members):
    import io
    import tarfile

    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return str(path)


def _damaged_shard(tmp_path, corpus):
    """One good sample of the corpus, one whose jpg is garbage, one missing its txt."""
    good = next(iter(open_corpus(corpus[0], decode=False, split_by_node=False, split_by_worker=False)))
    return _tar_with(tmp_path / "bad-000000.tar", [
        ("a0.jpg", b"not a jpeg"), ("a0.json", good["json"]), ("a0.txt", good["txt"]),
        ("a1.jpg", good["jpg"]), ("a1.json", good["json"]),
        ("a2.jpg", good["jpg"]), ("a2.json", good["json"]), ("a2.txt", good["txt"]),
    ])


def test_by_default_a_damaged_sample_stops_the_stream_in_one_line(tmp_path, corpus):
    shard = _damaged_shard(tmp_path, corpus)
    with pytest.raises(ValueError, match="sample 'a0': damaged member") as error:
        list(open_corpus(shard, split_by_node=False, split_by_worker=False))
    assert "\n" not in str(error.value)


def test_skip_and_count_handler_keeps_the_good_samples_and_counts_the_rest(tmp_path, corpus):
    from shards.reader import SkipAndCount

    handler = SkipAndCount()
    shard = _damaged_shard(tmp_path, corpus)
    kept = [s["__key__"] for s in open_corpus(shard, split_by_node=False, split_by_worker=False, handler=handler)]
    assert kept == ["a2"] and handler.skipped == 2
    assert any("'a1'" in reason and "'txt'" in reason for reason in handler.reasons)
    assert any("'a0'" in reason for reason in handler.reasons)


def test_skip_and_count_also_skips_an_unreadable_shard(tmp_path, corpus):
    from shards.reader import SkipAndCount

    truncated = tmp_path / "cut-000000.tar"
    truncated.write_bytes(b"\x00garbage" * 100)
    handler = SkipAndCount()
    urls = [str(truncated), *shard_urls(corpus[0])]
    kept = list(open_corpus(urls, decode=False, split_by_node=False, split_by_worker=False, handler=handler))
    assert len(kept) == SHARDS * PER_SHARD and handler.skipped >= 1
