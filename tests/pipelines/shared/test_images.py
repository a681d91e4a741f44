"""pipelines.shared.images: an image file's bytes under the decode policy (a FIFO refused before open)."""

from __future__ import annotations

import os

import pytest

from pipelines.shared.images import read_image_file
from shards.images import ImageRejected


def test_a_regular_file_is_read_and_bounded(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"0123456789")
    assert read_image_file(str(tmp_path / "a.jpg"), 10) == b"0123456789"
    with pytest.raises(ImageRejected, match="larger than 9 bytes"):
        read_image_file(str(tmp_path / "a.jpg"), 9)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "x.jpg")  # open() would block for ever: no writer
    with pytest.raises(ImageRejected, match="is a FIFO, not an image"):
        read_image_file(str(tmp_path / "x.jpg"), 1 << 20)
