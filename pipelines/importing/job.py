"""The import job's validated settings: flags in, a frozen ``ImportJob`` out, every bad value named in one line
(an :class:`~common.errors.InputError`); and its fingerprint, the settings that enter job.json.

The dataset's JSON file is found (``--input`` names it or the folder holding it), its format told (from
``--format``, the file name, or the keys of its first entry, which is read here through Beam's
FileSystems: a few bytes of a file of any size) and checked against that first entry, so a wrong file
stops before the job starts.
"""

from __future__ import annotations

import argparse
import os
import posixpath
from dataclasses import dataclass
from typing import Any

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from common.errors import InputError, error_line
from pipelines.importing.options import FORMATS
from pipelines.shared.options import checked_prefix
from shards import layout
from spac.attributes import load_schema
from spac.fingerprint import package_version, templates_sha256
from spac.sources import caption_files as caption_datasets
from spac.sources.json_lists import JsonListError, SkippedEntry, iter_json_list

SYNTHPEDES = "synthpedes"
# format -> the layout of its entries (spac.sources.caption_files' names for the human-captioned ones)
LAYOUTS = {
    SYNTHPEDES: SYNTHPEDES,
    "cuhk-pedes": caption_datasets.REID_RAW,
    "icfg-pedes": caption_datasets.REID_RAW,
    "rstpreid": caption_datasets.RSTPREID,
}
# the file names the datasets are released under -> their format
FILE_NAMES = {
    layout.DATASET_NAME: SYNTHPEDES,
    "reid_raw.json": "cuhk-pedes",
    "ICFG_PEDES.json": "icfg-pedes",
    "data_captions.json": "rstpreid",
}
COMPRESSED_SUFFIXES = (".gz", ".bz2")
HUMAN_IMAGES = "imgs"  # the image folder beside the JSON file of CUHK-PEDES, ICFG-PEDES and RSTPReid
RELEASED = "released"  # the attribute mode of SYNTH-PEDES: its released attributes are kept


@dataclass(frozen=True)
class ImportJob:
    """The validated settings the graph is built from."""

    format: str
    annotations: str  # the JSON file
    images: str  # the folder the entries' file paths are relative to
    output: str
    split: str | None  # None: every entry
    attributes: str  # mine | unknown | released
    shard_size: int
    prefix: str
    max_pixels: int
    max_file_bytes: int


def _absolute(location: str) -> str:
    location = location.rstrip("/") if len(location) > 1 else location
    return location if "://" in location else os.path.abspath(location)


def _base_name(path: str) -> str:
    name = posixpath.basename(path)
    for suffix in COMPRESSED_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def _is_file_name(path: str) -> bool:
    return _base_name(path).lower().endswith(".json")


def find_annotations(location: str, fmt: str | None) -> str:
    """The JSON file ``--input`` names, or the dataset file in the folder it names; InputError when none."""
    location = _absolute(location)
    if _is_file_name(location) or ("://" not in location and os.path.isfile(location)):
        if not FileSystems.exists(location):
            raise InputError(f"--input {location} does not exist")
        return location
    if "://" not in location and not os.path.isdir(location):
        raise InputError(f"--input {location} does not exist")
    found = [
        FileSystems.join(location, name + suffix)
        for name, name_format in FILE_NAMES.items()
        if fmt is None or name_format == fmt
        for suffix in ("", *COMPRESSED_SUFFIXES)
    ]
    found = [path for path in found if FileSystems.exists(path)]
    if len(found) != 1:
        names = ", ".join(name for name, f in FILE_NAMES.items() if fmt is None or f == fmt)
        problem = "holds none of" if not found else f"holds several ({', '.join(map(posixpath.basename, found))}) of"
        raise InputError(
            f"--input {location} {problem} {names}; name the JSON file" + ("" if fmt else " (or pass --format)")
        )
    return found[0]


def first_entry(path: str) -> Any:
    """The first entry of the JSON list at ``path`` that the reader builds; InputError when it is not a JSON
    list holding one."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as stream:
            # an entry the reader skips (too long or deep, not valid Unicode) is that entry's dead letter in the job
            entry = next((e for e in iter_json_list(stream, path) if not isinstance(e, SkippedEntry)), _NOTHING)
    except JsonListError as exc:
        raise InputError(f"--input {exc}") from None
    except OSError as exc:
        raise InputError(f"--input {path}: cannot read ({error_line(exc)})") from None
    if entry is _NOTHING:
        raise InputError(f"--input {path}: the list holds no entries")
    return entry


_NOTHING = object()


def layout_of(entry: Any) -> str | None:
    """The layout an entry's keys belong to (None: none of them)."""
    if not isinstance(entry, dict):
        return None
    if "prompt_caption" in entry or "attributes" in entry:
        return SYNTHPEDES
    if "img_path" in entry:
        return caption_datasets.RSTPREID
    if "file_path" in entry and "split" in entry:
        return caption_datasets.REID_RAW
    return None


