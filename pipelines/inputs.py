"""Where the job's images come from: a folder, a glob or a manifest, read through Beam's FileSystems.

Each image becomes an :class:`ImageRef`: its source path, its released-style ``file_path`` relative
to the input root (``[<part>/]<identity>/<image>``), its identity label (``[<part>/]<identity>``) and
its corpus key (``[A-Za-z0-9_-]``, unique per file_path).
"""
from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import re
from typing import Iterator, NamedTuple

import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from shards.keys import make_key

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".parquet")
_GLOB_CHARS = re.compile(r"[*?\[]")


class ImageRef(NamedTuple):
    source: str
    file_path: str
    identity: str
    key: str


class InputSpec(NamedTuple):
    """How to list the input: a glob ``pattern`` under ``root``, or a ``manifest`` file."""

    root: str
    pattern: str | None = None
    manifest: str | None = None


def resolve_input(location: str) -> InputSpec:
    """Classify ``--input``; ValueError when a folder or manifest does not exist."""
    location = location.rstrip("/") if len(location) > 1 else location
    if "://" not in location:
        location = os.path.abspath(location)  # matched paths come back absolute; keep one form
    if _GLOB_CHARS.search(location):
        root = _GLOB_CHARS.split(location, 1)[0].rsplit("/", 1)[0]
        return InputSpec(root=root, pattern=location)
    # Object stores have no folders, so only a local input can be checked before the job starts.
    missing = "://" not in location and not os.path.exists(location)
    if location.lower().endswith(MANIFEST_SUFFIXES):
        if missing:
            raise ValueError(f"input manifest {location} does not exist")
        return InputSpec(root=posixpath.dirname(location), manifest=location)
    if missing:
        raise ValueError(f"input folder {location} does not exist")
    if "://" not in location and not os.path.isdir(location):
        raise ValueError(f"input {location} is a file but not a manifest (expected a folder, a glob or a "
                         f"{', '.join(MANIFEST_SUFFIXES)} file)")
    return InputSpec(root=location, pattern=FileSystems.join(location, "**"))


def ref_from_path(root: str, path: str) -> ImageRef | str:
    """The ImageRef of a matched file, or a reason string when it sits outside the folder layout."""
    relative = path[len(root):].lstrip("/") if path.startswith(root) else path
    parts = relative.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        return "path not in the <root>/[<part>/]<identity>/<image> layout"
    return ImageRef(path, relative, "/".join(parts[:-1]), make_key(relative))


def is_beside_identities(root: str, path: str) -> bool:
    """A file directly in the root (a labels file, a README): not an image of any identity."""
    return "/" not in path[len(root):].lstrip("/") if path.startswith(root) else False


def _manifest_rows(path: str, data: bytes) -> Iterator[dict]:
    if path.lower().endswith(".parquet"):
        yield from pq.read_table(io.BytesIO(data)).to_pylist()
    elif path.lower().endswith(".jsonl"):
        for number, line in enumerate(data.decode("utf-8").splitlines(), 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}: line {number}: invalid JSON ({exc.msg})") from None
    else:
        yield from csv.DictReader(io.StringIO(data.decode("utf-8")))


def read_manifest(path: str) -> list[ImageRef]:
    """The images a manifest lists; relative paths are taken from the manifest's folder."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        data = stream.read()
    root = posixpath.dirname(path)
    refs: dict[str, ImageRef] = {}  # by file_path: a row listed twice is one image
    for number, row in enumerate(_manifest_rows(path, data), 1):
        if not isinstance(row, dict) or not row.get("path") or row.get("identity") in (None, ""):
            raise ValueError(f"{path}: row {number}: needs non-empty 'path' and 'identity' columns")
        image, identity = str(row["path"]), str(row["identity"])
        is_url = "://" in image
        is_absolute = image.startswith("/") or is_url
        if not is_url:
            image = posixpath.normpath(image)  # one spelling per file: a/./b.jpg and x/../a/b.jpg are a/b.jpg
        source = image if is_absolute else FileSystems.join(root, image)
        file_path = posixpath.normpath(image if not is_absolute else f"{identity}/{posixpath.basename(image)}")
        if file_path == ".." or file_path.startswith(("../", "/")):
            raise ValueError(f"{path}: row {number}: {row['path']} (identity {identity}) would be stored as "
                             f"{file_path}, outside the corpus root; give a path inside the manifest's folder")
        ref = refs.setdefault(file_path, ImageRef(source, file_path, identity, make_key(file_path)))
        if (ref.source, ref.identity) != (source, identity):
            raise ValueError(f"{path}: row {number}: {image} would be stored as {file_path}, like {ref.source} "
                             f"(identity {ref.identity}) listed before it")
    return list(refs.values())
