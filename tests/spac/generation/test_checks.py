"""The checks of a generated text: one scripted text per rejection reason, the texts each rule must keep,
the order of the rules, and SPAC's own captions passing them all."""

from __future__ import annotations

import random

import pytest

from spac.attributes import UNKNOWN, load_schema
from spac.captioning.captioner import Captioner
from spac.generation.checks import REASONS, check_text, normalised
from spac.generation.grounding import GivenAttributes

SCHEMA = load_schema()
MAN = GivenAttributes(
    {
        "gender": "man",
        "hair": "short black hair",
        "upper": "red t-shirt",
        "lower": "blue jeans",
        "shoes": "white sneakers",
        "belongings": "black backpack",
    },
    {},
)
GOOD = "A man with short black hair walks by in a red t-shirt and blue jeans."


def _check(text: str, prediction=MAN, others=(), min_confidence=0.5, min_words=5, max_words=60) -> str | None:
    return check_text(text, prediction, min_confidence, others, min_words, max_words, SCHEMA)


REJECTED = [
    ("", "empty"),
    ("   \n\t ", "empty"),
    ("A man in a red t-shirt <b>walks</b> by.", "markup"),
    ("A man in a **red t-shirt** walks by.", "markup"),
    ("```A man in a red t-shirt walks by.```", "markup"),
    ("# A man in a red t-shirt walks by.", "markup"),
    ("- A man in a red t-shirt walks by.", "markup"),
    ("1. A man in a red t-shirt walks by.", "markup"),
    ("A man in a red t-shirt walks by &amp; smiles.", "markup"),
    ("A man in a red t-shirt\nwalks by.", "markup"),
    ("A man in a red\tt-shirt walks by.", "markup"),
    ("A man in a red t-shirt\u200b walks by.", "markup"),
    ("A man in a red t-shirt \u202ewalks by.", "markup"),
    ("A man in a red t-shirt walks\x00 by.", "markup"),
    ("A man in a [colour] t-shirt walks by.", "markup"),
    ("A {gender} in a red t-shirt walks by.", "markup"),
    ("A man walks.", "too_short"),
    ("A man " + "slowly " * 60 + "walks.", "too_long"),
    ("A man in a red t-shirt walks walks walks by.", "repetition"),
    ("A man in a red t-shirt, a red t-shirt, walks by.", "repetition"),
    ("A man with a black backpack and jeans is wearing a red t-shirt with a black backpack and jeans.", "repetition"),
    ("The man walks by. The man walks by.", "repetition"),
    ("A woman in a red t-shirt walks by.", "gender"),
    ("The lady wears a red t-shirt and jeans.", "gender"),
    ("A man in a red t-shirt walks by; she smiles.", "gender"),
    ("A person in a red t-shirt walks by with his hands in her pockets.", "gender"),
    ("A man in a blue t-shirt and blue jeans walks by.", "contradiction"),
    ("A man in a red sweater and blue jeans walks by.", "contradiction"),
    ("A man with long black hair walks by in jeans.", "contradiction"),
    ("A man in a red t-shirt and dark blue jeans walks by.", "contradiction"),  # dark blue is navy
    ("A man in a red t-shirt walks by with a brown handbag.", "contradiction"),
]


@pytest.mark.parametrize("text, reason", REJECTED)
def test_each_rule_rejects_its_scripted_text(text, reason):
    assert _check(text) == reason


def test_every_reason_has_a_scripted_text():
    assert {reason for _, reason in REJECTED} | {"duplicate"} == set(REASONS)


@pytest.mark.parametrize(
    "other", [GOOD, GOOD.upper(), "a man, with short black hair; walks by in a red t-shirt and blue jeans"]
)
def test_a_text_with_the_same_words_as_another_text_of_the_image_is_a_duplicate(other):
    assert _check(GOOD, others=["Another text entirely.", other]) == "duplicate"
    assert normalised(GOOD) == normalised(other)


@pytest.mark.parametrize(
    "text",
    [
        GOOD,
        # one agreeing mention is enough
        "A man wears a red t-shirt under a black jacket, blue jeans and white sneakers.",
        "The man has black hair, a red top, jeans and shoes, and carries a bag.",  # generic words and bare items agree
        "A man in a red t-shirt and blue jeans walks by. He has short black hair and carries a black backpack.",
        "A man in a red t-shirt, his hands in his pockets, walks by.",
        "A gentleman in a red t-shirt and blue jeans walks by.",  # a synonym of the trusted gender
        "Walking by is a man in a red t-shirt, with blue jeans, in white sneakers.",
    ],
)
def test_texts_that_agree_with_the_trusted_values_are_kept(text):
    assert _check(text) is None


def test_only_trusted_groups_are_held_to_their_value():
    prediction = GivenAttributes({**MAN.attributes, "lower": UNKNOWN}, {"upper": 0.3, "gender": 0.2})
    assert _check("A woman in a blue sweater and grey shorts walks by.", prediction) is None
    assert _check("A woman in a blue sweater and grey shorts walks by.", prediction, min_confidence=0.2) == "gender"
    assert _check("A man with long brown hair walks by.", prediction) == "contradiction"  # confidence None: given


def test_the_word_limits_are_the_callers():
    assert _check("A man walks by.", min_words=4) is None
    assert _check(GOOD, max_words=10) == "too_long"
    assert _check("A man in a red t-shirt walks.", min_words=8) == "too_short"


def test_the_first_failing_rule_names_the_reason():
    assert _check("<b>A woman.</b>") == "markup"  # before too_short and gender
    assert _check("A woman walks.") == "too_short"  # before gender
    assert _check("A woman in a blue t-shirt walks by.", others=["a woman in a blue t-shirt walks by"]) == "duplicate"
    assert _check("A woman in a blue t-shirt walks by.") == "gender"  # before contradiction


def test_spac_captions_pass_every_check_against_their_own_attributes():
    captioner = Captioner(SCHEMA)
    rng = random.Random(20)
    for i in range(150):
        attributes = {g.name: rng.choice(g.labels) for g in SCHEMA.groups}
        captions = captioner(attributes, f"k{i}")
        for caption in captions:
            others = [c.text for c in captions if c is not caption]
            assert _check(caption.text, GivenAttributes(attributes, {}), others=others, min_words=2) is None, caption
