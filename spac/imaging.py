"""The one normalising image transform: RGB -> bicubic resize -> [0, 1] -> SYNTH-PEDES mean / std."""
from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image

# SYNTH-PEDES statistics (the released evaluation transform, REFERENCE §4).
SYNTH_PEDES_MEAN = (0.357, 0.323, 0.328)
SYNTH_PEDES_STD = (0.252, 0.242, 0.239)
IMAGE_HEIGHT, IMAGE_WIDTH = 256, 128


def normalised_tensor(image: Image.Image, size: tuple[int, int] = (IMAGE_HEIGHT, IMAGE_WIDTH), *,
                      flip: bool = False, mean: Sequence[float] = SYNTH_PEDES_MEAN,
                      std: Sequence[float] = SYNTH_PEDES_STD) -> torch.Tensor:
    """RGB image -> float32 ``[3, H, W]``: bicubic resize to ``size`` (H, W), optional horizontal flip,
    scaled to [0, 1] and normalised. The predictor, training and evaluation all use it."""
    height, width = size
    rgb = image.convert("RGB")
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), Image.Resampling.BICUBIC)
    if flip:
        rgb = rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(height, width, 3)
    scaled = pixels.permute(2, 0, 1).float().div_(255.0)
    return (scaled - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
