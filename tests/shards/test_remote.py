"""shards.remote: fsspec resolution and atomic publishing, locally and on a non-local filesystem."""

from __future__ import annotations

import uuid

import fsspec

from shards import remote


def test_local_paths_resolve_to_the_local_filesystem(tmp_path):
    fs, root = remote.resolve(str(tmp_path))
    assert remote.is_local(fs) and root == str(tmp_path)
    assert remote.join(fs, root, "a.tar") == f"{tmp_path}/a.tar"


def test_temp_paths_are_unique_siblings():
    first, second = remote.temp_path("/x/a.tar"), remote.temp_path("/x/a.tar")
    assert first != second and first.startswith("/x/a.tar" + remote.TEMP_MARKER)


def test_publish_bytes_replaces_atomically_and_leaves_no_temporary(tmp_path):
    fs, root = remote.resolve(str(tmp_path))
    target = remote.join(fs, root, "job.json")
    remote.publish_bytes(fs, b"one", target)
    remote.publish_bytes(fs, b"two", target)
    assert (tmp_path / "job.json").read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["job.json"]


def test_publish_bytes_fsyncs_only_durable_files(tmp_path, monkeypatch):
    synced = []
    real_fsync = remote.os.fsync
    monkeypatch.setattr(remote.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    fs, root = remote.resolve(str(tmp_path))
    remote.publish_bytes(fs, b"scratch", remote.join(fs, root, "part.jsonl"), durable=False)
    assert synced == [] and (tmp_path / "part.jsonl").read_bytes() == b"scratch"
    remote.publish_bytes(fs, b"kept", remote.join(fs, root, "job.json"))
    assert len(synced) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["job.json", "part.jsonl"]


def test_publish_on_a_memory_filesystem(tmp_path):
    base = f"memory://publish-{uuid.uuid4().hex}"
    fs, root = remote.resolve(base)
    assert not remote.is_local(fs)
    fs.makedirs(root, exist_ok=True)
    remote.publish_bytes(fs, b"abc", remote.join(fs, root, "m.json"))
    local = tmp_path / "shard.tar"
    local.write_bytes(b"tar bytes")
    remote.publish_file(fs, str(local), remote.join(fs, root, "s.tar"))
    assert not local.exists()  # the local file is consumed
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)) == ["m.json", "s.tar"]
    with fsspec.open(remote.url(fs, remote.join(fs, root, "s.tar")), "rb") as stream:
        assert stream.read() == b"tar bytes"
