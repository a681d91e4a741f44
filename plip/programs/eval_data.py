"""Evaluation data: dataset JSON files, and the query sets and galleries (``plip.retrieval``) of their splits
and of held-out identities of our shards.

CUHK-PEDES (`reid_raw.json`) and ICFG-PEDES (`ICFG_PEDES.json`) are JSON lists of
``{split, captions, file_path, processed_tokens, id}`` with images under ``<root>/imgs/<file_path>``;
RSTPReid (`data_captions.json`) lists ``{id, img_path, captions, split}`` with images under
``<root>/imgs/<img_path>``; SYNTH-PEDES (`synthpedes_dataset.json`) has no ``split`` but ``attributes`` and
``prompt_caption``. The layout of a file (which key holds the image path) is :mod:`spac.sources.caption_files`'
and is detected from its first entry; entries of the RSTPReid layout are read into the CUHK-PEDES one
(``img_path`` becomes ``file_path``), so everything downstream, and the split files of
``python -m plip.dataset_split``, sees one layout. Every entry is checked, with plip's stricter rules, and a bad
one is reported in one line naming the file, the entry index and the field as the file spells it.
Our own corpus is read only through ``shards``.
"""

from __future__ import annotations

import json
from collections.abc import Container, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from PIL import Image

import shards
from common.errors import InputError
from plip.retrieval import Gallery, QuerySet
from plip.transforms import EVAL_HEIGHT, EVAL_WIDTH
from shards.sample import record_texts
from spac.sources.caption_files import PATH_KEYS, REID_RAW, RSTPREID, detect_format

DATASET_JSON = {"CUHK-PEDES": "reid_raw.json", "ICFG-PEDES": "ICFG_PEDES.json", "RSTPReid": "data_captions.json"}
DATASET_NAMES = ", ".join(DATASET_JSON)  # for help texts: "CUHK-PEDES, ICFG-PEDES, RSTPReid"
SPLITS = ("train", "test", "valid")
IMAGE_KEY = PATH_KEYS[REID_RAW]  # "file_path": the key every entry read here holds its image under


class DatasetFormatError(InputError):
    """A malformed dataset file or entry; the message is one line naming the file, entry index and field."""


def split_group(split: str) -> str:
    """The released routing: "train" and "test" keep their name, every other split value is "valid"."""
    return split if split in ("train", "test") else "valid"


def _is_str_list(value: Any, allow_empty: bool = False) -> bool:
    return (
        isinstance(value, list)
        and (allow_empty or len(value) > 0)
        and all(isinstance(item, str) and item.strip() for item in value)
    )


