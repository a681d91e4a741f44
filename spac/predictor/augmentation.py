"""Training augmentation for the attribute predictor that keeps every label true.

Colour is a label (a "red t-shirt" must stay red), so there is no hue, saturation, brightness or contrast
jitter. What changes is geometry and sharpness: a random crop of 85-100% of each side at a random place
(scale and translation: the person framed a little tighter or off-centre), a horizontal flip (people look
the same mirrored), a small rotation (a leaning camera; the corners it uncovers are filled with the image's
mean colour, not a new one) and sometimes a slight Gaussian blur (a low-resolution camera). The crop never
cuts more than 15% of a side, so a visible group stays visible.

Each call takes its own ``random.Random``; the trainer seeds it from (seed, epoch, example index), so an image's
augmentation is the same whatever worker prepares it and after a resume.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageStat

from common.errors import InputError

MODES = ("none", "flip", "full")


@dataclass(frozen=True)
class Augmentation:
    """What to draw: ``full`` every transform below; ``flip`` only the mirror (the rendered-people default).

    ``none`` draws nothing.
    """

    mode: str = "full"
    min_crop: float = 0.85  # smallest share of each side a crop keeps
    flip: float = 0.5  # probability of a horizontal flip
    max_rotation: float = 5.0  # degrees, either way
    blur: float = 0.3  # probability of a blur
    max_blur_radius: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"augmentation must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not 0 < self.min_crop <= 1:
            raise InputError(f"min_crop must be in (0, 1], got {self.min_crop}")
        for name in ("flip", "blur"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        if not (0 <= self.max_rotation <= 45 and 0 <= self.max_blur_radius <= 5 and math.isfinite(self.max_rotation)):
            raise InputError("max_rotation must be 0-45 degrees and max_blur_radius 0-5 pixels")

    def __call__(self, image: Image.Image, rng: random.Random) -> Image.Image:
        """A new RGB image; the same ``rng`` state gives the same result."""
        image = image.convert("RGB")
        if self.mode == "none":
            return image
        if self.mode == "flip":
            return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < self.flip else image
        width, height = image.size
        keep_w, keep_h = rng.uniform(self.min_crop, 1.0), rng.uniform(self.min_crop, 1.0)
        crop_w, crop_h = max(1, round(width * keep_w)), max(1, round(height * keep_h))
        left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
        image = image.crop((left, top, left + crop_w, top + crop_h))
        if rng.random() < self.flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        angle = rng.uniform(-self.max_rotation, self.max_rotation)
        if angle:
            fill = tuple(round(c) for c in ImageStat.Stat(image).mean[:3])
            image = image.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=fill)
        if rng.random() < self.blur:
            image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, self.max_blur_radius)))
        return image
