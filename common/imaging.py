"""The one normalising image transform: RGB -> bicubic resize -> [0, 1] -> SYNTH-PEDES mean / std (per image,
or as uint8 pixels first and normalised a batch at a time)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

# SYNTH-PEDES statistics (the released evaluation transform, REFERENCE §4).
SYNTH_PEDES_MEAN = (0.357, 0.323, 0.328)
SYNTH_PEDES_STD = (0.252, 0.242, 0.239)
IMAGE_HEIGHT, IMAGE_WIDTH = 256, 128


def pixel_tensor(
    image: Image.Image, size: tuple[int, int] = (IMAGE_HEIGHT, IMAGE_WIDTH), *, flip: bool = False
) -> torch.Tensor:
    """RGB image -> contiguous uint8 ``[3, H, W]``: bicubic resize to ``size`` (H, W), optional horizontal flip.

    Stacked uint8 images normalise in one :func:`normalise` call: float work on a whole batch, not per image
    (torch's thread pool costs more than the arithmetic on one 256x128 image)."""
    height, width = size
    rgb = image.convert("RGB")
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), Image.Resampling.BICUBIC)
    if flip:
        rgb = rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(height, width, 3)
    return pixels.permute(2, 0, 1).contiguous()  # a uint8 copy is cheap; float ops then run on contiguous memory


def normalise(
    pixels: torch.Tensor, mean: Sequence[float] = SYNTH_PEDES_MEAN, std: Sequence[float] = SYNTH_PEDES_STD
) -> torch.Tensor:
    """uint8 ``[..., 3, H, W]`` -> float32 scaled to [0, 1] and normalised per channel (in place on the new
    float tensor: the same arithmetic, in the same order, as ``(x / 255 - mean) / std``)."""
    scaled = pixels.float().div_(255.0)
    return scaled.sub_(torch.tensor(mean).view(3, 1, 1)).div_(torch.tensor(std).view(3, 1, 1))


def normalised_tensor(
    image: Image.Image,
    size: tuple[int, int] = (IMAGE_HEIGHT, IMAGE_WIDTH),
    *,
    flip: bool = False,
    mean: Sequence[float] = SYNTH_PEDES_MEAN,
    std: Sequence[float] = SYNTH_PEDES_STD,
) -> torch.Tensor:
    """RGB image -> float32 ``[3, H, W]``: :func:`pixel_tensor` then :func:`normalise`. The predictor,
    training and evaluation all use it."""
    return normalise(pixel_tensor(image, size, flip=flip), mean, std)
