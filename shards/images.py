"""The one image decode policy for untrusted files, shared by the synthesis job, `spac caption` and the
training and evaluation loaders: bounded bytes, bounded pixels, EXIF orientation applied, RGB out.

A file is refused with :class:`ImageRejected` (an InputError with a one-line reason) when it is larger
than ``max_bytes``, is not an image Pillow can read, is corrupt, or would decode to more than
``max_pixels``. The pixel budget is checked from the header before any pixel is decoded. A JPEG larger
than needed is decoded at a reduced DCT scale (``Image.draft``) first, so a 12-megapixel photo costs what
a 1-megapixel one does when only ``min_size`` is needed; other formats cannot be reduced on load, so
they are refused above the budget instead of being decoded in full.

Only a regular file is opened: a FIFO, a device or a socket named like an image is refused from its
``stat`` before ``open()`` (which blocks forever on a FIFO with no writer). Images of more than 8 bits
per sample (greyscale ``I;16*``, 32-bit ``I`` and float ``F``) are scaled to 8 bits by their range
(:func:`eight_bit`), not clipped: Pillow's own conversion clips, so every 16-bit grey became white.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import warnings
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps

from common.errors import InputError, error_line

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000  # ~ 8000 x 5000: far above any pedestrian crop, far below a bomb


class ImageRejected(InputError):
    """An input image the policy refuses; the message is the one-line reason."""


_READ_CHUNK = 1 << 20


def read_bounded(stream: BinaryIO, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """At most ``max_bytes`` of ``stream``; ImageRejected when it holds more (never read whole).

    Read in 1 MiB chunks: one ``read(max_bytes + 1)`` makes a buffered file allocate the whole 64 MiB
    first, which cost 63 us per 9 KiB image against 14 us this way. A stream on a file that is not a
    regular file (a FIFO or a terminal would block, a device never ends) is refused before the first read."""
    _refuse_special_stream(stream)
    chunks: list[bytes] = []
    total = 0
    while total <= max_bytes:
        chunk = stream.read(min(_READ_CHUNK, max_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    raise ImageRejected(f"file larger than {max_bytes} bytes")


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _refuse_unless_regular(mode: int, path: str | None = None) -> None:
    if stat.S_ISDIR(mode):  # what open() says of a folder (it never blocks there): callers already handle it
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "a special file")
        raise ImageRejected(f"is {kind}, not an image")


def _refuse_special_stream(stream: BinaryIO) -> None:
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):  # bytes in memory, a remote object: no file to check
        return
    _refuse_unless_regular(os.fstat(descriptor).st_mode)


def require_regular_file(path: str) -> None:
    """ImageRejected unless the local ``path`` is a regular file (a symlink to one is: ``stat`` follows it),
    checked without opening it: call it before an ``open()`` this module does not make (a FIFO blocks
    there). A URL (``scheme://...``) is not checked. OSError as ``open()`` would raise it for a missing path
    (FileNotFoundError) or a folder (IsADirectoryError)."""
    if "://" not in path:
        _refuse_unless_regular(os.stat(path).st_mode, path)


def open_regular_file(path: str) -> BinaryIO:
    """The local regular file ``path`` opened for binary reading; ImageRejected (or, for a folder,
    IsADirectoryError) for anything else. Checked
    before opening, then again on the opened descriptor (opened non-blocking, so a FIFO swapped in between
    cannot block either)."""
    require_regular_file(path)
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        _refuse_unless_regular(os.fstat(descriptor).st_mode, path)
    except BaseException:
        os.close(descriptor)
        raise
    return os.fdopen(descriptor, "rb")


# The range a sample of these modes is scaled from. I;16 says its depth; I and F do not (a 16-bit PGM,
# a 32-bit TIFF, a float TIFF in [0, 1] all load as them), so theirs is the smallest usual range that holds
# the image's largest sample.
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_USUAL_TOPS = {"I": (255.0, 65535.0, 2.0**31 - 1), "F": (1.0, 255.0, 65535.0)}


def eight_bit(image: Image.Image) -> Image.Image:
    """An image of more than 8 bits per sample (modes I;16*, I, F) as 8-bit greyscale (L), each sample
    scaled from its range to 0-255 and rounded (negative and non-finite samples are 0); other images
    unchanged. I;16's range is 0-65535; I's and F's is the smallest of 0-1 (F only), 0-255, 0-65535 and
    0-2**31-1 (I) or 0-largest (F) that holds the image's largest sample."""
    if image.mode not in _SIXTEEN_BIT and image.mode not in _USUAL_TOPS:
        return image
    samples = np.nan_to_num(np.asarray(image).astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    largest = float(samples.max(initial=0.0))
    tops = (65535.0,) if image.mode in _SIXTEEN_BIT else _USUAL_TOPS[image.mode]
    top = next((t for t in tops if largest <= t), largest)
    scaled = np.rint(np.clip(samples, 0.0, top) * np.float32(255.0 / top))
    return Image.fromarray(scaled.astype(np.uint8), "L")


def _refusal(exc: BaseException) -> ImageRejected:
    if isinstance(exc, Image.UnidentifiedImageError):
        return ImageRejected("not a decodable image")
    if isinstance(exc, Image.DecompressionBombError):
        return ImageRejected("image too large (decompression bomb guard)")
    reason = error_line(exc)
    return ImageRejected(f"corrupt or unreadable image: {reason}")


_TURNED = (2, 3, 4, 5, 6, 7, 8)  # EXIF orientations that ImageOps.exif_transpose undoes


def _stored_sideways(image: Image.Image) -> bool:
    """EXIF orientations 5-8 display the stored pixels turned by 90 degrees (what exif_transpose undoes)."""
    return image.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8)


def decode_image(
    data: bytes,
    *,
    min_size: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Image.Image:
    """Decode untrusted image bytes into an upright RGB image, or raise ImageRejected.

    ``min_size`` (height, width): the smallest size the caller will resize to, upright; a JPEG at least
    twice as large in both dimensions is decoded at the largest DCT reduction (1/2, 1/4, 1/8) that still
    covers it (None: full resolution), and the caller's resize is then a reduction of less than 2x in the
    tighter dimension. Against a full decode the 256x128 corpus image differs by about one grey level on
    average (PSNR 40-43 dB on rendered people at 3-8x, where the corpus JPEG's own quality-90 encoding costs
    32-34 dB) for a 1.7-4.8x faster decode; ``benchmarks/decode_draft.py`` measures both.
    """
    if len(data) > max_bytes:
        raise ImageRejected(f"file larger than {max_bytes} bytes")
    try:
        with warnings.catch_warnings():
            # Our own pixel budget below is stricter than Pillow's warning level and names the size.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if min_size is not None and image.format == "JPEG":
                height, width = min_size
                if _stored_sideways(image):  # the upright height is the stored width: ask the stored sizes
                    height, width = width, height
                image.draft("RGB", (width, height))
            width, height = image.size
            if width < 1 or height < 1:
                raise ImageRejected("image has no pixels")
            if width * height > max_pixels:
                raise ImageRejected(f"image too large: {width}x{height} pixels exceed the budget of {max_pixels}")
            image.load()
            image = eight_bit(image)
            # exif_transpose copies an image it does not turn, and convert copies it again: turn only when
            # the EXIF orientation says so (2-8), then one copy (or conversion) to RGB.
            if image.getexif().get(ExifTags.Base.Orientation, 1) in _TURNED:
                image = ImageOps.exif_transpose(image)
            return image.convert("RGB")
    except ImageRejected:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # Pillow's decoders raise many types on hostile data (struct.error, IndexError, ...)
        raise _refusal(exc) from None


def open_image_file(path: str, **policy: int | tuple[int, int] | None) -> Image.Image:
    """:func:`decode_image` of a local regular file (anything else refused before it is opened), its size
    bounded before it is read."""
    max_bytes = policy.get("max_bytes", DEFAULT_MAX_BYTES)
    with open_regular_file(path) as stream:
        data = read_bounded(stream, max_bytes)  # type: ignore[arg-type]
    return decode_image(data, **policy)  # type: ignore[arg-type]
