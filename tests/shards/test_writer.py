import json
import os
import random
import subprocess
import tempfile

import fsspec
import pyarrow.parquet as pq
import pytest
import webdataset
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from shards import (
    GROUPS,
    encode_image,
    iter_samples,
    remote,
    shard_is_complete,
    verify_corpus,
    write_manifest,
    write_shard,
)
from shards.sample import KEY_PATTERN, canonical_record, first_text
from tests.shards.corpus_factory import make_samples, write_corpus


def _files(directory):
    return {name: open(os.path.join(directory, name), "rb").read() for name in sorted(os.listdir(directory))}


def test_same_samples_in_any_order_give_byte_identical_files(tmp_path):
    samples = make_samples(0, 12)
    for name, seed in (("a", 1), ("b", 2)):
        for index, part in enumerate((samples[:6], samples[6:])):
            shuffled = part[:]
            random.Random(seed).shuffle(shuffled)
            write_shard(str(tmp_path / name), index, shuffled)
        write_manifest(str(tmp_path / name))
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert sorted(first) == [
        "manifest.json",
        "synthpedes-000000.parquet",
        "synthpedes-000000.tar",
        "synthpedes-000000_stats.json",
        "synthpedes-000001.parquet",
        "synthpedes-000001.tar",
        "synthpedes-000001_stats.json",
    ]
    assert first == second


def test_tar_lists_key_jpg_json_txt_with_fixed_owner_and_mode(tmp_path):
    samples = make_samples(0, 3)
    write_shard(str(tmp_path), 0, reversed(samples))
    tar_path = tmp_path / "synthpedes-000000.tar"
    listed = subprocess.run(["tar", "-tf", tar_path], capture_output=True, text=True, check=True).stdout.split()
    keys = sorted(s["__key__"] for s in samples)
    assert listed == [f"{k}.{ext}" for k in keys for ext in ("jpg", "json", "txt")]
    verbose = subprocess.run(["tar", "--numeric-owner", "-tvf", tar_path], capture_output=True, text=True, check=True)
    for line in verbose.stdout.splitlines():
        mode, owner = line.split()[:2]
        assert (mode, owner) == ("-r--r--r--", "0/0")


def test_index_rows_describe_each_sample_and_locate_its_jpeg(tmp_path):
    samples = make_samples(0, 4)
    stats = write_shard(str(tmp_path), 3, samples, prefix="demo")
    table = pq.read_table(tmp_path / "demo-000003.parquet").to_pylist()
    tar_bytes = (tmp_path / "demo-000003.tar").read_bytes()
    assert [row["key"] for row in table] == [s["__key__"] for s in samples]
    for row, sample in zip(table, samples):
        assert row["attributes"] == "woman,long black hair,red t-shirt,blue jeans,white sneakers,unknown"
        assert row["n_captions"] == 2 and row["n_texts"] == 3
        assert tar_bytes[row["jpg_offset"] : row["jpg_offset"] + row["jpg_size"]] == sample["jpg"]
    assert stats["count"] == 4 and stats["identities"] == 2 and stats["texts"] == 12
    assert json.loads((tmp_path / "demo-000003_stats.json").read_text()) == stats


def test_duplicate_key_is_refused_and_nothing_is_written(tmp_path):
    samples = make_samples(0, 3)
    with pytest.raises(ValueError, match="duplicate key"):
        write_shard(str(tmp_path / "out"), 0, samples + samples[1:2])
    assert not (tmp_path / "out").exists()


def test_no_final_name_exists_while_the_tar_is_being_written(tmp_path, monkeypatch):
    seen = []
    original = webdataset.TarWriter.write

    def spying_write(self, sample):
        seen.append(sorted(os.listdir(tmp_path)))
        return original(self, sample)

    monkeypatch.setattr(webdataset.TarWriter, "write", spying_write)
    write_shard(str(tmp_path), 0, make_samples(0, 3))
    assert len(seen) == 3
    for listing in seen:
        assert len(listing) == 1 and remote.TEMP_MARKER in listing[0]  # only the temporary tar
    assert shard_is_complete(str(tmp_path), 0)


