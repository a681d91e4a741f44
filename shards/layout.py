"""File names of a corpus folder, declared here only: ``<prefix>-%06d.tar`` + ``.parquet`` + ``_stats.json`` per
shard, ``manifest.json``, and the job's own files (``job.json``, the released-format dataset JSON, the dead
letters, the filter report)."""

from __future__ import annotations

import re
from typing import Any

from common.errors import InputError
from shards import remote

DEFAULT_PREFIX = "synthpedes"
MANIFEST_NAME = "manifest.json"
JOB_NAME = "job.json"
DATASET_NAME = "synthpedes_dataset.json"
DEAD_LETTER_NAME = "deadletter.jsonl"
FILTER_REPORT_NAME = "filter_report.json"
IMPORT_REPORT_NAME = "import_report.json"
TAR_SUFFIX, INDEX_SUFFIX, STATS_SUFFIX = ".tar", ".parquet", "_stats.json"
FORMAT_VERSION = 1
# Dead-letter stages (``deadletter.jsonl``'s "stage"), declared once for both jobs' writers and the report.
# synthesis: read -> decode -> filter -> clean -> write; import: read -> parse -> dedupe -> decode -> mine -> write
STAGE_READ, STAGE_PARSE, STAGE_DEDUPE, STAGE_DECODE = "read", "parse", "dedupe", "decode"
STAGE_MINE, STAGE_FILTER, STAGE_CLEAN, STAGE_WRITE = "mine", "filter", "clean", "write"
DEAD_LETTER_STAGES = (
    STAGE_READ,
    STAGE_PARSE,
    STAGE_DEDUPE,
    STAGE_DECODE,
    STAGE_MINE,
    STAGE_FILTER,
    STAGE_CLEAN,
    STAGE_WRITE,
)
# the stages whose records never became a decoded image (every later stage decoded it first)
STAGES_BEFORE_DECODED = (STAGE_READ, STAGE_PARSE, STAGE_DEDUPE, STAGE_DECODE)
_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*")
SHARD_FILE = re.compile(r"(?P<stem>(?P<prefix>.+)-(?P<index>\d{6}))(?P<suffix>\.tar|\.parquet|_stats\.json)")


def shard_stem(index: int, prefix: str = DEFAULT_PREFIX) -> str:
    if not _PREFIX_PATTERN.fullmatch(prefix):
        raise InputError(f"prefix {prefix!r}: expected letters, digits, '_' and inner '-'")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 999_999:
        raise ValueError(f"shard index {index!r}: expected an integer 0..999999")
    return f"{prefix}-{index:06d}"


def tar_name(index: int, prefix: str = DEFAULT_PREFIX) -> str:
    return shard_stem(index, prefix) + TAR_SUFFIX


def index_name(index: int, prefix: str = DEFAULT_PREFIX) -> str:
    return shard_stem(index, prefix) + INDEX_SUFFIX


def stats_name(index: int, prefix: str = DEFAULT_PREFIX) -> str:
    return shard_stem(index, prefix) + STATS_SUFFIX


def shard_files(fs: Any, directory: str) -> dict[str, set[str]]:
    """Shard stem -> the suffixes present (``.tar``, ``.parquet``, ``_stats.json``); temporary files skipped."""
    found: dict[str, set[str]] = {}
    for path in fs.ls(directory, detail=False):
        match = SHARD_FILE.fullmatch(path.rstrip("/").rsplit("/", 1)[-1])
        if match:
            found.setdefault(match["stem"], set()).add(match["suffix"])
    return dict(sorted(found.items()))


def complete_stems(fs: Any, directory: str, prefix: str | None = None) -> list[str]:
    """Sorted stems of the shards whose ``_stats.json`` completion marker exists."""
    return [
        stem
        for stem, suffixes in shard_files(fs, directory).items()
        if STATS_SUFFIX in suffixes and (prefix is None or stem.rsplit("-", 1)[0] == prefix)
    ]


def path_of(fs: Any, directory: str, name: str) -> str:
    return remote.join(fs, directory, name)
