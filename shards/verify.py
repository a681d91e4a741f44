"""Check a corpus folder: every shard against its ``_stats.json``, its parquet index and ``manifest.json``.

Each shard is read once, as a stream: the tar's sha256 and size are compared with its stats, every
sample's members, record, caption, JPEG hash and member offsets with its index row, and the
folder's complete shards with the manifest. Images are not decoded (their hashes cover them), and a
member over the per-member byte limit is a problem, skipped unread (see :func:`shards.reader.tar_members`).
Every problem found is returned, one line each: the number of lines is the number of problems.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq

from common.errors import InputError, error_line
from shards import layout, remote
from shards.manifest import checked_stats, read_manifest_file, read_stats
from shards.reader import MAX_MEMBER_BYTES, tar_members
from shards.sample import MEMBERS, first_text, is_jpeg, validate_record

Samples = list[tuple[str, dict[str, tuple[bytes, int]]]]  # (key, {member: (data, data offset)}), tar order


class _HashingReader:
    """A read-only stream that hashes and counts every byte read through it."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.sha256, self.size = stream, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _check_sample(key: str, members: dict[str, tuple[bytes, int]], row: dict[str, Any] | None) -> list[str]:
    names = sorted(members)
    if names != sorted(MEMBERS):
        return [f"sample {key!r}: members {names}, expected {list(MEMBERS)}"]
    if row is None:
        return [f"sample {key!r}: not in the parquet index"]
    problems = []
    try:
        record = json.loads(members["json"][0].decode("utf-8"))
        validate_record(record)
        if record["key"] != key:
            problems.append(f"sample {key!r}: json record key is {record['key']!r}")
        if members["txt"][0].decode("utf-8") != first_text(record):
            problems.append(f"sample {key!r}: txt is not the first caption")
    except (ValueError, UnicodeDecodeError) as exc:
        problems.append(f"sample {key!r}: bad json record: {exc}")
    jpg = members["jpg"][0]
    if not is_jpeg(jpg) or hashlib.sha256(jpg).hexdigest() != row["jpg_sha256"]:
        problems.append(f"sample {key!r}: jpg differs from its index hash")
    for member in MEMBERS:
        data, offset = members[member]
        if (offset, len(data)) != (row[f"{member}_offset"], row[f"{member}_size"]):
            problems.append(f"sample {key!r}: {member} offset/size differ from the index")
    return problems


def _read_samples(reader: _HashingReader, max_member_bytes: int) -> tuple[Samples, list[str], set[str]]:
    """The samples in tar order, the problems met reading them (members not read, an unreadable tar),
    and the keys of the samples with a member not read (left out of the sample checks)."""
    samples: Samples = []
    problems: list[str] = []
    unread: set[str] = set()
    try:
        for item in tar_members(reader, max_member_bytes):
            if item.problem:
                problems.append(f"member {item.name!r}: {item.problem}")
            if item.key is None:
                continue
            if not samples or samples[-1][0] != item.key:
                samples.append((item.key, {}))
            if item.data is None:
                unread.add(item.key)
            else:
                samples[-1][1][item.member] = (item.data, item.offset)
        reader.drain()
    except Exception as exc:  # whatever a damaged stream raises (tarfile, the filesystem)
        problems.append(f"unreadable tar ({error_line(exc)})")
    return samples, problems, unread


