"""The bytes of one image file for the jobs' decode step, under the shared decode policy (:mod:`shards.images`):
a local file is opened only if it is a regular file (a FIFO named like an image would block ``open()``
forever; a device never ends), a remote one through Beam's FileSystems; at most ``max_bytes`` either way."""

from __future__ import annotations

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from shards.images import open_regular_file, read_bounded


def read_image_file(source: str, max_bytes: int) -> bytes:
    """The bytes of the image file ``source`` (a local path or a URL); ImageRejected for a file that is not a
    regular file or holds more than ``max_bytes``, OSError (or ValueError, for a NUL byte) as ``open()`` raises."""
    if "://" in source:
        with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
            return read_bounded(stream, max_bytes)
    with open_regular_file(source) as stream:
        return read_bounded(stream, max_bytes)
