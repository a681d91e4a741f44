"""Write one shard: the WebDataset tar, its parquet index, then its ``_stats.json`` completion marker.

Deterministic: samples are sorted by key and every tar header is fixed (mtime 0, uid/gid 0, empty
user and group names, mode 0444, USTAR), so the same samples give byte-identical files. Atomic: each
file is published under its final name only when whole (see :mod:`shards.remote`), and the stats
file comes last, so a shard without ``_stats.json`` is unfinished and is simply written again; once
it is published, the temporary files that an earlier, killed writer of the same shard left behind
are removed.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from common.errors import InputError
from shards import layout, remote
from shards.sample import MEMBERS, make_sample, released_attributes

INDEX_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("id", pa.int64()),
        ("file_path", pa.string()),
        ("source", pa.string()),
        ("attributes", pa.string()),
        ("captions", pa.list_(pa.string())),
        ("styles", pa.list_(pa.string())),
        ("prompt_caption", pa.list_(pa.string())),
        ("n_captions", pa.int32()),
        ("n_texts", pa.int32()),
        ("jpg_sha256", pa.string()),
    ]
    + [(f"{member}_{what}", pa.int64()) for member in MEMBERS for what in ("offset", "size")]
)
_INT64_MAX = 2**63 - 1


def _checked_sample(sample: Mapping[str, Any]) -> dict[str, Any]:
    """The sample rebuilt by :func:`make_sample` (record canonicalised).

    InputError names the key and the broken part.
    """
    if not isinstance(sample, Mapping) or "__key__" not in sample:
        raise InputError("sample: expected a dict with '__key__', 'jpg' and 'json'")
    key = sample["__key__"]
    unexpected = sorted(set(sample) - {"__key__", *MEMBERS})
    if unexpected:
        raise InputError(f"sample {key!r}: unexpected member {unexpected[0]!r}")
    if not isinstance(sample.get("json"), Mapping):
        raise InputError(f"sample {key!r}: json: expected the record as a dict")
    checked = make_sample(dict(sample["json"]), sample.get("jpg"))
    if checked["__key__"] != key:
        raise InputError(f"sample {key!r}: json: record key {checked['__key__']!r} differs from __key__")
    if "txt" in sample and sample["txt"] != checked["txt"]:
        raise InputError(f"sample {key!r}: txt: expected the first caption {checked['txt']!r}")
    if checked["json"]["id"] > _INT64_MAX:
        raise InputError(f"sample {key!r}: json: field 'id': {checked['json']['id']} does not fit the index (int64)")
    try:
        _encode_members(checked)
    except UnicodeEncodeError as exc:  # a lone surrogate: valid in a Python str, not in UTF-8
        raise InputError(f"sample {key!r}: json: a text that is not valid Unicode ({exc.reason})") from None
    return checked


def _sorted_samples(samples: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    checked = sorted((_checked_sample(s) for s in samples), key=lambda s: s["__key__"])
    if not checked:
        raise ValueError("a shard needs at least one sample")
    for previous, current in zip(checked, checked[1:]):
        if previous["__key__"] == current["__key__"]:
            raise InputError(f"duplicate key {current['__key__']!r} in one shard")
    return checked


def _encode_members(sample: dict[str, Any]) -> dict[str, Any]:
    record_json = json.dumps(sample["json"], ensure_ascii=False, separators=(",", ":"))
    return {
        "__key__": sample["__key__"],
        "jpg": sample["jpg"],
        "json": record_json.encode("utf-8"),
        "txt": sample["txt"].encode("utf-8"),
    }


def _write_tar(path: str, samples: list[dict[str, Any]]) -> None:
    import webdataset as wds  # here: it imports torch (~1.5 s), which reading an index or a manifest does not need

    with open(path, "wb") as stream:
        with wds.TarWriter(stream, user="", group="", mode=0o444, encoder=False, mtime=0) as writer:
            for sample in samples:
                writer.write(_encode_members(sample))
        stream.flush()
        os.fsync(stream.fileno())


def _member_positions(path: str) -> dict[str, tuple[int, int]]:
    """Member name -> (byte offset of its data in the tar, size): lets a reader fetch one image by range."""
    with tarfile.open(path, "r:") as archive:
        return {m.name: (m.offset_data, m.size) for m in archive.getmembers()}


def _sha256_of_file(path: str) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _index_table(samples: list[dict[str, Any]], positions: Mapping[str, tuple[int, int]]) -> pa.Table:
    rows = []
    for sample in samples:
        record, key = sample["json"], sample["__key__"]
        row = {
            "key": key,
            "id": record["id"],
            "file_path": record["file_path"],
            "source": record["source"],
            "attributes": released_attributes(record),
            "captions": record["captions"],
            "styles": record["styles"],
            "prompt_caption": record["prompt_caption"],
            "n_captions": len(record["captions"]),
            "n_texts": len(record["captions"]) + len(record["prompt_caption"]),
            "jpg_sha256": hashlib.sha256(sample["jpg"]).hexdigest(),
        }
        for member in MEMBERS:
            row[f"{member}_offset"], row[f"{member}_size"] = positions[f"{key}.{member}"]
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=INDEX_SCHEMA)


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def _local_tar_path(fs: Any, final_path: str) -> str:
    """Where the tar is built: beside its final name locally (so a rename publishes it), else a temp file."""
    if remote.is_local(fs):
        return remote.temp_path(final_path)
    handle, path = tempfile.mkstemp(suffix=layout.TAR_SUFFIX)
    os.close(handle)
    return path


def _own_temporaries(fs: Any, root: str, index: int, prefix: str) -> list[str]:
    """This shard's temporary files now in ``root`` (``<final name>.tmp-*`` of its tar, index and stats)."""
    finals = {layout.tar_name(index, prefix), layout.index_name(index, prefix), layout.stats_name(index, prefix)}
    stem = glob.escape(layout.shard_stem(index, prefix))
    pattern = remote.join(fs, glob.escape(root), f"{stem}*{remote.TEMP_MARKER}*")
    found = []
    for path in fs.glob(pattern):
        if path.rstrip("/").rsplit("/", 1)[-1].partition(remote.TEMP_MARKER)[0] in finals:
            found.append(path)
    return found


