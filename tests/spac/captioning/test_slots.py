"""The slot language shared by the sentence library and the style modules: parsing, filling, checks."""

from __future__ import annotations

import pytest

from spac.attributes import load_schema
from spac.captioning.grammar import person_for
from spac.captioning.slots import (
    GROUP_SLOTS,
    NOTHING_ONE_IN,
    FillContext,
    Slot,
    TemplateError,
    check_nothing_sentence,
    check_template,
    fill,
    groups_of,
    literal_text,
    parse_slot,
    parse_slots,
    parse_yaml,
    unsay_nothing,
    vocabulary_word,
)

SCHEMA = load_schema()
FULL = {
    "gender": "man",
    "hair": "short black hair",
    "upper": "orange coat",
    "lower": "blue jeans",
    "shoes": "white sneakers",
    "belongings": "nothing",
}


def _ctx(gender: str = "man", **overrides: str) -> FillContext:
    attributes = {**FULL, **overrides}
    return FillContext(person_for(gender), {g: SCHEMA.value(g, attributes[g]) for g in GROUP_SLOTS})


def test_group_slots_are_the_groups_after_gender():
    assert GROUP_SLOTS == ("hair", "upper", "lower", "shoes", "belongings")


@pytest.mark.parametrize(
    "body, slot",
    [
        ("gender", Slot("gender", "gender")),
        (" they ", Slot("pronoun", "they")),
        ("their", Slot("pronoun", "their")),
        ("v:carry", Slot("verb", "carry")),
        ("upper", Slot("group", "upper", "bare")),
        ("a upper", Slot("group", "upper", "a")),
        ("pair shoes", Slot("group", "shoes", "pair")),
    ],
)
def test_parse_slot_knows_every_kind(body, slot):
    assert parse_slot(body) == slot


@pytest.mark.parametrize("body", ["hat", "a hat", "the upper", "v:Carry", "v:", "", "an upper"])
def test_parse_slot_refuses_unknown_slots(body):
    with pytest.raises(ValueError, match="unknown slot"):
        parse_slot(body)


def test_parse_slots_in_order_and_stray_braces():
    assert [s.kind for s in parse_slots("The {gender} {v:wear} {a upper}; {they} walk.")] == [
        "gender",
        "verb",
        "group",
        "pronoun",
    ]
    assert parse_slots("no slots here") == []
    for template in ("A {gender", "A gender}", "A {{gender}}"):
        with pytest.raises(ValueError):
            parse_slots(template)
    assert groups_of("{gender} in {a upper} and {pair shoes}, {upper}") == frozenset({"upper", "shoes"})


def test_fill_names_the_person_and_agrees_pronouns_and_verbs():
    template = "The {gender} {v:carry} {a belongings}; {they} {v:wear} {their} {upper}."
    assert fill(template, _ctx("man"), plural=False) == "The man carries nothing; he wears his orange coat."
    assert fill(template, _ctx("woman"), plural=False) == "The woman carries nothing; she wears her orange coat."
    unknown = FillContext(person_for("unknown", "pedestrian"), _ctx().values)
    assert fill(template, unknown, plural=True) == "The pedestrian carry nothing; they wear their orange coat."


def test_fill_gives_articles_and_pairs():
    ctx = _ctx()
    assert fill("{a upper}", ctx, False) == "an orange coat"
    assert fill("{a lower}", ctx, False) == "blue jeans"  # plural garments take no article
    assert fill("{pair shoes}", ctx, False) == "a pair of white sneakers"
    assert fill("{a hair}", ctx, False) == "short black hair"
    assert fill("{a belongings}", ctx, False) == "nothing"


def test_fill_of_an_unknown_group_is_a_programming_error():
    ctx = FillContext(person_for("man"), {})
    with pytest.raises(KeyError):
        fill("{a upper}", ctx, False)


def test_literal_text_and_vocabulary_words():
    assert literal_text("A {gender} in {a upper}.") == "A  |  in  | ."
    assert vocabulary_word("A {gender} in {a upper}.", SCHEMA) is None
    assert vocabulary_word("A {gender} in a red {upper}.", SCHEMA) == "red"
    assert vocabulary_word("A {gender} with two bags.", SCHEMA) == "bags"  # plurals of generic nouns too
    assert vocabulary_word("A {gender} whose {hair} shines.", SCHEMA) is None  # a slot is not literal text
    assert vocabulary_word("An unknown {gender}.", SCHEMA) == "unknown"


@pytest.mark.parametrize(
    "template, problem",
    [
        (None, "expected a non-empty string"),
        ("   ", "expected a non-empty string"),
        ("A {gender} with {a hat}.", "unknown slot {a hat}"),
        ("A {gender.", "unbalanced brace"),
        ("A {gender} in a coat.", "the attribute word 'coat' must come from a slot"),
    ],
)
def test_check_template_errors_name_file_and_key(template, problem):
    with pytest.raises(TemplateError) as err:
        check_template(template, "file.yaml", "sentences.x[0]", SCHEMA)
    message = str(err.value)
    assert message.startswith("file.yaml: sentences.x[0]: ") and problem in message and "\n" not in message
    assert isinstance(err.value, ValueError)


def test_check_template_returns_the_stripped_template():
    assert check_template("  A {gender} walks.  ", "f", "k", SCHEMA) == "A {gender} walks."


def test_parse_yaml_names_the_line_of_invalid_yaml():
    assert parse_yaml("a: [1, 2]\n", "f.yaml") == {"a": [1, 2]}
    with pytest.raises(TemplateError, match=r"^f\.yaml: line 2: invalid YAML"):
        parse_yaml("a: 1\n- b\n", "f.yaml")


def test_belongings_nothing_is_taken_out_and_said_about_once_in_twelve():
    ctx = _ctx()
    outcomes = [unsay_nothing(ctx, digest) for digest in range(1200)]
    assert all(set(said.values) == set(GROUP_SLOTS) - {"belongings"} for said, _ in outcomes)
    share = sum(say for _, say in outcomes) / len(outcomes)
    assert abs(share - 1 / NOTHING_ONE_IN) < 0.03
    assert outcomes == [unsay_nothing(ctx, digest) for digest in range(1200)]  # deterministic per digest
    other = _ctx(belongings="black backpack")
    assert unsay_nothing(other, 5) == (other, False)


def test_a_nothing_sentence_names_belongings_at_most():
    assert check_nothing_sentence(" {they} {v:have} {belongings} in {their} hands. ", "f", "k", SCHEMA) == (
        "{they} {v:have} {belongings} in {their} hands."
    )
    assert check_nothing_sentence("{their} hands are empty.", "f", "k", SCHEMA) == "{their} hands are empty."
    for bad, problem in (
        ("{they} {v:have} {a hair}.", "names no group but"),
        ("A {gender} carries {belongings}.", "names no group but"),
        ("{v:have} {belongings}.", "verbs agree with a pronoun"),
        ("{their} hands are empty", "ends with a period"),
    ):
        with pytest.raises(TemplateError, match=f"^f: k: .*{problem}"):
            check_nothing_sentence(bad, "f", "k", SCHEMA)
