"""The normalising image transform: RGB, resize, flip, scale and normalise."""

import numpy as np
import torch
from PIL import Image

from common.imaging import (
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    SYNTH_PEDES_MEAN,
    SYNTH_PEDES_STD,
    normalise,
    normalised_tensor,
    pixel_tensor,
)


def test_converts_resizes_and_normalises():
    image = Image.new("RGBA", (40, 90), (255, 0, 51, 128))
    pixels = normalised_tensor(image)
    assert pixels.shape == (3, IMAGE_HEIGHT, IMAGE_WIDTH) == (3, 256, 128) and pixels.dtype == torch.float32
    for channel, value in enumerate((255, 0, 51)):
        expected = (value / 255 - SYNTH_PEDES_MEAN[channel]) / SYNTH_PEDES_STD[channel]
        assert torch.allclose(pixels[channel], torch.full((256, 128), expected), atol=1e-5)
    assert normalised_tensor(Image.new("L", (128, 256), 128)).shape == (3, 256, 128)


def test_size_mean_and_std_are_the_callers():
    pixels = normalised_tensor(Image.new("RGB", (10, 10), (51, 102, 255)), (8, 4), mean=(0, 0, 0), std=(0.5, 0.5, 1))
    assert pixels.shape == (3, 8, 4)
    assert torch.allclose(pixels[:, 0, 0], torch.tensor([0.4, 0.8, 1.0]))


def test_flip_mirrors_left_and_right():
    image = Image.new("RGB", (128, 256), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 64, 256))
    plain, flipped = normalised_tensor(image), normalised_tensor(image, flip=True)
    assert torch.equal(flipped, plain.flip(-1))
    assert plain[0, 0, 0] > plain[0, 0, -1] and flipped[0, 0, 0] < flipped[0, 0, -1]


def test_an_image_already_at_size_is_not_resampled():
    image = Image.effect_noise((IMAGE_WIDTH, IMAGE_HEIGHT), 60).convert("RGB")
    pixels = normalised_tensor(image, mean=(0, 0, 0), std=(1, 1, 1))
    raw = torch.from_numpy(np.asarray(image, dtype=np.float32)) / 255
    assert torch.allclose(pixels, raw.permute(2, 0, 1))


def test_normalising_a_batch_of_pixels_equals_normalising_each_image_exactly():
    images = [Image.effect_noise((100, 230), sigma) for sigma in (10, 40, 90)]
    one_by_one = torch.stack([normalised_tensor(image, flip=True) for image in images])
    batched = normalise(torch.stack([pixel_tensor(image, flip=True) for image in images]))
    assert batched.dtype == torch.float32 and batched.shape == (3, 3, IMAGE_HEIGHT, IMAGE_WIDTH)
    assert torch.equal(batched, one_by_one)
    reference = (pixel_tensor(images[0]).float() / 255 - torch.tensor(SYNTH_PEDES_MEAN).view(3, 1, 1)) / torch.tensor(
        SYNTH_PEDES_STD
    ).view(3, 1, 1)
    assert torch.equal(normalise(pixel_tensor(images[0])), reference)  # the same arithmetic as written out


def test_pixel_tensor_is_contiguous_uint8_channels_first():
    image = Image.new("RGB", (4, 2), (10, 20, 30))
    pixels = pixel_tensor(image, (2, 4))
    assert pixels.dtype == torch.uint8 and pixels.is_contiguous() and pixels.shape == (3, 2, 4)
    assert pixels[:, 0, 0].tolist() == [10, 20, 30]