def test_crash_before_the_marker_leaves_an_incomplete_shard_that_a_rerun_completes(tmp_path, monkeypatch):
    directory = str(tmp_path)
    write_shard(directory, 0, make_samples(0, 3))
    real_publish = remote.publish_bytes

    def crash_on_marker(fs, data, final_path):
        if final_path.endswith("_stats.json"):
            raise KeyboardInterrupt("killed")
        real_publish(fs, data, final_path)

    monkeypatch.setattr(remote, "publish_bytes", crash_on_marker)
    with pytest.raises(KeyboardInterrupt):
        write_shard(directory, 1, make_samples(3, 3))
    assert (tmp_path / "synthpedes-000001.tar").exists() and not (tmp_path / "synthpedes-000001_stats.json").exists()
    assert not shard_is_complete(directory, 1)
    assert write_manifest(directory)["totals"]["shards"] == 1
    assert len(list(iter_samples(directory))) == 3
    assert "synthpedes-000001.tar: incomplete shard" in verify_corpus(directory)[0]

    monkeypatch.setattr(remote, "publish_bytes", real_publish)
    write_shard(directory, 1, make_samples(3, 3))
    write_manifest(directory)
    assert shard_is_complete(directory, 1) and verify_corpus(directory) == []


def test_failure_inside_the_tar_leaves_no_file(tmp_path, monkeypatch):
    def broken_write(self, sample):
        raise OSError("disk full")

    monkeypatch.setattr(webdataset.TarWriter, "write", broken_write)
    with pytest.raises(OSError):
        write_shard(str(tmp_path), 0, make_samples(0, 2))
    assert os.listdir(tmp_path) == []


def test_stale_temporary_files_are_ignored_then_removed_by_the_rewrite(tmp_path):
    (tmp_path / "synthpedes-000000.tar.tmp-0123456789ab").write_bytes(b"half a tar")
    (tmp_path / "synthpedes-000000_stats.json.tmp-0123456789ab").write_bytes(b"{")
    assert shard_is_complete(str(tmp_path), 0) is False
    samples = write_corpus(str(tmp_path), shards=1, per_shard=4)
    assert verify_corpus(str(tmp_path)) == []
    assert [s["__key__"] for s in iter_samples(str(tmp_path))] == [s["__key__"] for s in samples]
    assert not [name for name in os.listdir(tmp_path) if remote.TEMP_MARKER in name]


def test_memory_filesystem_round_trip():
    url = "memory://shards-test-writer"
    try:
        fsspec.filesystem("memory").pipe("/shards-test-writer/synthpedes-000001.tar.tmp-0123456789ab", b"")  # stale
        samples = write_corpus(url, shards=2, per_shard=3)
        assert shard_is_complete(url, 1)
        assert verify_corpus(url) == []
        read = list(iter_samples(url))
        assert [s["json"] for s in read] == [s["json"] for s in samples]
        fs = fsspec.filesystem("memory")
        assert not [p for p in fs.ls("/shards-test-writer", detail=False) if remote.TEMP_MARKER in p]
    finally:
        fsspec.filesystem("memory").rm("/shards-test-writer", recursive=True)


