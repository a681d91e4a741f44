"""Corpus-wide files built from parts, so no worker ever holds the whole corpus.

``synthpedes_dataset.json`` (millions of entries) and ``deadletter.jsonl`` (millions of lines at
LUPerson-NL scale) are never one element. Each shard's writer puts its released entries in a part
file ``_parts/dataset-<index>.jsonl``; dead letters go to buckets (hashed into :data:`DEAD_LETTER_BUCKETS`,
or blocks of :data:`LETTERS_PER_BLOCK` positions when a job orders its letters) and each bucket writes
``_parts/deadletter-<bucket>.jsonl``. Once every part is written, one step streams the parts, in index
order, into the final file (one part in memory at a time) and removes them. The elements that reach that
step are part numbers: O(shards + buckets).

The same input gives the same bytes: entries inside a part are in key order, letters inside a bucket
are sorted, parts are joined in index order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from common.digests import stable_int
from shards import remote

PARTS_DIR = "_parts"
DEAD_LETTER_BUCKETS = 1024  # at 10M letters ~10k lines (~1.5 MB) per bucket element
LETTERS_PER_BLOCK = 10_000  # ordered letters: positions per bucket (a job's letter per entry: ~1.5 MB)


def dataset_part_name(index: int) -> str:
    return f"dataset-{index:06d}.jsonl"


def dead_letter_part_name(bucket: int) -> str:
    return f"deadletter-{bucket:05d}.jsonl"


def _parts_folder(output: str) -> tuple[Any, str]:
    fs, root = remote.resolve(output)
    return fs, remote.join(fs, root, PARTS_DIR)


def write_part(output: str, name: str, text: str, durable: bool = True) -> None:
    """Publish one part atomically (a rerun of the same step rewrites it with the same bytes); ``durable``
    as in :func:`shards.remote.publish_bytes`."""
    fs, folder = _parts_folder(output)
    fs.makedirs(folder, exist_ok=True)
    remote.publish_bytes(fs, text.encode("utf-8"), remote.join(fs, folder, name), durable)


def dead_letter_bucket(line: str) -> int:
    return stable_int(line) % DEAD_LETTER_BUCKETS


def position_bucket(position: int) -> int:
    """The bucket of a letter at ``position`` of a job's order (-1, a letter of no position, goes first)."""
    return max(position, 0) // LETTERS_PER_BLOCK


def write_dead_letter_bucket(grouped: tuple[int, Iterable[tuple[int, str]]], output: str) -> int:
    """Write one bucket's ``(position, line)`` letters, sorted, as a part; return the bucket number."""
    bucket, letters = grouped
    # not fsynced: every run rebuilds all its letters, and at ~1 letter per bucket an fsync per part was most
    # of the step's time; the assembled deadletter.jsonl is fsynced
    text = "".join(line + "\n" for _, line in sorted(letters))
    write_part(output, dead_letter_part_name(bucket), text, durable=False)
    return bucket


def _read_parts(fs: Any, folder: str, names: list[str]) -> Iterator[str]:
    for name in names:
        with fs.open(remote.join(fs, folder, name), "rb") as stream:
            yield stream.read().decode("utf-8")


def _remove_parts(fs: Any, folder: str, names: list[str]) -> None:
    for name in names:
        fs.rm(remote.join(fs, folder, name))
    try:  # the last assembler to finish removes the (local) folder; object stores have none
        if fs.exists(folder) and not fs.ls(folder, detail=False):
            fs.rmdir(folder)
    except OSError:
        pass  # the other assembler is still writing or removing there


def _dataset_chunks(texts: Iterator[str]) -> Iterator[bytes]:
    """The released JSON list, one entry per line, from parts that each hold entries joined by ``,\\n``."""
    first = True
    for text in texts:
        if text:
            yield (("[\n" if first else ",\n") + text).encode("utf-8")
            first = False
    yield b"[]\n" if first else b"\n]\n"


def assemble_dataset_json(shard_indices: Iterable[int], output: str, name: str) -> str:
    """Stream the dataset parts of ``shard_indices`` into ``name``, then remove them; the final path."""
    fs, folder = _parts_folder(output)
    names = [dataset_part_name(index) for index in sorted(shard_indices)]
    path = remote.join(fs, remote.resolve(output)[1], name)
    remote.publish_chunks(fs, _dataset_chunks(_read_parts(fs, folder, names)), path)
    _remove_parts(fs, folder, names)
    return path


def assemble_dead_letters(buckets: Iterable[int], output: str, name: str) -> str:
    """Concatenate the dead-letter parts of ``buckets`` in bucket order into ``name``; remove the parts."""
    fs, folder = _parts_folder(output)
    names = [dead_letter_part_name(bucket) for bucket in sorted(buckets)]
    path = remote.join(fs, remote.resolve(output)[1], name)
    remote.publish_chunks(fs, (text.encode("utf-8") for text in _read_parts(fs, folder, names)), path)
    _remove_parts(fs, folder, names)
    return path
