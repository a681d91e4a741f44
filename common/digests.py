"""Stable digests: the same bytes on every run and machine (Python's hash() is salted per process)."""

from __future__ import annotations

import hashlib
from typing import Any, BinaryIO


def stable_int(*parts: Any, bits: int = 63) -> int:
    """A stable non-negative integer of ``bits`` bits (at most 64) from the parts' string forms."""
    if not 1 <= bits <= 64:
        raise ValueError(f"bits must be 1..64, got {bits}")
    data = "\x1f".join(map(str, parts)).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") >> (64 - bits)


def stable_prefix(*parts: Any) -> str:
    """The joined leading parts of several :func:`stable_int` calls, for :func:`stable_int_after`."""
    return "".join([f"{part}\x1f" for part in parts])


def stable_int_after(prefix: str, last: Any, bits: int = 63) -> int:
    """``stable_int(*parts, last, bits=bits)`` where ``prefix == stable_prefix(*parts)``: the same number,
    without joining the shared parts again (the captioner draws ~10 choices per caption key)."""
    if not 1 <= bits <= 64:
        raise ValueError(f"bits must be 1..64, got {bits}")
    data = f"{prefix}{last}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") >> (64 - bits)


class StableDraws:
    """``stable_int(*parts, last, bits=64)`` for many ``last`` after the same ``parts``: the parts are hashed
    once and each draw continues a copy of that hash (the captioner draws ~10 choices per caption key)."""

    __slots__ = ("_base",)

    def __init__(self, *parts: Any) -> None:
        self._base = hashlib.blake2b(stable_prefix(*parts).encode("utf-8", "surrogatepass"), digest_size=8)

    def __call__(self, last: bytes) -> int:
        """The draw for ``last`` given as its UTF-8 bytes (callers encode their fixed purposes once)."""
        digest = self._base.copy()
        digest.update(last)
        return int.from_bytes(digest.digest(), "big")


def stable_hex(*parts: Any) -> str:
    """A stable sha256 hex digest of the parts' string forms (sort keys, identifiers)."""
    return hashlib.sha256("\x00".join(map(str, parts)).encode("utf-8", "surrogatepass")).hexdigest()


def stream_sha256(stream: BinaryIO) -> str:
    """sha256 of everything left in a binary stream, read in chunks."""
    # Not hashlib.file_digest: for an in-memory stream it hashes the whole buffer, whatever was read already.
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Any) -> str:
    """sha256 of a local file, read in chunks."""
    with open(path, "rb") as stream:
        return stream_sha256(stream)
