"""spac.language: attribute mentions (group, item, colour, value, span) found by the spaCy matchers."""

from __future__ import annotations

import pytest

from spac.attributes import UNKNOWN, load_schema
from spac.language import (
    AttributeMention,
    attribute_spans,
    attributes_from_text,
    extract_attributes,
    extract_attributes_batch,
)


def _found(text: str) -> list[tuple[str, str, str | None, str | None, str]]:
    return [(m.group, m.item, m.colour, m.value, m.text) for m in extract_attributes(text)]


def test_spec_examples() -> None:
    assert extract_attributes("a navy blue tee") == [
        AttributeMention("upper", "t-shirt", "navy", "navy t-shirt", 2, 15, "navy blue tee")
    ]
    assert _found("she wears jeans") == [("lower", "jeans", None, "jeans", "jeans")]  # a bare value (schema v2)
    assert _found("a bald man") == [("gender", "man", None, "man", "man")]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a gray t shirt", ("upper", "t-shirt", "grey", "grey t-shirt", "gray t shirt")),
        ("a scarlet tee-shirt", ("upper", "t-shirt", "red", "red t-shirt", "scarlet tee-shirt")),
        ("a dark blue pullover", ("upper", "sweater", "navy", "navy sweater", "dark blue pullover")),
        ("a navy-blue windbreaker", ("upper", "jacket", "navy", "navy jacket", "navy-blue windbreaker")),
        ("tan slacks", ("lower", "trousers", "beige", "beige trousers", "tan slacks")),
        ("a black rucksack", ("belongings", "backpack", "black", "black backpack", "black rucksack")),
        ("her cell phone", ("belongings", "phone", None, "phone", "cell phone")),
    ],
)
def test_synonyms_resolve_to_canonical_item_and_colour(text: str, expected: tuple) -> None:
    assert _found(text) == [expected]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a pair of blue jeans", ("lower", "jeans", "blue", "blue jeans", "blue jeans")),
        ("white sneakers", ("shoes", "sneakers", "white", "white sneakers", "white sneakers")),
        ("two red dresses", ("lower", "dress", "red", "red dress", "red dresses")),
        ("grey hoodies", ("upper", "hoodie", "grey", "grey hoodie", "grey hoodies")),
        ("Black T-Shirts", ("upper", "t-shirt", "black", "black t-shirt", "Black T-Shirts")),
        ("two ladies", ("gender", "woman", None, "woman", "ladies")),
    ],
)
def test_plurals_and_a_pair_of(text: str, expected: tuple) -> None:
    assert _found(text) == [expected]


def test_verb_forms_are_not_plural_items() -> None:
    # 'dressed' and 'topped' share their lookup lemma with the items 'dress' and 'top'.
    assert _found("a man dressed warmly, topped off with a red coat") == [
        ("gender", "man", None, "man", "man"),
        ("upper", "coat", "red", "red coat", "red coat"),
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a white polo shirt", ("upper", "polo shirt", "white", "white polo shirt", "white polo shirt")),
        ("a black long skirt", ("lower", "long skirt", "black", "black long skirt", "black long skirt")),
        ("a long black skirt", ("lower", "long skirt", "black", "black long skirt", "long black skirt")),
        ("a red down jacket", ("upper", "down jacket", "red", "red down jacket", "red down jacket")),
        ("a blue shoulder bag", ("belongings", "shoulder bag", "blue", "blue shoulder bag", "blue shoulder bag")),
        ("brown dress shoes", ("shoes", "leather shoes", "brown", "brown leather shoes", "brown dress shoes")),
        ("green short pants", ("lower", "shorts", "green", "green shorts", "green short pants")),
    ],
)
def test_overlaps_keep_the_longest_match(text: str, expected: tuple) -> None:
    assert _found(text) == [expected]


@pytest.mark.parametrize(
    "text, item, colour, value",
    [
        ("short black hair", "short hair", "black", "short black hair"),
        ("long brown hair", "long hair", "brown", "long brown hair"),
        ("brown long hair", "long hair", "brown", "long brown hair"),
        ("blonde ponytail", "ponytail", "blond", "blond ponytail"),
        ("wavy golden hair", "curly hair", "blond", "curly blond hair"),
        ("black hair", "hair", "black", "black hair"),  # the generic hair item (schema v2)
        ("long hair", "long hair", None, "long hair"),  # a bare value
        ("short purple hair", "short hair", "purple", None),  # purple is not in the hair palette
        ("short dark brown hair", "short hair", "brown", "short brown hair"),
    ],
)
def test_hair_patterns(text: str, item: str, colour: str, value: str | None) -> None:
    assert _found(text) == [("hair", item, colour, value, text)]


