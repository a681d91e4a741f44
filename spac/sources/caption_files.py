"""The human-captioned text-to-person datasets, read into one record type.

Three JSON layouts are in use (REFERENCE.md section 3 and 9); each file is a JSON list of entries:

- ``reid_raw``: CUHK-PEDES ``reid_raw.json`` and ICFG-PEDES ``ICFG_PEDES.json``:
  ``{split, captions, file_path, processed_tokens, id}`` (``file_path`` relative to the dataset's ``imgs/``);
- ``rstpreid``: RSTPReid ``data_captions.json``: ``{id, img_path, captions, split}``.

:func:`read_caption_file` detects the layout of each file from its first entry, checks every entry and
returns :class:`CaptionRecord` s (``id``, ``file_path``, ``captions``, ``split``), whatever the layout.
A malformed file is a one-line InputError naming the file and the entry index. Other keys of an entry
(``processed_tokens``, anything a derived file adds) are ignored. Pure Python: no model, no shards.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.config_files import parse_json
from common.errors import InputError

REID_RAW = "reid_raw"
RSTPREID = "rstpreid"
# layout -> the key that holds the image path; the other keys are common to both
PATH_KEYS = {REID_RAW: "file_path", RSTPREID: "img_path"}
FORMAT_NAMES = {
    REID_RAW: "CUHK-PEDES reid_raw.json / ICFG-PEDES ICFG_PEDES.json",
    RSTPREID: "RSTPReid data_captions.json",
}


@dataclass(frozen=True)
class CaptionRecord:
    """One image with its human captions; ``file_path`` is as the dataset gives it (relative to its images)."""

    id: int
    file_path: str
    captions: tuple[str, ...]
    split: str


@dataclass(frozen=True)
class CaptionFile:
    source: str
    format: str
    records: tuple[CaptionRecord, ...]

    @property
    def captions(self) -> int:
        return sum(len(r.captions) for r in self.records)


def detect_format(entry: Any, source: str = "<captions>") -> str:
    """The layout an entry (a JSON object) belongs to; InputError when it is neither."""
    if not isinstance(entry, dict):
        raise InputError(f"{source}: entry 0: expected a JSON object, got {type(entry).__name__}")
    for layout, key in PATH_KEYS.items():
        if key in entry:
            return layout
    raise InputError(
        f"{source}: entry 0: neither 'file_path' ({FORMAT_NAMES[REID_RAW]}) nor 'img_path' "
        f"({FORMAT_NAMES[RSTPREID]}) found; keys are {sorted(entry)[:6]}"
    )


def _record(entry: Any, layout: str, source: str, index: int) -> CaptionRecord:
    where = f"{source}: entry {index}"
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    path_key = PATH_KEYS[layout]
    for key in ("id", path_key, "captions", "split"):
        if key not in entry:
            raise InputError(f"{where}: missing key {key!r} (the file is in the {FORMAT_NAMES[layout]} layout)")
    identity, path, captions, split = entry["id"], entry[path_key], entry["captions"], entry["split"]
    if not isinstance(identity, int) or isinstance(identity, bool):
        raise InputError(f"{where}: 'id' must be an integer, got {json.dumps(identity)[:40]}")
    if not isinstance(path, str) or not path.strip():
        raise InputError(f"{where}: {path_key!r} must be a non-empty string, got {json.dumps(path)[:40]}")
    if not isinstance(split, str):
        raise InputError(f"{where}: 'split' must be a string, got {json.dumps(split)[:40]}")
    if not isinstance(captions, list):
        raise InputError(f"{where}: 'captions' must be a list of strings, got {json.dumps(captions)[:40]}")
    for i, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise InputError(f"{where}: captions[{i}] must be a string, got {json.dumps(caption)[:40]}")
    return CaptionRecord(identity, path, tuple(captions), split)


def parse_caption_entries(data: Any, source: str = "<captions>") -> CaptionFile:
    """Parsed JSON (a list of entries in one layout) -> a :class:`CaptionFile`."""
    if not isinstance(data, list):
        raise InputError(f"{source}: expected a JSON list of entries, got a JSON {type(data).__name__}")
    if not data:
        raise InputError(f"{source}: the file holds no entries")
    layout = detect_format(data[0], source)
    return CaptionFile(source, layout, tuple(_record(e, layout, source, i) for i, e in enumerate(data)))


def read_caption_file(path: str | Path) -> CaptionFile:
    """Read one caption JSON file of any of the three layouts."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return parse_caption_entries(parse_json(text, str(path)), str(path))


def read_caption_files(paths: Iterable[str | Path]) -> Iterator[CaptionFile]:
    """:func:`read_caption_file` for each path, in order."""
    for path in paths:
        yield read_caption_file(path)
