"""English agreement helpers: articles, plural garments, pronouns, verb number, tidying."""

from __future__ import annotations

import pytest

from spac.attributes import UNKNOWN, AttributeValue, load_schema
from spac.captioning.grammar import conjugate, indefinite_article, join_list, noun_phrase, person_for, tidy


@pytest.mark.parametrize(
    "phrase, article",
    [
        ("orange coat", "an"),
        ("umbrella", "an"),
        ("white t-shirt", "a"),
        ("uniform", "a"),
        ("hour", "an"),
        ("black backpack", "a"),
        ("ankle boot", "an"),
    ],
)
def test_indefinite_article_follows_the_first_sound(phrase: str, article: str) -> None:
    assert indefinite_article(phrase) == article


def test_indefinite_article_rejects_an_empty_phrase() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        indefinite_article("  ")


def test_noun_phrase_uses_the_schema_value_kinds() -> None:
    schema = load_schema()
    assert noun_phrase(schema.value("upper", "orange coat")) == "an orange coat"
    assert noun_phrase(schema.value("upper", "white t-shirt")) == "a white t-shirt"
    assert noun_phrase(schema.value("lower", "blue jeans")) == "blue jeans"
    assert noun_phrase(schema.value("lower", "blue jeans"), pair=True) == "a pair of blue jeans"
    assert noun_phrase(schema.value("lower", "black skirt"), pair=True) == "a black skirt"
    assert noun_phrase(schema.value("hair", "short black hair")) == "short black hair"
    assert noun_phrase(schema.value("hair", "brown ponytail")) == "a brown ponytail"
    assert noun_phrase(schema.value("belongings", "nothing")) == "nothing"
    assert noun_phrase(schema.value("belongings", "phone")) == "a phone"
    assert noun_phrase(AttributeValue("belongings", "umbrella", None, "umbrella")) == "an umbrella"


def test_no_singular_article_before_any_plural_value() -> None:
    schema = load_schema()
    plural = [v for g in schema.groups for v in g.values if v.plural]
    assert plural, "the schema should have plural garments"
    for value in plural:
        assert not noun_phrase(value).startswith(("a ", "an "))
        assert noun_phrase(value, pair=True) == f"a pair of {value.phrase}"


@pytest.mark.parametrize(
    "verb, singular, plural",
    [
        ("carry", "carries", "carry"),
        ("be", "is", "are"),
        ("have", "has", "have"),
        ("wear", "wears", "wear"),
        ("pass", "passes", "pass"),
        ("watch", "watches", "watch"),
        ("play", "plays", "play"),
        ("be wearing", "is wearing", "are wearing"),
        ("have on", "has on", "have on"),
    ],
)
def test_conjugate_agrees_with_the_subject_number(verb: str, singular: str, plural: str) -> None:
    assert conjugate(verb, plural=False) == singular
    assert conjugate(verb, plural=True) == plural


def test_pronouns_agree_with_gender() -> None:
    assert (person_for("man").noun, person_for("man").they, person_for("man").their) == ("man", "he", "his")
    assert (person_for("woman").they, person_for("woman").them) == ("she", "her")
    neutral = person_for(UNKNOWN, "pedestrian")
    assert (neutral.noun, neutral.they, neutral.plural_pronoun) == ("pedestrian", "they", True)
    with pytest.raises(ValueError, match="man, woman or unknown"):
        person_for("robot")


def test_join_list_and_tidy() -> None:
    assert join_list(["a"]) == "a"
    assert join_list(["a", "b"]) == "a and b"
    assert join_list(["a", "b", "c"]) == "a, b and c"
    assert tidy("  the man  walks ,  he carries nothing. they  stop") == "The man walks, he carries nothing. They stop."


def _regex_tidy(text: str) -> str:
    """tidy() as it was written with regular expressions: the reference the faster one must equal."""
    import re

    text = re.sub(r"\s+([,.;:])", r"\1", re.sub(r"\s+", " ", text).strip())
    text = text.rstrip(",;: ")
    if not text.endswith((".", "!", "?")):
        text += "."
    return re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def test_tidy_equals_its_regular_expression_definition_on_random_text() -> None:
    import random

    rng = random.Random(7)
    alphabet = [
        "a",
        "b",
        "Z",
        "é",
        " ",
        "  ",
        "\t",
        "\n",
        "\u00a0",
        "\u2003",
        "\x1c",
        ",",
        ".",
        ";",
        ":",
        "!",
        "?",
        "-",
        "'",
        "man",
        " he",
        ". she",
        "! they",
        "? x",
    ]
    texts = ["", " ", ".", "a", "..", " , . ; :", "a. b. c", "x !  y ?\tz"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(20_000)]
    for text in texts:
        assert tidy(text) == _regex_tidy(text), repr(text)