def test_a_rerun_removes_its_own_shards_stale_temporaries_and_nothing_else(tmp_path, monkeypatch):
    ours = [
        "synthpedes-000001.tar.tmp-0123456789ab",
        "synthpedes-000001.tar.tmp-",
        "synthpedes-000001.tar.tmp-x",
        "synthpedes-000001.parquet.tmp-aa",
        "synthpedes-000001_stats.json.tmp-bb",
    ]
    others = [
        "synthpedes-000002.tar.tmp-cc",
        "synthpedes-000001-x-000000.tar.tmp-dd",
        "other-000001.tar.tmp-ee",
        "synthpedes-000001.tar.tmpx",
        "notes.tmp-1",
        "synthpedes-000001.txt.tmp-ff",
        "xsynthpedes-000001.tar.tmp-gg",
    ]
    for name in ours + others:
        (tmp_path / name).write_bytes(b"")  # a killed run's zero-byte files, and files that are not this shard's
    original, concurrent = webdataset.TarWriter.write, "synthpedes-000001.tar.tmp-made-meanwhile"

    def another_writer_starts(self, sample):  # a second writer of the same shard, started after this one
        (tmp_path / concurrent).write_bytes(b"")
        return original(self, sample)

    monkeypatch.setattr(webdataset.TarWriter, "write", another_writer_starts)
    write_shard(str(tmp_path), 1, make_samples(0, 2))
    left = set(os.listdir(tmp_path))
    assert left == {
        *others,
        concurrent,
        "synthpedes-000001.tar",
        "synthpedes-000001.parquet",
        "synthpedes-000001_stats.json",
    }


def test_records_the_index_or_utf_8_cannot_hold_are_refused_naming_the_key(tmp_path):
    from shards import encode_image, make_sample
    from tests.shards.corpus_factory import make_image, make_record

    for overrides, message in (
        ({"id": 2**63}, "field 'id': 9223372036854775808 does not fit the index"),
        ({"captions": ["\ud800 broken"], "styles": ["plain"]}, "not valid Unicode"),
    ):
        sample = make_sample(make_record(0, **overrides), encode_image(make_image(0)))
        with pytest.raises(ValueError, match=f"sample 'p00000_000000': json: .*{message}"):
            write_shard(str(tmp_path), 0, [sample])
        assert os.listdir(tmp_path) == []


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).filter(str.strip)


@st.composite
def _written_samples(draw):
    """Valid samples with distinct keys: any key, identity, texts, attribute phrases, confidences, image."""
    keys = draw(st.lists(st.from_regex(KEY_PATTERN, fullmatch=True), min_size=1, max_size=4, unique=True))
    samples = []
    for key in keys:
        captions = draw(st.lists(_TEXT, max_size=3))
        record = {
            "key": key,
            "id": draw(st.integers(0, 2**63 - 1)),
            "file_path": draw(_TEXT.filter(lambda p: not p.startswith("/") and "\\" not in p)),
            "attributes": {
                g: {
                    "value": draw(_TEXT.filter(lambda v: "," not in v)),
                    "confidence": draw(st.floats(0, 1) | st.integers(0, 1)),
                }
                for g in GROUPS
            },
            "captions": captions,
            "styles": draw(st.lists(_TEXT, min_size=len(captions), max_size=len(captions))),
            "prompt_caption": draw(st.lists(_TEXT, min_size=0 if captions else 1, max_size=1)),
            "source": draw(_TEXT),
        }
        size, colour = draw(st.tuples(st.integers(1, 64), st.integers(1, 64))), draw(st.integers(0, 2**24 - 1))
        samples.append({"__key__": key, "jpg": encode_image(Image.new("RGB", size, colour)), "json": record})
    return samples


@settings(max_examples=25, deadline=None)
@given(samples=_written_samples(), seed=st.integers(0, 2**32))
def test_property_any_valid_samples_round_trip_and_rewrite_byte_identically(samples, seed):
    with tempfile.TemporaryDirectory() as folder:
        write_shard(os.path.join(folder, "a"), 0, samples)
        shuffled = samples[:]
        random.Random(seed).shuffle(shuffled)
        write_shard(os.path.join(folder, "b"), 0, shuffled)
        assert _files(os.path.join(folder, "a")) == _files(os.path.join(folder, "b"))
        read = list(iter_samples(os.path.join(folder, "a", "synthpedes-000000.tar")))
    expected = sorted(samples, key=lambda s: s["__key__"])
    assert [s["__key__"] for s in read] == [s["__key__"] for s in expected]
    assert [s["json"] for s in read] == [canonical_record(s["json"]) for s in expected]
    assert [s["txt"] for s in read] == [first_text(s["json"]) for s in expected]
