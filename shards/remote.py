"""Filesystem access for corpus folders through fsspec: local paths, ``memory://``, ``gs://``, ``s3://``.

Publishing is atomic: a file appears under its final name only once it is whole. Locally the bytes
go to a temporary name in the same folder (``<name>.tmp-<random>``) and are renamed; on other
filesystems they are uploaded to such a temporary name and moved. Readers never look at
``*.tmp-*`` names, so a crashed writer's leftovers are ignored (and safe to delete at any time).
"""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Iterable
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

TEMP_MARKER = ".tmp-"


def resolve(location: str) -> tuple[Any, str]:
    """(filesystem, path within it) for a local path or URL."""
    return fsspec.core.url_to_fs(location)


def is_local(fs: Any) -> bool:
    return isinstance(fs, LocalFileSystem)


def join(fs: Any, directory: str, name: str) -> str:
    return os.path.join(directory, name) if is_local(fs) else posixpath.join(directory, name)


def url(fs: Any, path: str) -> str:
    """A URL that opens ``path`` again: plain for local files, with the protocol otherwise."""
    return path if is_local(fs) else fs.unstrip_protocol(path)


def temp_path(final_path: str) -> str:
    """A unique sibling name, so two writers of the same shard never share a temporary file."""
    return f"{final_path}{TEMP_MARKER}{uuid.uuid4().hex[:12]}"


def publish_file(fs: Any, local_file: str, final_path: str) -> None:
    """Move a finished local file to ``final_path`` on ``fs`` atomically; the local file is consumed.

    For a local ``fs`` the caller must have created ``local_file`` in the destination folder.
    """
    if is_local(fs):
        os.replace(local_file, final_path)
        return
    staged = temp_path(final_path)
    try:
        fs.put_file(local_file, staged)
        fs.mv(staged, final_path)
    except BaseException:
        if fs.exists(staged):
            fs.rm(staged)
        raise
    finally:
        os.remove(local_file)


def publish_bytes(fs: Any, data: bytes, final_path: str, durable: bool = True) -> None:
    """Write ``data`` to ``final_path`` atomically; ``durable`` (local files) also fsyncs it before the rename.

    Pass ``durable=False`` for scratch files that the same run rebuilds anyway: the rename still makes the
    file all-or-nothing, and an fsync costs milliseconds per file."""
    staged = temp_path(final_path)
    if is_local(fs):
        with open(staged, "wb") as stream:
            stream.write(data)
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(staged, final_path)
        return
    fs.pipe_file(staged, data)
    fs.mv(staged, final_path)


def publish_chunks(fs: Any, chunks: Iterable[bytes], final_path: str) -> int:
    """Write the concatenated ``chunks`` to ``final_path`` atomically, holding one chunk at a time; the byte count.

    For files too big to build in memory (a corpus-wide JSON assembled from per-shard parts).
    """
    staged = temp_path(final_path)
    written = 0
    try:
        with fs.open(staged, "wb") as stream:
            for chunk in chunks:
                stream.write(chunk)
                written += len(chunk)
            if is_local(fs):
                stream.flush()
                os.fsync(stream.fileno())
        if is_local(fs):
            os.replace(staged, final_path)
        else:
            fs.mv(staged, final_path)
    except BaseException:
        if fs.exists(staged):
            fs.rm(staged)
        raise
    return written
