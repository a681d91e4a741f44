"""The masked sentence library: the bundled library's size and coverage, sentence selection with
addenda, the rare "nothing" sentence, a library in place of or beside the bundled one (--sentences), and
one-line errors naming the file and key for a malformed library."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest

from spac.attributes import load_schema
from spac.captioning.grammar import person_for
from spac.captioning.library import (
    SentencesOption,
    library_for,
    load_library,
    merge_libraries,
    parse_library,
    parse_sentences_option,
)
from spac.captioning.slots import GROUP_SLOTS, FillContext, TemplateError, parse_slots

SCHEMA = load_schema()
VALUES = {
    "hair": "short black hair",
    "upper": "orange coat",
    "lower": "blue jeans",
    "shoes": "white sneakers",
    "belongings": "black backpack",
}
ADDENDA = {g: [f"{{they}} {{v:have}} {{a {g}}}."] for g in GROUP_SLOTS}


def _ctx(*groups: str, gender: str = "man") -> FillContext:
    return FillContext(person_for(gender), {g: SCHEMA.value(g, VALUES[g]) for g in groups})


def _small_library():
    sentences = {
        "plain": ["A {gender} walks."],
        "upper": ["A {gender} in {a upper} walks."],
        "upper_hair": ["A {gender} in {a upper} with {a hair} walks.", "The {gender} has {a hair}, {a upper}."],
    }
    return parse_library({"sentences": sentences, "addenda": ADDENDA}, "small.yaml", SCHEMA)


def test_library_has_at_least_300_distinct_valid_sentences() -> None:
    library = load_library(schema=SCHEMA)
    texts = [s.text for s in library.sentences]
    assert len(set(texts)) >= 300
    for text in texts:
        slots = parse_slots(text)
        assert [s.kind for s in slots].count("gender") == 1, text
        assert {s.name for s in slots if s.kind == "group"} <= set(GROUP_SLOTS), text


def test_every_known_set_has_sentences_that_leave_out_at_most_one_group() -> None:
    library = load_library(schema=SCHEMA)
    for size in range(len(GROUP_SLOTS) + 1):
        for known in map(frozenset, combinations(GROUP_SLOTS, size)):
            candidates = library.candidates(known)
            assert candidates and all(len(known - s.groups) <= 1 for s in candidates), sorted(known)


def test_candidates_mention_only_known_groups_and_leave_out_the_fewest() -> None:
    library = _small_library()
    assert [s.text for s in library.candidates(frozenset())] == ["A {gender} walks."]
    assert {s.text for s in library.candidates(frozenset({"upper", "hair", "lower"}))} == {
        "A {gender} in {a upper} with {a hair} walks.",
        "The {gender} has {a hair}, {a upper}.",
    }
    # Only the plain sentence is usable; it leaves out two groups, more than MAX_LEFT_OUT, but nothing is closer.
    assert [s.text for s in library.candidates(frozenset({"lower", "shoes"}))] == ["A {gender} walks."]


def test_texts_fill_the_hashed_pick_first_and_add_a_sentence_per_left_out_group() -> None:
    library = _small_library()
    texts = list(library.texts(_ctx("upper", "hair", "lower"), 0))
    assert texts == [
        "A man in an orange coat with short black hair walks. He has blue jeans.",
        "The man has short black hair, an orange coat. He has blue jeans.",
    ]
    assert list(library.texts(_ctx("upper", "hair", "lower"), 1)) == texts[::-1]
    assert list(library.texts(_ctx("shoes", "lower", gender="unknown"), 5)) == [
        "A person walks. They have blue jeans. They have white sneakers."
    ]  # addenda in group order


def test_belongings_nothing_is_never_filled_in_and_rarely_said() -> None:
    library = parse_library(
        {
            "sentences": {"plain": ["A {gender} walks."], "b": ["A {gender} with {a belongings}."]},
            "addenda": ADDENDA,
            "nothing": ["{they} {v:have} {belongings} in {their} hands."],
        },
        "small.yaml",
        SCHEMA,
    )
    ctx = FillContext(person_for("woman"), {"belongings": SCHEMA.value("belongings", "nothing")})
    texts = [next(library.texts(ctx, digest)) for digest in range(1200)]
    assert set(texts) == {"A woman walks.", "A woman walks. She has nothing in her hands."}
    assert 0.03 <= texts.count("A woman walks. She has nothing in her hands.") / len(texts) <= 0.14
    assert set(library.texts(_ctx("belongings"), 0)) == {
        "A man with a black backpack.",
        "A man walks. He has a black backpack.",
    }
    bundled = load_library(schema=SCHEMA)
    assert bundled.nothing and not any("{belongings}" in s.text and "nothing" in s.text for s in bundled.sentences)


def test_sentences_option_replaces_or_adds(tmp_path: Path) -> None:
    assert parse_sentences_option("mined.yaml") == SentencesOption("mined.yaml", add=False)
    assert parse_sentences_option("+mined.yaml") == SentencesOption("mined.yaml", add=True)
    assert parse_sentences_option("./+odd.yaml").path == "./+odd.yaml"
    assert SentencesOption("x").mode == "replace" and SentencesOption("x", True).mode == "add"
    for bad in ("", "+", "+ "):
        with pytest.raises(ValueError, match="expected PATH .* or \\+PATH"):
            parse_sentences_option(bad)
    path = tmp_path / "mined.yaml"
    addenda = "\n".join(f'  {g}: ["{{they}} {{v:show}} {{a {g}}}."]' for g in GROUP_SLOTS)
    path.write_text(
        f'sentences:\n  none: ["A {{gender}} walks.", "A {{gender}} is walking down the street."]\n'
        f"addenda:\n{addenda}\n"
    )
    bundled = load_library(schema=SCHEMA)
    assert library_for(None, SCHEMA).sentences == bundled.sentences
    replaced = library_for(SentencesOption(str(path)), SCHEMA)
    assert [s.text for s in replaced.sentences] == ["A {gender} walks.", "A {gender} is walking down the street."]
    assert replaced.nothing == ()
    added = library_for(SentencesOption(str(path), add=True), SCHEMA)
    # Beside the bundled sentences, each text once; addenda and nothing sentences joined the same way.
    assert [s.text for s in added.sentences] == [s.text for s in bundled.sentences] + ["A {gender} walks."]
    assert added.addenda["hair"] == (*bundled.addenda["hair"], "{they} {v:show} {a hair}.")
    assert added.nothing == bundled.nothing
    assert library_for(SentencesOption(str(path)), SCHEMA, text=path.read_text()).sentences == replaced.sentences
    assert merge_libraries(replaced, replaced).sentences == replaced.sentences


def test_bundled_texts_are_distinct_tidy_sentences() -> None:
    library = load_library(schema=SCHEMA)
    texts = list(library.texts(_ctx(*GROUP_SLOTS), 12345))
    assert len(texts) == len(set(texts)) == len(library.candidates(frozenset(GROUP_SLOTS)))
    assert all(t[0].isupper() and t.endswith(".") and "{" not in t for t in texts)


@pytest.mark.parametrize(
    "sentence, problem",
    [
        ('"A {gender} in a red {upper}."', "the attribute word 'red'"),
        ('"A {gender} with {a hat}."', "unknown slot {a hat}"),
        ('"A person wears {a upper}."', "exactly once"),
        ('"A {gender} and a {gender} walk."', "exactly once"),
        ('"A {gender} in {a upper} over {upper}."', "a group slot appears twice"),
        ('"A {gender} {v:walk}."', "verbs agree with a pronoun"),
        ('"A {gender} walks"', "ends with a period"),
        ('"A {gender} carries a bag."', "the attribute word 'bag'"),
        ('"A {gender} walks."', "repeats sentences.ok[0]"),
    ],
)
def test_malformed_library_gives_one_line_error_naming_file_and_key(
    tmp_path: Path, sentence: str, problem: str
) -> None:
    path = tmp_path / "sentences.yaml"
    addenda = "\n".join(f'  {g}: ["{{they}} {{v:have}} {{a {g}}}."]' for g in GROUP_SLOTS)
    path.write_text(f'sentences:\n  ok: ["A {{gender}} walks."]\n  broken: [{sentence}]\naddenda:\n{addenda}\n')
    with pytest.raises(TemplateError) as err:
        load_library(path, SCHEMA)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: sentences.broken[0]: ") and problem in message, message


@pytest.mark.parametrize(
    "data, key, problem",
    [
        ([], "<top level>", "expected a mapping"),
        ({"sentences": {}}, "sentences", "expected a mapping of section name"),
        ({"sentences": {"s": []}}, "sentences.s", "non-empty list"),
        (
            {"sentences": {"s": ["A {gender} in {a upper}."]}, "addenda": ADDENDA},
            "sentences",
            "at least one sentence must name no group",
        ),
        (
            {"sentences": {"s": ["A {gender} walks."]}, "addenda": {"hair": ADDENDA["hair"]}},
            "addenda",
            "expected one list per group",
        ),
        (
            {"sentences": {"s": ["A {gender} walks."]}, "addenda": {**ADDENDA, "hair": ["{they} {v:have} {a upper}."]}},
            "addenda.hair[0]",
            "names its own group once and nothing else",
        ),
        (
            {"sentences": {"s": ["A {gender} walks."]}, "addenda": {**ADDENDA, "shoes": []}},
            "addenda.shoes",
            "non-empty list",
        ),
        ({"sentences": {"s": ["A {gender} walks."]}, "addenda": ADDENDA, "nothing": []}, "nothing", "non-empty list"),
        (
            {"sentences": {"s": ["A {gender} walks."]}, "addenda": ADDENDA, "nothing": ["{they} {v:carry} {a upper}."]},
            "nothing[0]",
            "names no group but {belongings}",
        ),
        ({"sentences": {"s": ["A {gender} walks."]}, "addenda": ADDENDA, "extra": []}, "extra", "unexpected key"),
        (
            {"sentences": {"s": ["A {gender} walks."]}, "addenda": {**ADDENDA, "hair": ["On {v:be} {a hair}."]}},
            "addenda.hair[0]",
            "verbs agree with a pronoun",
        ),
    ],
)
def test_malformed_library_structure_names_the_key(data, key: str, problem: str) -> None:
    with pytest.raises(TemplateError) as err:
        parse_library(data, "lib.yaml", SCHEMA)
    assert str(err.value).startswith(f"lib.yaml: {key}: ") and problem in str(err.value), str(err.value)


def test_unreadable_library_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=rf"^{tmp_path / 'none.yaml'}: cannot read sentence library: "):
        load_library(tmp_path / "none.yaml", SCHEMA)
