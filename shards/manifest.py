"""``manifest.json``: the list of a corpus folder's complete shards and its totals.

Built from the ``_stats.json`` markers (so unfinished shards are left out) and the identity column of
each parquet index (identities can span shards). Sorted, no timestamps: the same shards give the
same bytes.
"""
from __future__ import annotations

import io
import json
from typing import Any

import pyarrow.parquet as pq

from shards import layout, remote

_ENTRY_FIELDS = ("shard", "index_file", "count", "bytes", "sha256", "first_key", "last_key", "captions", "texts")


def read_json(fs: Any, path: str) -> dict[str, Any]:
    with fs.open(path, "rb") as stream:
        return json.loads(stream.read().decode("utf-8"))


def read_stats(fs: Any, root: str, stem: str) -> dict[str, Any]:
    return read_json(fs, layout.path_of(fs, root, stem + layout.STATS_SUFFIX))


def _identities(fs: Any, root: str, index_file: str) -> set[int]:
    with fs.open(layout.path_of(fs, root, index_file), "rb") as stream:
        table = pq.read_table(io.BytesIO(stream.read()), columns=["id"])
    return set(table.column("id").to_pylist())


def build_manifest(directory: str, prefix: str = layout.DEFAULT_PREFIX) -> dict[str, Any]:
    """The manifest of ``directory``'s complete shards with ``prefix``; ValueError when there are none."""
    layout.shard_stem(0, prefix)  # validates the prefix
    fs, root = remote.resolve(directory)
    if not fs.isdir(root):
        raise ValueError(f"{directory}: not a corpus folder")
    stems = layout.complete_stems(fs, root, prefix)
    if not stems:
        raise ValueError(f"{directory}: no complete {prefix}-*.tar shards (no _stats.json markers)")
    shards, identities = [], set()
    for stem in stems:
        stats = read_stats(fs, root, stem)
        shards.append({field: stats[field] for field in _ENTRY_FIELDS})
        identities |= _identities(fs, root, stats["index_file"])
    totals = {
        "shards": len(shards),
        "samples": sum(s["count"] for s in shards),
        "bytes": sum(s["bytes"] for s in shards),
        "captions": sum(s["captions"] for s in shards),
        "texts": sum(s["texts"] for s in shards),
        "identities": len(identities),
    }
    return {"format_version": layout.FORMAT_VERSION, "prefix": prefix, "totals": totals, "shards": shards}


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


def write_manifest(directory: str, prefix: str = layout.DEFAULT_PREFIX) -> dict[str, Any]:
    """Collect every complete shard's stats into ``<directory>/manifest.json`` (atomically); return it."""
    manifest = build_manifest(directory, prefix)
    fs, root = remote.resolve(directory)
    remote.publish_bytes(fs, manifest_bytes(manifest), layout.path_of(fs, root, layout.MANIFEST_NAME))
    return manifest


def read_manifest(directory: str) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none."""
    fs, root = remote.resolve(directory)
    path = layout.path_of(fs, root, layout.MANIFEST_NAME)
    return read_json(fs, path) if fs.exists(path) else None
