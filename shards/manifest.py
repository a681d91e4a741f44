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

from common.errors import InputError
from shards import layout, remote

_ENTRY_FIELDS = ("shard", "index_file", "count", "bytes", "sha256", "first_key", "last_key", "captions", "texts")


_STATS_FIELDS = _ENTRY_FIELDS + ("index_sha256",)


def read_json(fs: Any, path: str) -> Any:
    """The parsed file; InputError naming the file when it is not UTF-8 JSON."""
    with fs.open(path, "rb") as stream:
        data = stream.read()
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InputError(f"{path}: not valid JSON ({exc})") from None


def _object_with(data: Any, fields: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InputError(f"{what}: expected a JSON object")
    missing = [field for field in fields if field not in data]
    if missing:
        raise InputError(f"{what}: missing field {missing[0]!r}")
    return data


def read_stats(fs: Any, root: str, stem: str) -> dict[str, Any]:
    return read_json(fs, layout.path_of(fs, root, stem + layout.STATS_SUFFIX))


def checked_stats(stats: Any, stem: str) -> dict[str, Any]:
    """``stats`` when it holds the fields the manifest and the verifier use; else InputError naming the file."""
    return _object_with(stats, _STATS_FIELDS, stem + layout.STATS_SUFFIX)


def read_manifest_file(fs: Any, path: str) -> dict[str, Any]:
    """A ``manifest.json``; InputError naming the file when it lacks ``shards`` entries or ``totals``."""
    manifest = _object_with(read_json(fs, path), ("totals", "shards"), layout.MANIFEST_NAME)
    if not isinstance(manifest["totals"], dict) or not isinstance(manifest["shards"], list):
        raise InputError(f"{layout.MANIFEST_NAME}: expected 'totals' an object and 'shards' a list")
    for entry in manifest["shards"]:
        _object_with(entry, _ENTRY_FIELDS, f"{layout.MANIFEST_NAME}: shard entry")
    return manifest


def _identities(fs: Any, root: str, index_file: str) -> set[int]:
    with fs.open(layout.path_of(fs, root, index_file), "rb") as stream:
        table = pq.read_table(io.BytesIO(stream.read()), columns=["id"])
    return set(table.column("id").to_pylist())


def _expected_stems(fs: Any, root: str, directory: str, prefix: str, shard_count: int) -> list[str]:
    """Stems of shards 0..shard_count-1; InputError naming the first one that is not complete."""
    complete = set(layout.complete_stems(fs, root, prefix))
    stems = [layout.shard_stem(index, prefix) for index in range(shard_count)]
    for stem in stems:
        if stem not in complete:
            raise InputError(
                f"{directory}: shard {stem}{layout.TAR_SUFFIX} (of {shard_count} expected) is missing "
                f"or incomplete (no _stats.json)"
            )
    return stems


def build_manifest(
    directory: str, prefix: str = layout.DEFAULT_PREFIX, *, shard_count: int | None = None
) -> dict[str, Any]:
    """The manifest of ``directory``'s complete shards with ``prefix``; InputError when there are none.

    With ``shard_count`` it lists exactly shards 0..shard_count-1 (a writer that knows its shards: other
    complete shards in the folder are not its own) and InputError names the first one missing.
    """
    layout.shard_stem(0, prefix)  # validates the prefix
    fs, root = remote.resolve(directory)
    if not fs.isdir(root):
        raise InputError(f"{directory}: not a corpus folder")
    if shard_count is None:
        stems = layout.complete_stems(fs, root, prefix)
    else:
        stems = _expected_stems(fs, root, directory, prefix, shard_count)
    if not stems:
        raise InputError(f"{directory}: no complete {prefix}-*.tar shards (no _stats.json markers)")
    shards, identities = [], set()
    for stem in stems:
        stats = checked_stats(read_stats(fs, root, stem), stem)
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


def write_manifest(
    directory: str, prefix: str = layout.DEFAULT_PREFIX, *, shard_count: int | None = None
) -> dict[str, Any]:
    """Collect every complete shard's stats (or shards 0..shard_count-1's, see :func:`build_manifest`) into
    ``<directory>/manifest.json`` (atomically); return it."""
    manifest = build_manifest(directory, prefix, shard_count=shard_count)
    fs, root = remote.resolve(directory)
    remote.publish_bytes(fs, manifest_bytes(manifest), layout.path_of(fs, root, layout.MANIFEST_NAME))
    return manifest


def read_manifest(directory: str) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none."""
    fs, root = remote.resolve(directory)
    path = layout.path_of(fs, root, layout.MANIFEST_NAME)
    return read_manifest_file(fs, path) if fs.exists(path) else None
