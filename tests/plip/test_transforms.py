import pytest
import torch
from PIL import Image

from plip.transforms import (
    EVAL_MEAN,
    EVAL_STD,
    ImageReadError,
    check_eval_size,
    eval_transform,
    read_image,
    train_transform,
)
from shards.images import ImageRejected


def test_eval_transform_shape_and_normalisation():
    tensor = eval_transform(Image.new("RGB", (40, 90), (255, 0, 51)).convert("L").convert("RGB"))
    assert tensor.shape == (3, 256, 128)
    grey = Image.new("RGB", (40, 90), (255, 0, 51)).convert("L").getpixel((0, 0)) / 255
    expected = [(grey - m) / s for m, s in zip(EVAL_MEAN, EVAL_STD)]
    assert tensor[:, 100, 50].tolist() == pytest.approx(expected, abs=1e-6)


def test_eval_transform_resizes_bicubic_to_256x128():
    gradient = Image.linear_gradient("L").resize((37, 61)).convert("RGB")
    red = eval_transform(gradient)[0] * EVAL_STD[0] + EVAL_MEAN[0]

    def as_tensor(image):
        return torch.tensor(list(image.getchannel(0).tobytes()), dtype=torch.float32).view(256, 128) / 255

    bicubic = as_tensor(gradient.resize((128, 256), Image.Resampling.BICUBIC))
    bilinear = as_tensor(gradient.resize((128, 256), Image.Resampling.BILINEAR))
    assert torch.allclose(red, bicubic, atol=1e-5)
    assert not torch.allclose(red, bilinear, atol=1e-5)


def test_train_transform_resizes_flips_and_normalises():
    image = Image.new("RGB", (20, 40), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 40))  # left half blue
    plain = train_transform(image, (64, 32), flip=False)
    flipped = train_transform(image, (64, 32), flip=True)
    assert plain.shape == (3, 64, 32)
    assert torch.equal(flipped, plain.flip(-1))
    red = (1.0 - EVAL_MEAN[0]) / EVAL_STD[0]
    assert plain[0, 32, -1].item() == pytest.approx(red, abs=1e-5)


def test_read_image_gives_rgb_and_names_a_damaged_file(tmp_path):
    Image.new("L", (8, 16), 7).save(tmp_path / "grey.png")
    assert read_image(tmp_path / "grey.png").mode == "RGB"
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff not really")
    with pytest.raises(ImageReadError, match=r"cannot read image .*bad\.jpg"):
        read_image(tmp_path / "bad.jpg")


def test_check_eval_size_accepts_only_256x128():
    check_eval_size([256, 128])
    with pytest.raises(ValueError, match="evaluation feeds 256x128 images .* the model takes 64x32"):
        check_eval_size((64, 32))


def test_read_image_follows_the_decode_policy_and_names_the_file(tmp_path):
    missing = tmp_path / "absent.jpg"
    with pytest.raises(ImageReadError, match=rf"^cannot read image {missing}: No such file or directory$"):
        read_image(missing)
    with pytest.raises(ImageReadError, match=rf"^cannot read image {tmp_path}: Is a directory$"):
        read_image(tmp_path)
    # A 49-megapixel PNG of a few KB: refused from its header, before any pixel is decoded.
    Image.new("1", (7000, 7000)).save(tmp_path / "bomb.png")
    with pytest.raises(ImageReadError, match=r"bomb\.png: image too large: 7000x7000 pixels exceed the budget"):
        read_image(tmp_path / "bomb.png")
    cut = tmp_path / "cut.jpg"
    Image.new("RGB", (64, 128), (9, 200, 30)).save(tmp_path / "whole.jpg")
    cut.write_bytes((tmp_path / "whole.jpg").read_bytes()[:300])
    with pytest.raises(ImageReadError, match=rf"^cannot read image {cut}: corrupt or unreadable image") as error:
        read_image(cut)
    assert isinstance(error.value, ImageRejected) and "\n" not in str(error.value)


def test_read_image_applies_the_exif_orientation(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: shown upright as 20 x 40
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert read_image(tmp_path / "rotated.jpg").size == (20, 40)
