"""PLIP's image transforms: the released evaluation transform and the training transform (with a horizontal
flip), both :func:`common.imaging.normalised_tensor` with the SYNTH-PEDES statistics, and the image-file reader
that evaluation and fine-tuning share: the project's one decode policy for untrusted files
(:func:`shards.images.open_image_file`: bounded bytes and pixels, EXIF orientation, RGB)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from common.errors import InputError
from common.imaging import IMAGE_HEIGHT, IMAGE_WIDTH, SYNTH_PEDES_MEAN, SYNTH_PEDES_STD, normalised_tensor
from shards.images import ImageRejected, open_image_file

EVAL_HEIGHT, EVAL_WIDTH = IMAGE_HEIGHT, IMAGE_WIDTH  # 256 x 128
# The released model normalises with SYNTH-PEDES statistics, in training and evaluation alike.
EVAL_MEAN, EVAL_STD = SYNTH_PEDES_MEAN, SYNTH_PEDES_STD


class ImageReadError(ImageRejected):
    """An image file that is missing, unreadable or refused by the decode policy; the message names the file."""


def read_image(path: str | Path) -> Image.Image:
    """The RGB image in ``path``, decoded now under the decode policy at full resolution (as the released
    transform saw it); a missing, damaged or oversized file fails here, in one line naming it."""
    try:
        return open_image_file(str(path))
    except ImageRejected as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from None
    except OSError as exc:  # missing, a folder, no permission
        raise ImageReadError(f"cannot read image {path}: {exc.strerror or exc}") from None


def eval_transform(image: Image.Image) -> torch.Tensor:
    """The released evaluation transform: RGB, bicubic resize to 256x128, [0, 1] tensor, normalised."""
    return normalised_tensor(image, (EVAL_HEIGHT, EVAL_WIDTH))


def train_transform(image: Image.Image, size: tuple[int, int], flip: bool) -> torch.Tensor:
    """The training transform: the evaluation's normalisation at the model's ``size`` (H, W), flipped on request
    (the caller draws the flip, so that a seeded batch stays reproducible)."""
    return normalised_tensor(image, size, flip=flip)


def check_eval_size(image_size: Sequence[int]) -> None:
    """InputError unless a model takes the 256x128 images that the evaluation transform feeds."""
    if tuple(image_size) != (EVAL_HEIGHT, EVAL_WIDTH):
        raise InputError(
            f"retrieval evaluation feeds {EVAL_HEIGHT}x{EVAL_WIDTH} images (the released transform), "
            f"the model takes {image_size[0]}x{image_size[1]}"
        )