def test_mentions_sorted_with_spans_into_the_text() -> None:
    text = "A Lady with LONG brown hair, in a navy blue tee and Gray jeans, carries a purse."
    mentions = extract_attributes(text)
    assert [m.group for m in mentions] == ["gender", "hair", "upper", "lower", "belongings"]
    assert all(text[m.start : m.end] == m.text for m in mentions)
    assert [m.start for m in mentions] == sorted(m.start for m in mentions)
    assert [m.value for m in mentions] == ["woman", "long brown hair", "navy t-shirt", "grey jeans", "handbag"]


def test_text_without_attributes_gives_nothing() -> None:
    assert extract_attributes("") == []
    assert extract_attributes("A person is walking down the street in the sun.") == []


def test_batch_matches_single_texts() -> None:
    texts = ["a red coat", "", "a man with a black umbrella and white boots", "a person"]
    assert extract_attributes_batch(texts) == [extract_attributes(t) for t in texts]


def test_attribute_spans_are_the_mentions_spans_of_each_text() -> None:
    texts = ["A woman with long black hair wears a red coat, blue jeans and white shoes.", "", "a person"]
    spans = attribute_spans(texts)
    assert spans == [[(m.start, m.end) for m in extract_attributes(t)] for t in texts]
    assert [texts[0][start:end] for start, end in spans[0]] == [
        "woman",
        "long black hair",
        "red coat",
        "blue jeans",
        "white shoes",
    ]
    assert spans[1:] == [[], []]


def test_non_string_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="expected a caption string, got int"):
        extract_attributes_batch(["a red coat", 3])  # type: ignore[list-item]


def test_attributes_from_text_takes_first_resolvable_mention_per_group() -> None:
    text = "The woman wears purple hair, a grey hoodie, then a red hoodie, black boots and brown hair."
    assert attributes_from_text(text) == {
        "gender": "woman",
        "hair": "brown hair",  # purple is not a hair colour: that mention resolves to no value
        "upper": "grey hoodie",
        "lower": UNKNOWN,
        "shoes": "black boots",
        "belongings": UNKNOWN,
    }
    assert list(attributes_from_text("")) == list(load_schema().group_names)


@pytest.mark.parametrize(
    "text, expected",
    [
        # the generic phrases of human captions (schema v2)
        ("a white top", ("upper", "top", "white", "white top", "white top")),
        ("black shoes", ("shoes", "shoes", "black", "black shoes", "black shoes")),
        ("a brown bag", ("belongings", "bag", "brown", "brown bag", "brown bag")),
        ("a bag", ("belongings", "bag", None, "bag", "bag")),
        ("black pants", ("lower", "trousers", "black", "black trousers", "black pants")),
        ("a white tank top", ("upper", "vest", "white", "white vest", "white tank top")),
        # colour modifiers: shaded colours read as the base colour, unless the shade is a synonym
        ("dark blue jeans", ("lower", "jeans", "navy", "navy jeans", "dark blue jeans")),
        ("light blue jeans", ("lower", "jeans", "blue", "blue jeans", "light blue jeans")),
        ("a dark red coat", ("upper", "coat", "red", "red coat", "dark red coat")),
        ("a bright-yellow jacket", ("upper", "jacket", "yellow", "yellow jacket", "bright-yellow jacket")),
        ("a maroon sweater", ("upper", "sweater", "red", "red sweater", "maroon sweater")),
        # descriptors between the colour and its item
        ("a black leather jacket", ("upper", "jacket", "black", "black jacket", "black leather jacket")),
        ("a white long-sleeved shirt", ("upper", "shirt", "white", "white shirt", "white long-sleeved shirt")),
        ("a red short sleeve shirt", ("upper", "shirt", "red", "red shirt", "red short sleeve shirt")),
        ("black colored shoes", ("shoes", "shoes", "black", "black shoes", "black colored shoes")),
        ("a blue and white striped shirt", ("upper", "shirt", "white", "white shirt", "white striped shirt")),
    ],
)
def test_human_caption_phrases(text: str, expected: tuple) -> None:
    assert _found(text) == [expected]


def test_a_descriptor_does_not_carry_a_colour_across_another_item() -> None:
    assert _found("a black jacket and leather shoes") == [
        ("upper", "jacket", "black", "black jacket", "black jacket"),
        ("shoes", "leather shoes", None, "leather shoes", "leather shoes"),
    ]
    assert _found("a red, plain shirt") == [("upper", "shirt", None, "shirt", "shirt")]


def test_the_released_example_reads_back() -> None:
    found = _found("man, black hair, black shirt, pink shorts, black shoes")
    assert [f[3] for f in found] == ["man", "black hair", "black shirt", "pink shorts", "black shoes"]


def test_every_schema_value_phrase_reads_back_as_itself() -> None:
    schema = load_schema()
    values = [v for g in schema.groups for v in g.values]
    found = extract_attributes_batch([v.phrase for v in values])
    assert [(m[0].group, m[0].value) if len(m) == 1 else m for m in found] == [(v.group, v.phrase) for v in values]
