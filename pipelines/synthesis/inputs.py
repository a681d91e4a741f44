"""Where the job's images come from, read through Beam's FileSystems (local, gs://, s3://).

Input kinds (``--input_format``, inferred by default):

- ``folder``: ``<root>/[<part>/]<identity>/<image>``, or a glob over such files;
- ``manifest``: a .csv / .jsonl / .parquet file with ``path`` and ``identity`` columns;
- ``webdataset``: tar shards (a folder of ``.tar`` files, one ``.tar``, a glob, or a brace pattern such as
  ``/data/shards/{00000..00041}.tar``), e.g. img2dataset's output: samples are consecutive members sharing a
  ``__key__``, with an image member (``jpg``/``jpeg``/``png``/``webp``) and usually a ``json`` member; the
  identity comes from a json field (``--identity_field``) or from one regex group on the key
  (``--identity_pattern``, searched with a time limit per key: see :data:`IDENTITY_PATTERN_SECONDS`); a sample
  is stored as ``<identity>/<key>.<ext>``;
- ``luperson_nl``: LUPerson-NL's extracted images, ``<root>/<country>/<city>/<video>/<pid>_<frame>_<obj>.jpg``
  (DengpanFu/LUPerson-NL, ``LUP-NL/extract.py``): ``pid`` is the tracking pseudo label, unique only inside its
  video, so the identity is ``<country>/<city>/<video>/<pid>``.

Each image becomes an :class:`ImageRef`: its source (a path, or ``<shard>#<key>`` with the bytes in ``data``
for a webdataset sample), its released-style ``file_path`` relative to the input root, its identity label
and its corpus key (``[A-Za-z0-9_-]``, unique per file_path).
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import re
import tarfile
from collections.abc import Collection, Iterator
from typing import BinaryIO, NamedTuple

import braceexpand
import pyarrow.parquet as pq
import regex
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from common.errors import InputError
from common.paths import PathOutsideRoot
from pipelines.shared.file_names import one_spelling
from shards.keys import make_key

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".parquet")
INPUT_FORMATS = ("auto", "folder", "manifest", "webdataset", "luperson_nl")
IMAGE_MEMBERS = ("jpg", "jpeg", "png", "webp")  # a webdataset sample's image member, in order of preference
TAR_SUFFIX = ".tar"
_GLOB_CHARS = re.compile(r"[*?\[]")
_BRACES = re.compile(r"\{[^{}]*(?:\.\.|,)[^{}]*\}")
# webdataset's member naming: the key is the path up to the first dot of the file name, the member the rest
_MEMBER_NAME = re.compile(r"((?:.*/)?[^./]+)\.([^/]+)")
# LUP-NL/extract.py names each crop f"{pid:06d}_{frame_id:07d}_{obj_idx:02d}.jpg" inside its video's folder
LUPERSON_NL_NAME = re.compile(r"(\d+)_(\d+)_(\d+)\.(?:jpe?g|png)", re.IGNORECASE)
LUPERSON_NL_LAYOUT = "<root>/<country>/<city>/<video>/<pid>_<frame>_<obj>.jpg"
# The user's --identity_pattern runs on the `regex` engine with this limit per key: a pattern that backtracks
# without end ('^(a|a)+$' on 40 a's and a '!') would stall the job silently. A sane pattern takes microseconds.
IDENTITY_PATTERN_SECONDS = 0.1


class IdentityPatternTimedOut(InputError):
    """--identity_pattern took longer than :data:`IDENTITY_PATTERN_SECONDS` on one key; the message says so."""


class ImageRef(NamedTuple):
    source: str
    file_path: str
    identity: str
    key: str
    data: bytes | None = None  # the image's bytes when the input carries them (a webdataset sample)


class InputSpec(NamedTuple):
    """How to list the input: a glob ``pattern`` under ``root``, or a ``manifest`` file; ``format`` names the
    kinds that are not told apart by those two (``webdataset``: ``pattern`` is the shard pattern;
    ``luperson_nl``), with the identity rule of a webdataset input. Unset fields are None, so the
    fingerprint of a folder or manifest input is what it always was."""

    root: str
    pattern: str | None = None
    manifest: str | None = None
    format: str | None = None
    identity_field: str | None = None
    identity_pattern: str | None = None


def has_braces(location: str) -> bool:
    return bool(_BRACES.search(location))


def _local_tars(folder: str) -> bool:
    with os.scandir(folder) as entries:
        return any(e.name.endswith(TAR_SUFFIX) and e.is_file() for e in entries)


def _looks_like_luperson_nl(folder: str) -> bool:
    """Following the first sub-folder three levels down (country, city, video), the first file there is
    named ``<pid>_<frame>_<obj>.jpg``."""
    for _ in range(3):
        with os.scandir(folder) as entries:
            folders = sorted(e.name for e in entries if e.is_dir())
        if not folders:
            return False
        folder = os.path.join(folder, folders[0])
    with os.scandir(folder) as entries:
        files = sorted(e.name for e in entries if e.is_file())
    return bool(files) and LUPERSON_NL_NAME.fullmatch(files[0]) is not None


def detect_format(location: str) -> str:
    """The input kind ``auto`` means: a ``.tar``, a brace pattern or a glob over tars is a webdataset; a
    manifest file a manifest; a local folder holding tar files a webdataset, one laid out like LUPerson-NL
    that; every other folder or glob the folder layout. A remote folder is not listed at launch (an object
    store lists a whole prefix): it is a folder unless ``--input_format`` says otherwise."""
    lowered = location.lower()
    if has_braces(location) or lowered.endswith(TAR_SUFFIX):
        return "webdataset"
    if _GLOB_CHARS.search(location):
        return "folder"
    if lowered.endswith(MANIFEST_SUFFIXES):
        return "manifest"
    if "://" not in location and os.path.isdir(location):
        if _local_tars(location):
            return "webdataset"
        if _looks_like_luperson_nl(location):
            return "luperson_nl"
    return "folder"


def _check_identity_rule(identity_field: str | None, identity_pattern: str | None) -> None:
    if (identity_field is None) == (identity_pattern is None):
        raise InputError(
            "a webdataset input needs one of --identity_field NAME (a field of each sample's json) "
            "or --identity_pattern REGEX (one group, searched in each sample's key)"
            + (", not both" if identity_field is not None else "")
        )
    if identity_field is not None and not identity_field.strip():
        raise InputError("--identity_field: empty field name")
    if identity_pattern is not None:
        try:
            groups = regex.compile(identity_pattern).groups  # the engine that searches it
        except regex.error as exc:
            raise InputError(f"--identity_pattern {identity_pattern!r}: not a regular expression ({exc})") from None
        if groups != 1:
            raise InputError(
                f"--identity_pattern {identity_pattern!r}: needs exactly one capturing group (the "
                f"identity), has {groups}"
            )


def shard_paths(pattern: str) -> list[str]:
    """The shards of a webdataset ``pattern``: braces expanded, globs matched (sorted), in pattern order;
    a name without glob characters is kept even if it does not exist (reading it says so)."""
    paths: dict[str, None] = {}
    for expanded in braceexpand.braceexpand(pattern):
        if _GLOB_CHARS.search(expanded):
            matched = FileSystems.match([expanded])[0].metadata_list
            paths.update((m.path, None) for m in sorted(matched, key=lambda m: m.path))
        else:
            paths[expanded] = None
    return list(paths)


def _webdataset_spec(location: str, identity_field: str | None, identity_pattern: str | None) -> InputSpec:
    _check_identity_rule(identity_field, identity_pattern)
    if has_braces(location) or _GLOB_CHARS.search(location) or location.lower().endswith(TAR_SUFFIX):
        pattern = location
        root = re.split(r"[*?\[{]", location, maxsplit=1)[0].rsplit("/", 1)[0]
    else:
        pattern, root = FileSystems.join(location, "*" + TAR_SUFFIX), location
    if "://" not in location:  # a local input is checked here; a remote one when the job lists it
        if os.path.isfile(location) and not location.lower().endswith(TAR_SUFFIX):
            raise InputError(f"input {location} is a file but not a {TAR_SUFFIX} shard")
        if not any(os.path.isfile(path) for path in shard_paths(pattern)):
            raise InputError(f"input {location}: no {TAR_SUFFIX} shard found")
    return InputSpec(
        root=root,
        pattern=pattern,
        format="webdataset",
        identity_field=identity_field,
        identity_pattern=identity_pattern,
    )


def resolve_input(
    location: str, input_format: str = "auto", identity_field: str | None = None, identity_pattern: str | None = None
) -> InputSpec:
    """Classify ``--input`` (see :func:`detect_format` for ``auto``); InputError when a local folder,
    manifest or shard does not exist, or when the identity flags do not fit the input kind."""
    if input_format not in INPUT_FORMATS:
        raise InputError(f"--input_format {input_format!r}: expected one of {', '.join(INPUT_FORMATS)}")
    location = location.rstrip("/") if len(location) > 1 else location
    if "://" not in location:
        location = os.path.abspath(location)  # matched paths come back absolute; keep one form
    kind = detect_format(location) if input_format == "auto" else input_format
    if kind == "webdataset":
        return _webdataset_spec(location, identity_field, identity_pattern)
    for flag, value in (("--identity_field", identity_field), ("--identity_pattern", identity_pattern)):
        if value is not None:
            raise InputError(f"{flag} applies to a webdataset input only (this input is read as {kind})")
    spec = _folder_or_manifest(location)
    if kind == "manifest" and spec.manifest is None:
        raise InputError(f"--input_format manifest: {location} is not a {', '.join(MANIFEST_SUFFIXES)} file")
    if kind in ("folder", "luperson_nl") and spec.manifest is not None:
        raise InputError(f"--input_format {kind}: {location} is a manifest file, not a folder")
    return spec._replace(format="luperson_nl") if kind == "luperson_nl" else spec


def _folder_or_manifest(location: str) -> InputSpec:
    if _GLOB_CHARS.search(location):
        root = _GLOB_CHARS.split(location, 1)[0].rsplit("/", 1)[0]
        return InputSpec(root=root, pattern=location)
    # Object stores have no folders, so only a local input can be checked before the job starts.
    missing = "://" not in location and not os.path.exists(location)
    if location.lower().endswith(MANIFEST_SUFFIXES):
        if missing:
            raise InputError(f"input manifest {location} does not exist")
        return InputSpec(root=posixpath.dirname(location), manifest=location)
    if missing:
        raise InputError(f"input folder {location} does not exist")
    if "://" not in location and not os.path.isdir(location):
        raise InputError(
            f"input {location} is a file but not a manifest (expected a folder, a glob or a "
            f"{', '.join(MANIFEST_SUFFIXES)} file)"
        )
    return InputSpec(root=location, pattern=FileSystems.join(location, "**"))


def ref_from_path(root: str, path: str) -> ImageRef | str:
    """The ImageRef of a matched file, or a reason string when it sits outside the folder layout."""
    relative = path[len(root) :].lstrip("/") if path.startswith(root) else path
    parts = relative.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        return "path not in the <root>/[<part>/]<identity>/<image> layout"
    return ImageRef(path, relative, "/".join(parts[:-1]), make_key(relative))


def is_beside_identities(root: str, path: str) -> bool:
    """A file directly in the root (a labels file, a README): not an image of any identity."""
    return "/" not in path[len(root) :].lstrip("/") if path.startswith(root) else False


def luperson_nl_ref(root: str, path: str) -> ImageRef | str:
    """The ImageRef of a LUPerson-NL image (identity: its video folder and pid), or a reason string."""
    relative = path[len(root) :].lstrip("/") if path.startswith(root) else path
    parts = relative.split("/")
    if len(parts) < 2 or not all(parts):
        return f"path not in the LUPerson-NL layout {LUPERSON_NL_LAYOUT}"
    name = LUPERSON_NL_NAME.fullmatch(parts[-1])
    if name is None:
        return f"file name is not a LUPerson-NL crop name <pid>_<frame>_<obj>.jpg ({LUPERSON_NL_LAYOUT})"
    return ImageRef(path, relative, "/".join(parts[:-1] + [name[1]]), make_key(relative))


class ShardSample(NamedTuple):
    """One webdataset sample as read from its shard: the wanted members' bytes, and for each wanted member
    that was not read (over the size bound) why."""

    key: str
    members: dict[str, bytes]
    problems: dict[str, str]


def shard_samples(stream: BinaryIO, wanted: Collection[str], max_bytes: int) -> Iterator[ShardSample]:
    """The samples of a tar stream (consecutive members sharing a key), read as a stream: only ``wanted``
    members (by lower-cased extension) are read, each only when its header says it is at most
    ``max_bytes``; every other member is skipped unread. Raises (``tarfile.TarError``, ``OSError``, ...) once
    the stream turns out not to be a whole tar, after yielding the samples read before."""
    current: ShardSample | None = None
    with tarfile.open(fileobj=stream, mode="r|*") as archive:
        for info in archive:
            archive.members = []  # streaming: keep no list of every header seen
            name = _MEMBER_NAME.fullmatch(info.name.removeprefix("./"))  # `tar -C dir .` writes ./<key>.<ext>
            if not info.isreg() or name is None:
                continue
            key, member = name[1], name[2].lower()
            if current is None or key != current.key:
                if current is not None:
                    yield current
                current = ShardSample(key, {}, {})
            if member not in wanted or member in current.members:
                continue
            if info.size > max_bytes:
                current.problems[member] = f"member {info.name!r} is larger than {max_bytes} bytes"
                continue
            current.members[member] = archive.extractfile(info).read()
        if current is not None:  # before any error: the last sample read is judged on its own members
            yield current
        if archive.fileobj.tell() != archive.offset + tarfile.BLOCKSIZE:  # tarfile ends quietly at a cut
            raise tarfile.ReadError("cut short: no end-of-archive block")


def wanted_members(spec: InputSpec) -> tuple[str, ...]:
    return IMAGE_MEMBERS + (("json",) if spec.identity_field is not None else ())


def _identity_of(sample: ShardSample, spec: InputSpec) -> tuple[str | None, str | None]:
    """(identity, None), or (None, why it cannot be told); IdentityPatternTimedOut (see
    :data:`IDENTITY_PATTERN_SECONDS`)."""
    if spec.identity_pattern is not None:
        try:
            found = regex.search(spec.identity_pattern, sample.key, timeout=IDENTITY_PATTERN_SECONDS)
        except TimeoutError:
            raise IdentityPatternTimedOut(
                f"identity pattern timed out after {IDENTITY_PATTERN_SECONDS} s on key {sample.key[:80]!r}"
            ) from None
        if found is None or not found[1]:
            return None, f"key {sample.key!r} does not match --identity_pattern {spec.identity_pattern!r}"
        return found[1], None
    field = spec.identity_field
    if "json" not in sample.members:
        return None, sample.problems.get("json", f"no json member to read the identity field {field!r} from")
    try:
        record = json.loads(sample.members["json"].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, "json member is not valid UTF-8 JSON"
    value = record.get(field) if isinstance(record, dict) else None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        return None, f"json member has no identity field {field!r} (a non-empty string or an integer)"
    return str(value), None


def webdataset_ref(shard: str, sample: ShardSample, spec: InputSpec) -> ImageRef | str:
    """The ImageRef of one sample (its bytes in ``data``, stored as ``<identity>/<key>.<ext>``), or a reason;
    IdentityPatternTimedOut when --identity_pattern ran out of time on its key."""
    member = next((m for m in IMAGE_MEMBERS if m in sample.members), None)
    if member is None:
        refused = [sample.problems[m] for m in IMAGE_MEMBERS if m in sample.problems]
        return refused[0] if refused else f"no image member ({', '.join(IMAGE_MEMBERS)})"
    identity, reason = _identity_of(sample, spec)
    if identity is None:
        return reason
    file_path = f"{identity}/{sample.key}.{member}"
    if any(part in ("", ".", "..") for part in file_path.split("/")):
        return f"would be stored as {file_path!r}: an empty, '.' or '..' path part"
    return ImageRef(f"{shard}#{sample.key}", file_path, identity, make_key(file_path), sample.members[member])


def _manifest_rows(path: str, data: bytes) -> Iterator[dict]:
    if path.lower().endswith(".parquet"):
        yield from pq.read_table(io.BytesIO(data)).to_pylist()
    elif path.lower().endswith(".jsonl"):
        for number, line in enumerate(data.decode("utf-8").splitlines(), 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}: line {number}: invalid JSON ({exc.msg})") from None
    else:
        yield from csv.DictReader(io.StringIO(data.decode("utf-8")))


def read_image_list(path: str) -> list[ImageRef]:
    """The images a manifest (an image list, not a corpus's ``manifest.json``) lists; relative paths are taken
    from the manifest's folder."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        data = stream.read()
    root = posixpath.dirname(path)
    refs: dict[str, ImageRef] = {}  # by file_path: a row listed twice is one image
    for number, row in enumerate(_manifest_rows(path, data), 1):
        if not isinstance(row, dict) or not row.get("path") or row.get("identity") in (None, ""):
            raise InputError(f"{path}: row {number}: needs non-empty 'path' and 'identity' columns")
        image, identity = str(row["path"]), str(row["identity"])
        is_url = "://" in image
        is_absolute = image.startswith("/") or is_url
        if not is_url:
            image = posixpath.normpath(image)  # one spelling per file: a/./b.jpg and x/../a/b.jpg are a/b.jpg
        source = image if is_absolute else FileSystems.join(root, image)
        stored = image if not is_absolute else f"{identity}/{posixpath.basename(image)}"
        try:
            file_path = one_spelling(stored)
        except PathOutsideRoot:
            raise InputError(
                f"{path}: row {number}: {row['path']} (identity {identity}) would be stored as "
                f"{posixpath.normpath(stored)}, outside the corpus root; give a path inside the "
                "manifest's folder"
            ) from None
        ref = refs.setdefault(file_path, ImageRef(source, file_path, identity, make_key(file_path)))
        if (ref.source, ref.identity) != (source, identity):
            raise InputError(
                f"{path}: row {number}: {image} would be stored as {file_path}, like {ref.source} "
                f"(identity {ref.identity}) listed before it"
            )
    return list(refs.values())
