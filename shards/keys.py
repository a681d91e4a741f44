"""The one key policy: a sample's ``__key__`` from its relative file path.

Keys use ``[A-Za-z0-9_-]`` only (no dot: webdataset splits a member name at its first dot; no slash:
a member name never leaves its sample). A path whose parts are already ``[A-Za-z0-9-]+`` and that ends in
``.jpg`` keeps a readable key, its parts joined by ``_`` (``Part1/7/1.jpg`` -> ``Part1_7_1``). Any other
path gets a sanitised prefix, ``__`` and 16 hex digits of the sha256 of its exact bytes. Readable keys
never hold ``__`` (their parts are non-empty), so a crafted name can never produce another file's hashed
key; two distinct paths share a key only if their sha256 share 64 bits.
"""

from __future__ import annotations

import hashlib
import re

from shards.sample import KEY_PATTERN

MAX_KEY_LENGTH = 90
HASH_SEPARATOR = "__"
_DIGEST_CHARS = 16
_READABLE_PART = re.compile(r"[A-Za-z0-9-]+")
_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


def path_bytes(file_path: str) -> bytes:
    """The exact bytes of a path as the file system gave it (undecodable bytes kept by surrogateescape)."""
    return file_path.encode("utf-8", "surrogateescape")


def make_key(file_path: str) -> str:
    """The sample key of a relative path; any string maps to a valid key (see the module docstring)."""
    stem, dot, extension = file_path.rpartition(".")
    parts = stem.split("/") if dot else []
    readable = "_".join(parts)
    if (
        dot
        and extension == "jpg"
        and all(_READABLE_PART.fullmatch(p) for p in parts)
        and len(readable) <= MAX_KEY_LENGTH
    ):
        return readable
    digest = hashlib.sha256(path_bytes(file_path)).hexdigest()[:_DIGEST_CHARS]
    room = MAX_KEY_LENGTH - len(HASH_SEPARATOR) - _DIGEST_CHARS
    prefix = "_".join(_UNSAFE.sub("-", p).strip("-") for p in file_path.split("/")).strip("_")[:room]
    return f"{prefix}{HASH_SEPARATOR}{digest}" if prefix else digest


def is_valid_key(key: object) -> bool:
    return isinstance(key, str) and KEY_PATTERN.fullmatch(key) is not None
