"""The paper's corpus filters: one identity or image failing each rule, and the boundaries of each threshold."""

import hashlib

import pytest

from spac.corpus.filters import (
    GENDER_VOTE_FAILED,
    OVER_IDENTITY_CAP,
    TOO_FEW_IMAGES,
    TOO_MANY_UNKNOWN,
    UPPER_AND_LOWER_UNKNOWN,
    FilterConfig,
    filter_identity,
    image_rejection,
    vote_gender,
)

FULL = {
    "gender": "man",
    "hair": "short black hair",
    "upper": "red t-shirt",
    "lower": "blue jeans",
    "shoes": "white sneakers",
    "belongings": "black backpack",
}


def person(**overrides):
    return {**FULL, **overrides}


def identity(n, prefix="p", **overrides):
    return {f"{prefix}_{i:02d}": person(**overrides) for i in range(n)}


def test_complete_image_is_kept():
    assert image_rejection(FULL) is None


@pytest.mark.parametrize(
    "unknown_groups, expected",
    [
        (("hair", "shoes"), None),
        (("hair", "shoes", "belongings"), TOO_MANY_UNKNOWN),
        (("gender", "hair", "shoes", "belongings"), TOO_MANY_UNKNOWN),
        (("upper", "lower"), UPPER_AND_LOWER_UNKNOWN),
        (("upper",), None),
    ],
)
def test_image_rejection(unknown_groups, expected):
    attributes = person(**{g: "unknown" for g in unknown_groups})
    assert image_rejection(attributes) == expected


def test_max_unknown_is_a_threshold():
    two_unknown = person(hair="unknown", shoes="unknown")
    assert image_rejection(two_unknown, max_unknown=2) == TOO_MANY_UNKNOWN
    assert image_rejection(two_unknown, max_unknown=3) is None


@pytest.mark.parametrize(
    "genders, expected",
    [
        (["man"] * 8 + ["woman"] * 2, "man"),  # 0.8 > 0.7
        (["woman"] * 7 + ["man"] * 3, None),  # 0.7 does not exceed 0.7
        (["man"] * 8 + ["unknown"] * 2, "man"),
        (["man"] * 7 + ["unknown"] * 3, None),  # unknowns count against the majority
        (["unknown"] * 5, None),
        (["man", "woman"], None),
    ],
)
def test_vote_gender(genders, expected):
    assert vote_gender(genders, 0.7) == expected


def test_gender_vote_applies_majority_to_every_image():
    images = identity(9)
    images["p_09"] = person(gender="woman")
    verdict = filter_identity(images)
    assert len(verdict.kept) == 10 and not verdict.dropped
    assert {a["gender"] for a in verdict.kept.values()} == {"man"}


def test_identity_failing_gender_vote_is_dropped_whole():
    images = {**identity(5, "m"), **identity(5, "w", gender="woman")}
    verdict = filter_identity(images)
    assert not verdict.kept
    assert verdict.dropped == {k: GENDER_VOTE_FAILED for k in images}


def test_identity_with_too_few_images_is_dropped():
    verdict = filter_identity(identity(4))
    assert not verdict.kept and set(verdict.dropped.values()) == {TOO_FEW_IMAGES}
    assert len(filter_identity(identity(5)).kept) == 5


def test_cap_keeps_max_images_deterministically_and_depends_on_seed():
    images = identity(30)
    first = filter_identity(images, FilterConfig(seed=1))
    assert len(first.kept) == 20 and len(first.dropped) == 10
    assert set(first.dropped.values()) == {OVER_IDENTITY_CAP}
    assert first == filter_identity(dict(reversed(list(images.items()))), FilterConfig(seed=1))
    assert set(first.kept) != set(filter_identity(images, FilterConfig(seed=2)).kept)
    # The paper's random choice made reproducible: the smallest sha256(key NUL seed), as in released corpora.
    smallest = sorted(images, key=lambda k: hashlib.sha256(f"{k}\x00{1}".encode()).hexdigest())[:20]
    assert set(first.kept) == set(smallest)


def test_empty_identity():
    verdict = filter_identity({})
    assert not verdict.kept and not verdict.dropped


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_unknown": 0}, "max_unknown"),
        ({"gender_vote": 1.0}, "gender_vote"),
        ({"min_images": 0}, "min_images"),
        ({"min_images": 5, "max_images": 4}, "max_images"),
    ],
)
def test_bad_thresholds_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FilterConfig(**kwargs)
