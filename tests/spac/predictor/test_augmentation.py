"""Augmentation: repeatable per RNG state, geometry only (colours kept), modes and settings checked."""

import random

import numpy as np
import pytest
from PIL import Image

from spac.predictor.augmentation import Augmentation


def _person():
    """A red torso on grey, lighter on the right half so a mirror shows."""
    image = Image.new("RGB", (64, 128), (120, 120, 120))
    image.paste((200, 30, 36), (16, 32, 48, 80))
    image.paste((140, 140, 140), (32, 0, 64, 32))
    return image


def test_the_same_rng_state_gives_the_same_image_and_another_one_differs():
    augment = Augmentation("full")
    first = augment(_person(), random.Random(3))
    assert np.array_equal(np.asarray(first), np.asarray(augment(_person(), random.Random(3))))
    others = [np.asarray(augment(_person(), random.Random(s))) for s in range(4, 10)]
    assert any(o.shape != np.asarray(first).shape or not np.array_equal(o, first) for o in others)


def test_full_augmentation_keeps_the_colours_it_shows():
    augment = Augmentation("full", blur=0.0)
    for seed in range(10):
        pixels = np.asarray(augment(_person(), random.Random(seed))).reshape(-1, 3).astype(int)
        # the torso red is still there, unshifted (rotation blends edges; the interior keeps its exact value)
        assert (np.abs(pixels - [200, 30, 36]).sum(axis=1) == 0).sum() > 300, seed
        # and no new hue appears: every pixel is a blend of the three drawn colours (r >= g == b or red-ish)
        assert np.all(pixels[:, 1] <= pixels[:, 0] + 1)


def test_crop_keeps_at_least_min_crop_of_each_side():
    augment = Augmentation("full", min_crop=0.85, max_rotation=0.0, blur=0.0)
    for seed in range(20):
        width, height = augment(_person(), random.Random(seed)).size
        assert 0.85 * 64 - 1 <= width <= 64 and 0.85 * 128 - 1 <= height <= 128


def test_flip_mode_mirrors_about_half_and_none_is_the_identity():
    flip = Augmentation("flip")
    image = _person()
    mirrored = [
        np.array_equal(np.asarray(flip(image, random.Random(s))), np.asarray(image)[:, ::-1]) for s in range(40)
    ]
    assert 10 <= sum(mirrored) <= 30
    assert np.array_equal(np.asarray(Augmentation("none")(image, random.Random(0))), np.asarray(image))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "colour"}, "augmentation must be one of"),
        ({"min_crop": 0.0}, "min_crop"),
        ({"flip": 2.0}, "flip must be"),
        ({"max_rotation": 90.0}, "max_rotation"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Augmentation(**kwargs)