def detect_format(path: str, fmt: str | None, entry: Any) -> str:
    """``fmt``, else the format of the file's name, else of its first entry; checked against that entry."""
    named = FILE_NAMES.get(_base_name(path))
    found = layout_of(entry)
    keys = sorted(entry)[:6] if isinstance(entry, dict) else type(entry).__name__
    chosen = fmt or named
    if chosen is None:
        if found is None:
            raise InputError(
                f"--input {path}: cannot tell the format from the first entry (keys {keys}); "
                f"pass --format ({', '.join(FORMATS)})"
            )
        if found == caption_datasets.REID_RAW:
            raise InputError(
                f"--input {path}: entries in the CUHK-PEDES / ICFG-PEDES layout; pass --format "
                "cuhk-pedes or --format icfg-pedes"
            )
        chosen = next(f for f, layout_name in LAYOUTS.items() if layout_name == found)
    if found is not None and found != LAYOUTS[chosen]:
        how = "--format" if fmt else "the file name"
        raise InputError(
            f"--input {path}: {how} says {chosen}, but the first entry (keys {keys}) is not in its "
            "layout; pass the right --format"
        )
    return chosen


def _split(args: argparse.Namespace, fmt: str) -> str | None:
    if fmt == SYNTHPEDES:
        if args.split not in (None, "all"):
            raise InputError(f"--split {args.split}: SYNTH-PEDES has no splits (leave --split out)")
        return None
    split = args.split or "train"
    return None if split == "all" else split


def _attributes(args: argparse.Namespace, fmt: str) -> str:
    if fmt == SYNTHPEDES:
        if args.attributes is not None:
            raise InputError(
                f"--attributes {args.attributes}: SYNTH-PEDES keeps its released attributes (leave --attributes out)"
            )
        return RELEASED
    return args.attributes or "mine"


def _images(args: argparse.Namespace, annotations: str, fmt: str) -> str:
    if args.images is not None:
        images = _absolute(args.images)
    else:
        folder = posixpath.dirname(annotations) if "://" in annotations else os.path.dirname(annotations)
        images = folder if fmt == SYNTHPEDES else FileSystems.join(folder, HUMAN_IMAGES)
    # Object stores have no folders, so only a local one can be checked before the job starts.
    if "://" not in images and not os.path.isdir(images):
        raise InputError(
            f"--images {images} is not a folder" + ("" if args.images else f" (the default for {fmt}; pass --images)")
        )
    return images


def make_import_job(args: argparse.Namespace) -> ImportJob:
    """Check every setting before the job starts; InputError names the first bad one."""
    for flag in ("input", "output"):
        if not getattr(args, flag):
            raise InputError(f"--{flag} is required")
    annotations = find_annotations(args.input, args.format)
    fmt = detect_format(annotations, args.format, first_entry(annotations))
    prefix = checked_prefix(args.prefix or fmt.replace("-", ""))
    return ImportJob(
        format=fmt,
        annotations=annotations,
        images=_images(args, annotations, fmt),
        output=args.output,
        split=_split(args, fmt),
        attributes=_attributes(args, fmt),
        shard_size=args.shard_size,
        prefix=prefix,
        max_pixels=args.max_pixels,
        max_file_bytes=args.max_file_bytes,
    )


def fingerprint(job: ImportJob) -> dict[str, Any]:
    """Every setting of ``job`` that changes the corpus (for job.json): the output folder is left out."""
    return {
        "job": "import_corpus",
        "format_version": layout.FORMAT_VERSION,
        "package_version": package_version(),
        "schema_version": load_schema().version,  # which released phrases are in the schema; what mining finds
        "templates_sha256": templates_sha256(),
        "format": job.format,
        "input": job.annotations,
        "images": job.images,
        "split": job.split,
        "attributes": job.attributes,
        "shard_size": job.shard_size,
        "prefix": job.prefix,
        "max_pixels": job.max_pixels,
        "max_file_bytes": job.max_file_bytes,
    }
