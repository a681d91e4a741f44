"""shards.images: the decode policy for untrusted files (bounded bytes and pixels, upright RGB)."""

from __future__ import annotations

import io
import os
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from shards.images import (
    ImageRejected,
    decode_image,
    eight_bit,
    open_image_file,
    open_regular_file,
    read_bounded,
    require_regular_file,
)


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
@given(
    st.integers(1, 300),
    st.integers(1, 300),
    st.sampled_from(["JPEG", "PNG", "GIF", "BMP", "WEBP"]),
    st.integers(0, 2**24 - 1),
)
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
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


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


# ---- issue 19: only regular files are opened; deep images are scaled, not clipped --------------------------


def _finishes(call, seconds: float = 10.0):
    """``call()``'s result or exception, failing the test (not hanging it) when it blocks."""
    outcome: list = []

    def target():
        try:
            outcome.append(("value", call()))
        except BaseException as exc:  # noqa: BLE001  (handed to the test)
            outcome.append(("error", exc))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"blocked for more than {seconds} s"
    return outcome[0]


def test_a_fifo_named_like_an_image_is_refused_before_it_is_opened(tmp_path):
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)  # no writer: open() for reading would block forever
    for call in (
        lambda: open_image_file(str(fifo)),
        lambda: open_regular_file(str(fifo)),
        lambda: require_regular_file(str(fifo)),
    ):
        kind, error = _finishes(call)
        assert kind == "error" and isinstance(error, ImageRejected) and str(error) == "is a FIFO, not an image"


def test_devices_are_refused_in_one_line_and_a_folder_is_what_open_says(tmp_path):
    with pytest.raises(ImageRejected, match=r"^is a character device, not an image$"):
        open_image_file("/dev/null")
    with pytest.raises(IsADirectoryError) as caught:  # as open() raises it: every caller handles that already
        open_image_file(str(tmp_path))
    assert caught.value.filename == str(tmp_path)


def test_a_stream_on_a_device_is_refused_before_it_is_read():
    with open("/dev/zero", "rb") as stream:  # would be read up to the byte budget, then refused as too large
        with pytest.raises(ImageRejected, match="a character device"):
            read_bounded(stream, 1 << 30)
        assert stream.tell() == 0


def test_a_symlink_to_an_image_is_a_regular_file_and_a_missing_file_an_os_error(tmp_path):
    (tmp_path / "a.png").write_bytes(_encoded(Image.new("RGB", (5, 5)), "PNG"))
    (tmp_path / "link.png").symlink_to(tmp_path / "a.png")
    assert open_image_file(str(tmp_path / "link.png")).size == (5, 5)
    require_regular_file("gs://bucket/a.png")  # a URL: nothing local to check
    with pytest.raises(FileNotFoundError):
        open_image_file(str(tmp_path / "missing.png"))


@pytest.mark.parametrize("grey", [0, 1000, 32896, 50000, 65535])
@pytest.mark.parametrize("format_", ["PNG", "TIFF"])
def test_a_16_bit_grey_image_keeps_its_grey_level(grey, format_):
    image = Image.fromarray(np.full((6, 4), grey, dtype=np.uint16))
    assert image.mode == "I;16"
    decoded = decode_image(_encoded(image, format_))
    assert decoded.mode == "RGB" and set(np.asarray(decoded).ravel()) == {round(grey / 257)}


def test_a_big_endian_16_bit_image_keeps_its_grey_level():
    image = Image.frombytes("I;16B", (4, 3), np.full((3, 4), 32896, dtype=">u2").tobytes())
    assert set(np.asarray(decode_image(_encoded(image, "TIFF"))).ravel()) == {128}


def test_a_16_bit_gradient_stays_a_gradient():
    ramp = np.repeat(np.linspace(0, 65535, 256).astype(np.uint16)[None, :], 3, axis=0)
    grey = np.asarray(decode_image(_encoded(Image.fromarray(ramp), "PNG")))[0, :, 0]
    assert grey.tolist() == list(range(256))  # every level distinct, in order: not clipped to white


@pytest.mark.parametrize(
    "values, expected",
    [
        (np.full((3, 3), 200, np.int32), 200),  # 8-bit data in a 32-bit mode: kept
        (np.full((3, 3), 32896, np.int32), 128),  # a 16-bit sample widened to I: its 16-bit level
        (np.full((3, 3), 2**30, np.int32), 128),  # 32-bit data: scaled from 2**31 - 1
        (np.full((3, 3), -5, np.int32), 0),
        (np.full((3, 3), 0.5, np.float32), 128),  # float in [0, 1]
        (np.full((3, 3), 128.0, np.float32), 128),  # float in [0, 255]
        (np.array([[np.nan, 1.0]], np.float32), None),
    ],
)
def test_32_bit_and_float_images_are_scaled_by_their_range(values, expected):
    decoded = np.asarray(decode_image(_encoded(Image.fromarray(values), "TIFF")))
    if expected is None:
        assert decoded[0, :, 0].tolist() == [0, 255]  # NaN is black, the rest keeps its scale
    else:
        assert set(decoded.ravel()) == {expected}


def test_an_eight_bit_image_is_not_touched_by_the_scaling():
    image = Image.new("RGB", (3, 3), (1, 2, 3))
    assert eight_bit(image) is image