def _remove_quietly(fs: Any, paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile (by its own writer, or another cleanup)
            fs.rm(path)


def write_shard(
    directory: str, index: int, samples: Iterable[Mapping[str, Any]], prefix: str = layout.DEFAULT_PREFIX
) -> dict[str, Any]:
    """Write shard ``index`` of ``directory`` (local path or fsspec URL); return its stats.

    Each sample is ``{"__key__", "jpg": JPEG bytes, "json": record}`` (``txt`` optional: it is
    derived). InputError for a broken record or a duplicate key (ValueError for no samples); nothing is
    written then.
    The shard's temporary files (``<final name>.tmp-*``) that were there before this call are removed
    once it has published the shard; no other file is touched.
    """
    tar_name = layout.tar_name(index, prefix)
    checked = _sorted_samples(samples)
    fs, root = remote.resolve(directory)
    fs.makedirs(root, exist_ok=True)
    # Listed before this writer makes its own: only files an earlier writer left (a killed one's, as a
    # writer that succeeds or fails cleanly removes its own) are removed once the shard is published.
    stale = _own_temporaries(fs, root, index, prefix)
    tar_path = layout.path_of(fs, root, tar_name)
    building = _local_tar_path(fs, tar_path)
    try:
        _write_tar(building, checked)
        tar_bytes, tar_sha256 = os.path.getsize(building), _sha256_of_file(building)
        index_bytes = _parquet_bytes(_index_table(checked, _member_positions(building)))
        remote.publish_file(fs, building, tar_path)
    finally:
        if os.path.exists(building):
            os.remove(building)
    remote.publish_bytes(fs, index_bytes, layout.path_of(fs, root, layout.index_name(index, prefix)))
    records = [s["json"] for s in checked]
    stats = {
        "format_version": layout.FORMAT_VERSION,
        "shard": tar_name,
        "index_file": layout.index_name(index, prefix),
        "count": len(checked),
        "bytes": tar_bytes,
        "sha256": tar_sha256,
        "index_bytes": len(index_bytes),
        "index_sha256": hashlib.sha256(index_bytes).hexdigest(),
        "first_key": checked[0]["__key__"],
        "last_key": checked[-1]["__key__"],
        "identities": len({r["id"] for r in records}),
        "captions": sum(len(r["captions"]) for r in records),
        "texts": sum(len(r["captions"]) + len(r["prompt_caption"]) for r in records),
    }
    stats_bytes = (json.dumps(stats, indent=2, sort_keys=True) + "\n").encode("utf-8")
    remote.publish_bytes(fs, stats_bytes, layout.path_of(fs, root, layout.stats_name(index, prefix)))
    _remove_quietly(fs, stale)
    return stats


def shard_is_complete(directory: str, index: int, prefix: str = layout.DEFAULT_PREFIX) -> bool:
    """True when the shard's ``_stats.json`` marker (written last) and its tar exist: skip it on resume."""
    fs, root = remote.resolve(directory)
    marker = layout.path_of(fs, root, layout.stats_name(index, prefix))
    return fs.exists(marker) and fs.exists(layout.path_of(fs, root, layout.tar_name(index, prefix)))