def _check_shard(
    fs: Any, root: str, stem: str, stats: dict[str, Any], has_index: bool, max_member_bytes: int
) -> list[str]:
    problems = []
    index_path = layout.path_of(fs, root, stem + layout.INDEX_SUFFIX)
    rows: dict[str, dict[str, Any]] = {}
    index_keys: list[str] = []
    if not has_index:  # known from the folder listing: no extra round trip on remote storage
        problems.append("parquet index missing")
    else:
        index_bytes = fs.cat_file(index_path)
        if hashlib.sha256(index_bytes).hexdigest() != stats["index_sha256"]:
            problems.append("parquet index sha256 differs from _stats.json")
        try:
            index_rows = pq.read_table(io.BytesIO(index_bytes)).to_pylist()
            index_keys = [r["key"] for r in index_rows]
            rows = {r["key"]: r for r in index_rows}
        except Exception as exc:  # pyarrow raises several types for a damaged file
            problems.append(f"unreadable parquet index ({exc})")
    with fs.open(layout.path_of(fs, root, stem + layout.TAR_SUFFIX), "rb") as stream:
        reader = _HashingReader(stream)
        samples, read_problems, unread = _read_samples(reader, max_member_bytes)
    problems += read_problems
    if reader.size != stats["bytes"] or reader.sha256.hexdigest() != stats["sha256"]:
        problems.append("tar sha256/size differ from _stats.json (corrupt or rewritten)")
    keys = [key for key, _ in samples]
    if len(keys) != stats["count"]:
        problems.append(f"{len(keys)} samples, _stats.json says {stats['count']}")
    if rows and keys != index_keys:
        problems.append("sample keys differ from the parquet index (order or content)")
    if rows:  # without a readable index only the tar-level checks above apply
        for key, members in samples:
            if key not in unread:
                problems += _check_sample(key, members, rows.get(key))
    return problems


def _check_manifest(manifest: dict[str, Any] | None, stats_by_name: dict[str, dict[str, Any]]) -> list[str]:
    if manifest is None:
        return [f"{layout.MANIFEST_NAME}: missing (run write_manifest / `spac shards manifest`)"]
    problems = []
    listed = {entry["shard"]: entry for entry in manifest["shards"]}
    for name in sorted(set(listed) - set(stats_by_name)):
        problems.append(f"{name}: listed in {layout.MANIFEST_NAME} but missing or incomplete")
    for name in sorted(set(stats_by_name) - set(listed)):
        problems.append(f"{name}: complete but not listed in {layout.MANIFEST_NAME}")
    for name in sorted(set(listed) & set(stats_by_name)):
        for field in ("count", "bytes", "sha256"):
            if listed[name][field] != stats_by_name[name][field]:
                problems.append(f"{name}: {layout.MANIFEST_NAME} {field} differs from _stats.json")
    if manifest["totals"].get("samples") != sum(entry["count"] for entry in listed.values()):
        problems.append(f"{layout.MANIFEST_NAME}: totals.samples is not the sum of its shards")
    return problems


def verify_corpus(
    directory: str, progress: Callable[[str], None] | None = None, max_member_bytes: int = MAX_MEMBER_BYTES
) -> list[str]:
    """Every problem found in the corpus folder, one line each, prefixed by the file; empty when it is sound.

    ``progress`` is called with each shard name once it is checked. ``max_member_bytes``: a bigger tar
    member is a problem and is not read into memory (the reader's limit). FileNotFoundError when
    ``directory`` is not a folder.
    """
    fs, root = remote.resolve(directory)
    if not fs.isdir(root):
        raise FileNotFoundError(2, "no such corpus folder", directory)
    problems: list[str] = []
    stats_by_name: dict[str, dict[str, Any]] = {}
    for stem, suffixes in layout.shard_files(fs, root).items():
        name = stem + layout.TAR_SUFFIX
        if layout.STATS_SUFFIX not in suffixes:
            what = (
                "incomplete shard: no _stats.json (write it again)"
                if layout.TAR_SUFFIX in suffixes
                else "index without a shard"
            )
            problems.append(f"{name}: {what}")
            continue
        try:
            stats = checked_stats(read_stats(fs, root, stem), stem)
        except InputError as exc:
            problems.append(f"{name}: unreadable _stats.json ({exc})")
            continue
        stats_by_name[name] = stats
        if layout.TAR_SUFFIX not in suffixes:
            problems.append(f"{name}: missing (its _stats.json exists)")
            continue
        shard_problems = _check_shard(fs, root, stem, stats, layout.INDEX_SUFFIX in suffixes, max_member_bytes)
        problems += [f"{name}: {p}" for p in shard_problems]
        if progress is not None:
            progress(name)
    manifest_path = layout.path_of(fs, root, layout.MANIFEST_NAME)
    try:
        manifest = read_manifest_file(fs, manifest_path) if fs.exists(manifest_path) else None
    except InputError as exc:
        return problems + [f"{layout.MANIFEST_NAME}: unreadable ({exc})"]
    return problems + _check_manifest(manifest, stats_by_name)
