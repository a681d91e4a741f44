"""shards.images: the decode policy for untrusted files (bounded bytes and pixels, upright RGB)."""
from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from shards.images import ImageRejected, decode_image, open_image_file, read_bounded


def _encoded(image: Image.Image, format_: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format_, **options)
    return buffer.getvalue()


def test_a_huge_png_is_refused_from_its_header_without_decoding(monkeypatch):
    data = _encoded(Image.new("L", (9000, 9000)), "PNG", optimize=True)
    loaded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: loaded.append(self.size))
    with pytest.raises(ImageRejected, match="9000x9000 pixels exceed the budget"):
        decode_image(data, max_pixels=40_000_000)
    assert loaded == []  # refused before a single pixel was decoded


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_that_still_covers_the_target():
    data = _encoded(Image.new("RGB", (4000, 8000), (200, 30, 30)), "JPEG")
    image = decode_image(data, min_size=(256, 128), max_pixels=5_000_000)  # 32 MP in full, ~0.5 MP drafted
    assert image.mode == "RGB" and image.size == (500, 1000)
    with pytest.raises(ImageRejected, match="exceed the budget"):
        decode_image(data, max_pixels=5_000_000)  # no target size: no reduction, over the budget


def test_exif_orientation_is_applied():
    wide = Image.new("RGB", (60, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image = decode_image(_encoded(wide, "JPEG", exif=exif.tobytes()))
    assert image.size == (20, 60)


class _TrickleStream(io.BytesIO):
    """A stream that hands out at most 7 bytes a read, as a pipe or a remote file may."""

    def read(self, size=-1):
        return super().read(7 if size is None or size < 0 else min(size, 7))


@pytest.mark.parametrize("size, bound", [(0, 10), (10, 10), (11, 10), (3 << 20, 4 << 20), ((3 << 20) + 1, 3 << 20)])
def test_read_bounded_gets_every_byte_up_to_the_bound_and_refuses_more(size, bound):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    for stream in (io.BytesIO(data), _TrickleStream(data) if size < 1000 else io.BytesIO(data)):
        if size <= bound:
            assert read_bounded(stream, bound) == data
        else:
            with pytest.raises(ImageRejected, match=f"larger than {bound} bytes"):
                read_bounded(stream, bound)
            assert stream.tell() == bound + 1


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "1", "I", "F"])
def test_every_mode_comes_out_rgb(mode):
    format_ = "TIFF" if mode in ("CMYK", "I", "F") else "PNG"
    image = decode_image(_encoded(Image.new(mode, (7, 9)), format_))
    assert image.mode == "RGB" and image.size == (7, 9)


def test_file_size_is_bounded_before_reading_whole(tmp_path):
    stream = io.BytesIO(b"x" * 1000)
    with pytest.raises(ImageRejected, match="larger than 100 bytes"):
        read_bounded(stream, 100)
    assert stream.tell() == 101  # read one byte past the bound, not the whole file
    path = tmp_path / "a.png"
    path.write_bytes(_encoded(Image.new("RGB", (5, 5)), "PNG"))
    assert open_image_file(str(path)).size == (5, 5)
    with pytest.raises(ImageRejected, match="larger than"):
        open_image_file(str(path), max_bytes=10)


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9])
def test_truncated_files_are_refused_in_one_line(cut):
    data = _encoded(Image.effect_noise((64, 64), 40).convert("RGB"), "PNG")
    with pytest.raises(ImageRejected) as error:
        decode_image(data[: int(len(data) * cut)])
    assert "\n" not in str(error.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_any_bytes_give_an_rgb_image_or_a_refusal(data):
    try:
        image = decode_image(data, max_pixels=1_000_000)
    except ImageRejected as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert image.mode == "RGB" and image.width * image.height <= 1_000_000


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.sampled_from(["JPEG", "PNG", "GIF", "BMP", "WEBP"]),
       st.integers(0, 2**24 - 1))
def test_valid_images_keep_their_size_within_the_budget(width, height, format_, colour):
    rgb = ((colour >> 16) & 255, (colour >> 8) & 255, colour & 255)
    data = _encoded(Image.new("RGB", (width, height), rgb), format_)
    if width * height > 20_000:
        with pytest.raises(ImageRejected):
            decode_image(data, max_pixels=20_000)
    else:
        assert decode_image(data, max_pixels=20_000).size == (width, height)


def _smooth_photo(size: tuple[int, int]) -> Image.Image:
    """Low-resolution noise upsampled: soft edges and texture, like a person crop from a camera."""
    small = Image.effect_noise((size[0] // 16, size[1] // 16), 80)
    tinted = Image.merge("RGB", [small.point(lambda v, k=k: (v * (k + 2)) % 256) for k in range(3)])
    return tinted.resize(size, Image.Resampling.BICUBIC)


def _psnr(a: Image.Image, b: Image.Image) -> float:
    import math

    pixels = list(zip(a.tobytes(), b.tobytes()))
    mse = sum((x - y) ** 2 for x, y in pixels) / len(pixels)
    return math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def test_a_drafted_decode_makes_nearly_the_same_corpus_image_as_a_full_one():
    """Draft only where the source is >= 2x the target, to the tightest DCT scale that still covers it."""
    from shards.sample import IMAGE_SIZE, encode_image

    data = _encoded(_smooth_photo((512, 1024)), "JPEG", quality=92)
    drafted = decode_image(data, min_size=IMAGE_SIZE)
    assert drafted.size == (128, 256)  # 1/4 scale: exactly the corpus size
    assert decode_image(_encoded(_smooth_photo((255, 500)), "JPEG"), min_size=IMAGE_SIZE).size == (255, 500)
    full, reduced = (Image.open(io.BytesIO(encode_image(image))) for image in (decode_image(data), drafted))
    assert _psnr(full.convert("RGB"), reduced.convert("RGB")) > 38  # the corpus JPEG's own q90 costs ~33 dB


def test_a_sideways_jpeg_is_drafted_to_cover_the_target_once_upright():
    stored = _encoded(Image.new("RGB", (512, 2048), (10, 200, 30)), "JPEG", exif=_orientation(6))
    image = decode_image(stored, min_size=(256, 128))  # upright 2048x512: its height (512) limits the scale
    assert image.size == (1024, 256)  # 1/2, not 1/4 (which would leave an upright height of 128 < 256)


def _orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


@pytest.mark.parametrize("orientation", [None, 1, 2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_the_decoded_image_is_exif_transpose_then_rgb_for_every_orientation(orientation, mode):
    """decode_image turns only the images whose EXIF says so (no copy for the others): the same pixels,
    size and mode as ImageOps.exif_transpose(image).convert("RGB") always."""
    from PIL import ImageOps

    source = Image.new("RGB", (24, 40), (200, 30, 90))
    source.paste((10, 220, 40), (2, 3, 12, 9))
    options = {} if orientation is None else {"exif": _orientation(orientation)}
    data = _encoded(source.convert(mode), "JPEG", **options)
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    decoded = decode_image(data)
    assert (decoded.mode, decoded.size, decoded.tobytes()) == (expected.mode, expected.size, expected.tobytes())