def _entry_problem(entry: Any, require_split: bool, path_key: str = IMAGE_KEY) -> str | None:
    """What is wrong with one entry whose image path is under ``path_key``, or None when it is fine."""
    if not isinstance(entry, dict):
        return f"must be an object, got {type(entry).__name__}"
    identity = entry.get("id")
    if not isinstance(identity, int) or isinstance(identity, bool) or identity < 0:
        return f"'id' must be a non-negative integer, got {identity!r}"
    file_path = entry.get(path_key)
    if not isinstance(file_path, str) or not file_path.strip():
        return f"{path_key!r} must be a non-empty string, got {file_path!r}"
    posix = PurePosixPath(file_path.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts:
        return f"{path_key!r} must be relative to the dataset's image folder, got {file_path!r}"
    if not _is_str_list(entry.get("captions")):
        return "'captions' must be a non-empty list of strings"
    if require_split or "split" in entry:
        split = entry.get("split")
        if not isinstance(split, str) or not split:
            return f"'split' must be a string such as 'train', 'test' or 'val', got {split!r}"
    if "processed_tokens" in entry:
        tokens = entry["processed_tokens"]
        if not isinstance(tokens, list) or not all(
            isinstance(t, list) and all(isinstance(word, str) for word in t) for t in tokens
        ):
            return "'processed_tokens' must be a list of token lists (lists of strings)"
    if "prompt_caption" in entry and not _is_str_list(entry["prompt_caption"], allow_empty=True):
        return "'prompt_caption' must be a list of strings"
    return None


class DatasetFile(NamedTuple):
    """A checked dataset file: its entries in the CUHK-PEDES layout and the key its images were under."""

    entries: list[dict[str, Any]]
    path_key: str  # "file_path", or "img_path" for a file in the RSTPReid layout


def _layout(first: Any, source: str) -> str:
    """The layout of a file, from its first entry (:func:`spac.sources.caption_files.detect_format`); an entry that
    is not an object is left to the entry checks, which name it."""
    if not isinstance(first, dict):
        return REID_RAW
    try:
        return detect_format(first, source)
    except InputError as exc:
        raise DatasetFormatError(str(exc)) from None


def as_reid_raw(entry: dict[str, Any]) -> dict[str, Any]:
    """An RSTPReid entry in the CUHK-PEDES layout: ``{split, captions, file_path, id}`` in that order, its
    ``img_path`` as ``file_path``; any other key follows, unchanged."""
    known = {"split", "captions", PATH_KEYS[RSTPREID], IMAGE_KEY, "id"}  # an extra file_path gives way to img_path
    converted = {key: entry[key] for key in ("split", "captions") if key in entry}
    converted[IMAGE_KEY] = entry[PATH_KEYS[RSTPREID]]
    converted.update((key, value) for key, value in entry.items() if key not in known)
    converted["id"] = entry["id"]
    return converted


def check_entries(entries: Any, source: str, require_split: bool = True) -> DatasetFile:
    """Check a loaded JSON document entry by entry (DatasetFormatError on the first bad one); entries of the
    CUHK-PEDES layout are kept as they are, those of the RSTPReid layout converted (:func:`as_reid_raw`)."""
    if not isinstance(entries, list):
        raise DatasetFormatError(f"{source}: must hold a JSON list of entries, got {type(entries).__name__}")
    if not entries:
        raise DatasetFormatError(f"{source}: holds no entries")
    layout = _layout(entries[0], source)
    path_key = PATH_KEYS[layout]
    for index, entry in enumerate(entries):
        problem = _entry_problem(entry, require_split, path_key)
        if problem:
            raise DatasetFormatError(f"{source}: entry {index}: {problem}")
    if layout == RSTPREID:
        entries = [as_reid_raw(entry) for entry in entries]
    return DatasetFile(entries, path_key)


def read_dataset_file(path: str | Path, require_split: bool = True) -> DatasetFile:
    """Read and check a CUHK-PEDES / ICFG-PEDES / RSTPReid / SYNTH-PEDES style JSON list (:func:`check_entries`)."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            document = json.load(handle)
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{path}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise DatasetFormatError(f"{path}: not UTF-8 text") from None
    return check_entries(document, str(path), require_split)


def read_dataset_json(path: str | Path, require_split: bool = True) -> list[dict[str, Any]]:
    """:func:`read_dataset_file`'s entries, all in the CUHK-PEDES layout (those of that layout as they are)."""
    return read_dataset_file(path, require_split).entries


def eval_set_from_entries(
    entries: Sequence[dict[str, Any]],
    images_root: str | Path,
    source: str = "dataset",
    indices: Sequence[int] | None = None,
    path_key: str = IMAGE_KEY,
) -> tuple[QuerySet, Gallery]:
    """Queries = every caption of every entry; gallery = the unique images (first appearance order).

    Image files must exist under ``images_root``; an image listed twice with different identities is an error.
    ``indices`` are the entries' positions in ``source`` and ``path_key`` the key ``source`` holds the image
    path under, for error messages (default: 0, 1, ... and "file_path").
    """
    images_root = Path(images_root)
    texts: list[str] = []
    query_ids: list[int] = []
    first_seen: dict[str, int] = {}
    for index, entry in zip(indices if indices is not None else range(len(entries)), entries):
        key, identity = entry[IMAGE_KEY], entry["id"]
        if key in first_seen:
            if first_seen[key] != identity:
                raise DatasetFormatError(
                    f"{source}: entry {index}: {path_key!r} {key!r} already listed with "
                    f"identity {first_seen[key]}, here {identity}"
                )
        else:
            if not (images_root / key).is_file():
                raise DatasetFormatError(f"{source}: entry {index}: image not found: {images_root / key}")
            first_seen[key] = identity
        texts.extend(entry["captions"])
        query_ids.extend([identity] * len(entry["captions"]))
    keys = tuple(first_seen)
    gallery = Gallery(images=tuple(images_root / key for key in keys), ids=tuple(first_seen.values()), keys=keys)
    return QuerySet(tuple(texts), tuple(query_ids)), gallery


class SplitEntries(NamedTuple):
    """Entries of one split (CUHK-PEDES layout), their source file, their positions in it (None: 0, 1, ...)
    and the key the source holds image paths under."""

    entries: list[dict[str, Any]]
    source: str
    indices: list[int] | None
    path_key: str = IMAGE_KEY


def read_split(dataset: str, root: str | Path, split: str) -> SplitEntries:
    """Entries of one split of CUHK-PEDES, ICFG-PEDES or RSTPReid under ``root``: ``<root>/<dataset>-<split>.json``
    (``python -m plip.dataset_split``) when present, otherwise the entries of the full JSON file
    (:data:`DATASET_JSON`) whose ``split`` routes to ``split``."""
    if dataset not in DATASET_JSON:
        raise DatasetFormatError(f"unknown dataset {dataset!r} (choose from {DATASET_NAMES})")
    root = Path(root)
    split_file = root / f"{dataset}-{split}.json"
    if split_file.is_file():
        entries, path_key = read_dataset_file(split_file, require_split=False)
        return SplitEntries(entries, str(split_file), None, path_key)
    full_file = root / DATASET_JSON[dataset]
    if not full_file.is_file():
        raise DatasetFormatError(f"{root}: neither {split_file.name} nor {full_file.name} found")
    entries, path_key = read_dataset_file(full_file)
    kept = [(i, e) for i, e in enumerate(entries) if split_group(e["split"]) == split]
    if not kept:
        raise DatasetFormatError(f"{full_file}: no entries in split {split!r}")
    return SplitEntries([e for _, e in kept], str(full_file), [i for i, _ in kept], path_key)


def load_eval_split(dataset: str, root: str | Path, split: str = "test") -> tuple[QuerySet, Gallery]:
    """Queries and gallery of one split (:func:`read_split`) of CUHK-PEDES, ICFG-PEDES or RSTPReid stored under
    ``root``; ``val`` is an alias of ``valid``."""
    split = "valid" if split == "val" else split
    if split not in SPLITS:
        raise DatasetFormatError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    entries, source, indices, path_key = read_split(dataset, root, split)
    return eval_set_from_entries(entries, Path(root) / "imgs", source, indices, path_key)


@dataclass(frozen=True)
class IdentityRanges:
    """A set of identities given as inclusive ranges, e.g. parsed from ``"900-999,1200"``."""

    ranges: tuple[tuple[int, int], ...]

    def __contains__(self, identity: object) -> bool:
        return isinstance(identity, int) and any(low <= identity <= high for low, high in self.ranges)


def parse_identities(text: str) -> IdentityRanges:
    """Parse ``A-B`` (inclusive), ``A`` or comma-separated mixes of both into an IdentityRanges."""
    ranges = []
    for part in text.split(","):
        low, sep, high = part.strip().partition("-")
        try:
            bounds = (int(low), int(high) if sep else int(low))
        except ValueError:
            raise InputError(
                f"identities must look like 'A-B' or 'A,B,C' (non-negative integers), got {text!r}"
            ) from None
        if bounds[0] < 0 or bounds[0] > bounds[1]:
            raise InputError(f"identity range {part.strip()!r} is empty or negative")
        ranges.append(bounds)
    return IdentityRanges(tuple(ranges))


def eval_set_from_shards(source: str | Sequence[str], identities: Container[int]) -> tuple[QuerySet, Gallery]:
    """Queries and gallery from the held-out identities of our corpus shards.

    Queries are each kept sample's style captions plus its template sentence (``prompt_caption``); gallery
    images are kept in memory already resized to 256x128 (the transform's own first step, so the result is
    the same), which bounds memory at ~100 KB per image.
    """
    texts: list[str] = []
    query_ids: list[int] = []
    images: list[Image.Image] = []
    gallery_ids: list[int] = []
    keys: list[str] = []
    for sample in shards.iter_samples(source):
        record = sample["json"]
        if record.get("id") not in identities:
            continue
        captions = record_texts(record)
        if not captions:
            continue
        texts.extend(captions)
        query_ids.extend([record["id"]] * len(captions))
        images.append(sample["jpg"].convert("RGB").resize((EVAL_WIDTH, EVAL_HEIGHT), Image.Resampling.BICUBIC))
        gallery_ids.append(record["id"])
        keys.append(sample["__key__"])
    if not images:
        raise DatasetFormatError(f"{source}: no samples with the selected identities")
    return QuerySet(tuple(texts), tuple(query_ids)), Gallery(tuple(images), tuple(gallery_ids), tuple(keys))
