"""The one image decode policy for untrusted files, shared by the synthesis job, `spac caption` and the
training and evaluation loaders: bounded bytes, bounded pixels, EXIF orientation applied, RGB out.

A file is refused with :class:`ImageRejected` (a ValueError with a one-line reason) when it is larger
than ``max_bytes``, is not an image Pillow can read, is corrupt, or would decode to more than
``max_pixels``. The pixel budget is checked from the header before any pixel is decoded. A JPEG larger
than needed is decoded at a reduced DCT scale (``Image.draft``) first, so a 12-megapixel photo costs what
a 1-megapixel one does when only ``min_size`` is needed; other formats cannot be reduced on load, so
they are refused above the budget instead of being decoded in full.
"""
from __future__ import annotations

import io
import warnings
from typing import BinaryIO

from PIL import ExifTags, Image, ImageOps

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000  # ~ 8000 x 5000: far above any pedestrian crop, far below a bomb


class ImageRejected(ValueError):
    """An input image the policy refuses; the message is the one-line reason."""


_READ_CHUNK = 1 << 20


def read_bounded(stream: BinaryIO, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """At most ``max_bytes`` of ``stream``; ImageRejected when it holds more (never read whole).

    Read in 1 MiB chunks: one ``read(max_bytes + 1)`` makes a buffered file allocate the whole 64 MiB
    first, which cost 63 us per 9 KiB image against 14 us this way."""
    chunks: list[bytes] = []
    total = 0
    while total <= max_bytes:
        chunk = stream.read(min(_READ_CHUNK, max_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    raise ImageRejected(f"file larger than {max_bytes} bytes")


def _refusal(exc: BaseException) -> ImageRejected:
    if isinstance(exc, Image.UnidentifiedImageError):
        return ImageRejected("not a decodable image")
    if isinstance(exc, Image.DecompressionBombError):
        return ImageRejected("image too large (decompression bomb guard)")
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ImageRejected(f"corrupt or unreadable image: {reason}")


_TURNED = (2, 3, 4, 5, 6, 7, 8)  # EXIF orientations that ImageOps.exif_transpose undoes


def _stored_sideways(image: Image.Image) -> bool:
    """EXIF orientations 5-8 display the stored pixels turned by 90 degrees (what exif_transpose undoes)."""
    return image.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8)


def decode_image(data: bytes, *, min_size: tuple[int, int] | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES) -> Image.Image:
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
    """:func:`decode_image` of a local file, its size bounded before it is read."""
    max_bytes = policy.get("max_bytes", DEFAULT_MAX_BYTES)
    with open(path, "rb") as stream:
        data = read_bounded(stream, max_bytes)  # type: ignore[arg-type]
    return decode_image(data, **policy)  # type: ignore[arg-type]
