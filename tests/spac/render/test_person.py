"""One rendered person: determinism, labels of what is visible, garment colours and shapes, skin tone."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from spac.attributes import UNKNOWN, load_schema
from spac.render import random_identity, render_layers, render_person

SCHEMA = load_schema()


def identity(seed: int = 1, **overrides: str) -> dict[str, str]:
    attributes = random_identity(random.Random(seed))
    attributes.update(overrides)
    return attributes


def test_same_seed_gives_identical_pixels_and_other_seeds_differ():
    attributes = identity()
    first, visible = render_person(attributes, 7)
    again, visible_again = render_person(attributes, 7)
    other, _ = render_person(attributes, 8)
    assert first.tobytes() == again.tobytes() and visible == visible_again
    assert first.tobytes() != other.tobytes()


@pytest.mark.parametrize("size", [(128, 256), (64, 160)])
def test_image_size_and_mode(size):
    image, _ = render_person(identity(), 3, size)
    assert image.size == size and image.mode == "RGB"


def test_visible_attributes_are_the_identity_or_unknown():
    hidden_groups = Counter()
    for seed in range(40):
        attributes = identity(seed)
        _, visible = render_person(attributes, seed, hidden_fraction=0.5)
        assert list(visible) == list(SCHEMA.group_names)
        for group, value in visible.items():
            assert value in (attributes[group], UNKNOWN)
            hidden_groups[group] += value == UNKNOWN
        assert visible["gender"] == attributes["gender"] and visible["upper"] == attributes["upper"]
    assert hidden_groups["shoes"] > 5 and hidden_groups["lower"] > 0


def test_full_views_show_everything_and_crops_hide_the_shoes():
    for seed in range(30):
        attributes = identity(seed, belongings="red handbag")
        _, visible = render_person(attributes, seed, hidden_fraction=0.0)
        assert visible == attributes
        _, cropped = render_person(attributes, seed, hidden_fraction=1.0)
        assert cropped["shoes"] == UNKNOWN


def test_a_phone_is_hidden_in_a_back_view_but_a_backpack_is_not():
    for belongings in ("phone", "black backpack"):
        attributes = identity(2, belongings=belongings)
        views = {}
        for seed in range(40):
            rendering = render_layers(attributes, seed, hidden_fraction=0.0)
            views.setdefault(rendering.scene.view, rendering.visible["belongings"])
        expected_back = UNKNOWN if belongings == "phone" else belongings
        assert views["back"] == expected_back and views["front"] == belongings


def test_every_schema_item_is_drawn():
    for group in SCHEMA.groups[1:]:
        for item in (i for i in group.items if not i.generic):  # generic items ("top", "bag") are never drawn
            phrase = next(v.phrase for v in group.values if v.item == item.name and v.specific)
            attributes = identity(5, **{group.name: phrase})
            plain = render_layers(attributes, 0, plain=True, with_parts=True)
            painted = plain.mask(group.name).sum()
            assert painted == 0 if item.name == "nothing" else painted > 10, phrase
            for seed in range(3):
                image, visible = render_person(attributes, seed, hidden_fraction=0.5)
                assert image.size == (128, 256) and visible["upper"] == attributes["upper"]


def test_skin_tone_belongs_to_the_identity_not_the_seed():
    def skin(attributes: dict[str, str], seed: int) -> np.ndarray:
        rendering = render_layers(attributes, seed, plain=True, with_parts=True)
        return np.asarray(rendering.image, dtype=np.float32)[rendering.mask("skin")].mean(axis=0)

    tones = [skin(identity(seed), 0) for seed in range(12)]
    assert max(np.abs(t - tones[0]).max() for t in tones) > 40  # people differ
    for seed in (1, 2):
        assert np.abs(skin(identity(0), seed) - tones[0]).max() < 12  # one person stays the same


def test_render_person_rejects_generic_and_bare_values():
    with pytest.raises(ValueError, match="cannot draw hair item 'hair'"):
        render_person(identity(0, hair="black hair"), 0)
    with pytest.raises(ValueError, match="cannot draw the bare lower value 'jeans': a drawn garment needs a colour"):
        render_person(identity(0, lower="jeans"), 0)


def test_render_person_rejects_unknown_and_foreign_values():
    with pytest.raises(ValueError, match="unknown: shoes"):
        render_person(identity(shoes=UNKNOWN), 0)
    with pytest.raises(ValueError, match="not a value of attribute group 'upper'"):
        render_person(identity(upper="golden armour"), 0)


@pytest.mark.parametrize(
    "upper,lower",
    [
        ("red t-shirt", "blue jeans"),
        ("green coat", "yellow skirt"),
        ("navy down jacket", "beige trousers"),
        ("white blouse", "black shorts"),
        ("pink hoodie", "grey sweatpants"),
    ],
)
def test_garment_regions_have_the_schema_colour(upper, lower):
    rendering = render_layers(identity(3, upper=upper, lower=lower), 0, plain=True, with_parts=True)
    pixels = np.asarray(rendering.image, dtype=np.float32)
    for group, phrase in (("upper", upper), ("lower", lower)):
        mask = rendering.mask(group)
        assert mask.sum() > 150, f"{group} region too small"
        expected = np.array(SCHEMA.colours[SCHEMA.value(group, phrase).colour].rgb, dtype=np.float32)
        mean = pixels[mask].mean(axis=0)
        assert np.abs(mean - expected).max() < 20, (group, mean, expected)


def test_garment_shapes_differ_by_item():
    def mask(group: str, phrase: str) -> np.ndarray:
        return render_layers(identity(4, **{group: phrase}), 0, plain=True, with_parts=True).mask(group)

    rows = lambda m: np.nonzero(m.any(axis=1))[0]  # noqa: E731
    assert mask("upper", "red shirt").sum() > mask("upper", "red t-shirt").sum() > mask("upper", "red vest").sum()
    assert rows(mask("upper", "red coat")).max() > rows(mask("upper", "red jacket")).max() + 30
    assert rows(mask("lower", "red long skirt")).max() > rows(mask("lower", "red skirt")).max() + 30
    assert rows(mask("lower", "red trousers")).max() > rows(mask("lower", "red shorts")).max() + 40
