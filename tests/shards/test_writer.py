import json
import os
import random
import subprocess

import fsspec
import pyarrow.parquet as pq
import pytest
import webdataset

from shards import iter_samples, shard_is_complete, verify_corpus, write_manifest, write_shard
from shards import remote
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
        "synthpedes-000000.parquet", "synthpedes-000000.tar", "synthpedes-000000_stats.json",
        "synthpedes-000001.parquet", "synthpedes-000001.tar", "synthpedes-000001_stats.json",
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
        assert tar_bytes[row["jpg_offset"]:row["jpg_offset"] + row["jpg_size"]] == sample["jpg"]
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


def test_stale_temporary_files_are_ignored(tmp_path):
    (tmp_path / "synthpedes-000000.tar.tmp-0123456789ab").write_bytes(b"half a tar")
    (tmp_path / "synthpedes-000000_stats.json.tmp-0123456789ab").write_bytes(b"{")
    samples = write_corpus(str(tmp_path), shards=1, per_shard=4)
    assert verify_corpus(str(tmp_path)) == []
    assert [s["__key__"] for s in iter_samples(str(tmp_path))] == [s["__key__"] for s in samples]


def test_memory_filesystem_round_trip():
    url = "memory://shards-test-writer"
    try:
        samples = write_corpus(url, shards=2, per_shard=3)
        assert shard_is_complete(url, 1)
        assert verify_corpus(url) == []
        read = list(iter_samples(url))
        assert [s["json"] for s in read] == [s["json"] for s in samples]
        fs = fsspec.filesystem("memory")
        assert not [p for p in fs.ls("/shards-test-writer", detail=False) if remote.TEMP_MARKER in p]
    finally:
        fsspec.filesystem("memory").rm("/shards-test-writer", recursive=True)
