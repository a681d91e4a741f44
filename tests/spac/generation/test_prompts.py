"""Prompts as data: the bundled instructions file, its sha256, the deterministic choice of a style per text,
the grounding (trusted values only), the example sentences from the captioner's library (bundled or another),
and one-line errors naming the file and key for a malformed instructions file."""

from __future__ import annotations

import copy
import hashlib
from importlib import resources

import pytest
import yaml

from spac.attributes import UNKNOWN, load_schema
from spac.captioning.library import load_library, parse_library
from spac.captioning.slots import GROUP_SLOTS, TemplateError
from spac.captioning.styles import available_styles
from spac.generation.grounding import GivenAttributes, trusted_values
from spac.generation.prompts import (
    ATTRIBUTES_FILE,
    EXAMPLE,
    INSTRUCTIONS_FILE,
    PromptBook,
    load_attribute_prompts,
    load_instructions,
    parse_attribute_prompts,
    parse_instructions,
    prompt_files_sha256,
)

SCHEMA = load_schema()
INSTRUCTIONS = load_instructions(SCHEMA)
LIBRARY = load_library(None, SCHEMA)
BOOK = PromptBook(INSTRUCTIONS, LIBRARY)
ATTRIBUTES = {
    "gender": "woman",
    "hair": "long brown hair",
    "upper": "white blouse",
    "lower": "black skirt",
    "shoes": "white sneakers",
    "belongings": "black handbag",
}
TRUSTED = trusted_values(GivenAttributes(ATTRIBUTES, {}), 0.5, SCHEMA)


def _raw() -> dict:
    text = resources.files("templates").joinpath("prompts", "instructions.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def test_the_bundled_instructions_write_each_of_our_style_modules_as_an_instruction():
    assert INSTRUCTIONS.version >= 1
    assert set(INSTRUCTIONS.styles) == set(available_styles())
    assert "describe only what is visible" in INSTRUCTIONS.system.lower()
    assert "one or two sentences" in INSTRUCTIONS.rules
    assert INSTRUCTIONS.pool == (*INSTRUCTIONS.styles, *[EXAMPLE] * INSTRUCTIONS.example_entries)
    assert INSTRUCTIONS.example_entries >= 1


def test_prompt_files_sha256_is_the_sha256_of_each_file_named():
    folder = resources.files("templates").joinpath("prompts")
    expected = {
        f"templates/prompts/{name}": hashlib.sha256(folder.joinpath(name).read_bytes()).hexdigest()
        for name in (ATTRIBUTES_FILE, INSTRUCTIONS_FILE)
    }
    assert prompt_files_sha256(INSTRUCTIONS_FILE, ATTRIBUTES_FILE) == expected
    assert list(prompt_files_sha256(INSTRUCTIONS_FILE)) == ["templates/prompts/instructions.yaml"]


def test_the_bundled_attribute_questions_ask_every_group():
    prompts = load_attribute_prompts(SCHEMA)
    assert prompts.version >= 1 and prompts.source == "templates/prompts/attributes.yaml"
    assert list(prompts.questions) == list(SCHEMA.group_names) and all(
        q.endswith("?") or q.endswith(".") for q in prompts.questions.values()
    )
    assert "{groups}" in prompts.instruction and "JSON" in prompts.instruction


def _raw_attributes() -> dict:
    return yaml.safe_load(resources.files("templates").joinpath("prompts", ATTRIBUTES_FILE).read_text("utf-8"))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("instruction"), "instruction: expected a non-empty string"),
        (lambda d: d.update(instruction="Answer in JSON."), "instruction: expected {groups}, found none"),
        (lambda d: d["questions"].pop("hair"), "questions: expected one entry per group"),
        (lambda d: d["questions"].update(hair="What {colour} is it?"), "questions: hair: expected no placeholder"),
        (lambda d: d["questions"].update(hair=7), "questions: hair: expected a non-empty string"),
        (lambda d: d.update(questions=["Is it a man?"]), "questions: expected a mapping of name to text"),
        (lambda d: d.update(version=0), "version: expected a positive integer"),
        (lambda d: d.update(styles={}), "styles: unexpected key"),
    ],
)
def test_a_malformed_attribute_questions_file_is_one_error_naming_the_file_and_key(change, message):
    data = copy.deepcopy(_raw_attributes())
    change(data)
    with pytest.raises(TemplateError) as caught:
        parse_attribute_prompts(data, "attributes.yaml", SCHEMA)
    assert str(caught.value).startswith("attributes.yaml: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_turns_of_one_image_take_every_pool_entry_once_in_an_order_drawn_per_key_and_seed():
    styles = [BOOK.prompt("k1", b"jpeg", TRUSTED, 0, turn).request.style_id for turn in range(BOOK.pool_size)]
    entries = [EXAMPLE if s.startswith(EXAMPLE + ":") else s for s in styles]
    assert sorted(entries) == sorted(INSTRUCTIONS.pool)
    again = [BOOK.prompt("k1", b"jpeg", TRUSTED, 0, turn).request for turn in range(BOOK.pool_size)]
    assert [r.style_id for r in again] == styles
    firsts = {BOOK.prompt(f"key{i}", b"", TRUSTED, 0, 0).request.style_id.split(":")[0] for i in range(40)}
    assert firsts == set(INSTRUCTIONS.pool)  # the first style depends on the key
    by_seed = {BOOK.prompt("k1", b"", TRUSTED, seed, 0).request.style_id.split(":")[0] for seed in range(40)}
    assert len(by_seed) > 1


def test_a_request_carries_the_image_the_system_prompt_and_grounding_style_and_rules_on_their_own_lines():
    request = BOOK.prompt("k1", b"\xff\xd8jpeg", TRUSTED, 0, 0).request
    assert (request.key, request.image_jpeg, request.system) == ("k1", b"\xff\xd8jpeg", INSTRUCTIONS.system)
    grounding, style, rules = request.instruction.split("\n")
    assert grounding == INSTRUCTIONS.grounding.format(
        attributes=(
            "gender: woman; hair: long brown hair; upper body: white blouse; lower body: black skirt; "
            "shoes: white sneakers; carrying: black handbag"
        )
    )
    assert rules == INSTRUCTIONS.rules
    assert style == INSTRUCTIONS.styles.get(request.style_id, style)


def test_the_grounding_leaves_out_unknown_groups_and_values_below_the_confidence_threshold():
    prediction = GivenAttributes(
        {**ATTRIBUTES, "shoes": UNKNOWN, "lower": "black skirt"},
        {"gender": 0.9, "hair": 0.2, "upper": 0.5, "lower": 0.49, "belongings": None},
    )
    trusted = trusted_values(prediction, 0.5, SCHEMA)
    assert list(trusted) == ["gender", "upper", "belongings"]  # a None confidence is a given value
    grounding = BOOK.prompt("k1", b"", trusted, 0, 0).request.instruction.split("\n")[0]
    assert "white blouse" in grounding and "black handbag" in grounding
    assert not any(word in grounding for word in ("hair", "skirt", "sneakers", UNKNOWN))


def test_no_trusted_value_means_no_grounding_line():
    request = BOOK.prompt("k1", b"", {}, 0, 0).request
    lines = request.instruction.split("\n")
    assert len(lines) == 2 and lines[1] == INSTRUCTIONS.rules
    assert not lines[0].startswith(INSTRUCTIONS.grounding.split("{")[0])


def _example_turn(book: PromptBook, key: str, trusted) -> int:
    return next(t for t in range(book.pool_size) if book.prompt(key, b"", trusted, 0, t).example is not None)


def test_an_example_instruction_quotes_a_library_sentence_filled_with_the_trusted_values():
    turn = _example_turn(BOOK, "k7", TRUSTED)
    prompt = BOOK.prompt("k7", b"", TRUSTED, 0, turn)
    index = int(prompt.request.style_id.split(":")[1])
    assert prompt.request.style_id == f"example:{index}"
    assert f'"{prompt.example}"' in prompt.request.instruction
    assert "{" not in prompt.example and "woman" in prompt.example
    template = LIBRARY.sentences[index].text
    for group in LIBRARY.sentences[index].groups:
        assert TRUSTED[group].phrase in prompt.example, (template, prompt.example)


def test_an_example_names_only_trusted_groups():
    trusted = {g: v for g, v in TRUSTED.items() if g in ("gender", "upper")}
    for key in ("a", "b", "c", "d", "e"):
        prompt = BOOK.prompt(key, b"", trusted, 0, _example_turn(BOOK, key, trusted))
        assert LIBRARY.sentences[int(prompt.request.style_id.split(":")[1])].groups <= {"upper"}


def test_examples_come_from_the_library_the_book_is_given():
    addenda = {g: [f"{{they}} {{v:have}} {{a {g}}}."] for g in GROUP_SLOTS}
    mined = parse_library(
        {"sentences": {"s": ["Someone saw a {gender} in {a upper} today.", "A {gender} is here."]}, "addenda": addenda},
        "mined.yaml",
        SCHEMA,
    )
    book = PromptBook(INSTRUCTIONS, mined)
    prompt = book.prompt("k7", b"", TRUSTED, 0, _example_turn(book, "k7", TRUSTED))
    assert prompt.example in {"Someone saw a woman in a white blouse today.", "A woman is here."}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("system"), "system: expected a non-empty string"),
        (lambda d: d.update(grounding="Attributes: {values}."), "grounding: expected {attributes}, found values"),
        (lambda d: d.update(example="Like this."), "example: expected {example}, found none"),
        (lambda d: d.update(rules="No {markup}."), "rules: expected no placeholder, found markup"),
        (lambda d: d.update(rules="An { unclosed brace"), "rules: "),
        (lambda d: d.update(extra=1), "extra: unexpected key"),
        (lambda d: d.update(version="1"), "version: expected a positive integer"),
        (lambda d: d.update(example_entries=-1), "example_entries: expected a non-negative integer"),
        (lambda d: d["group_labels"].pop("shoes"), "group_labels: expected one entry per group"),
        (lambda d: d["styles"].update(example="Write it."), "styles: a style id is neither 'example'"),
        (lambda d: d["styles"].update(dense=""), "styles: dense: expected a non-empty string"),
    ],
)
def test_a_malformed_instructions_file_is_one_error_naming_the_file_and_key(change, message):
    data = copy.deepcopy(_raw())
    change(data)
    with pytest.raises(TemplateError) as caught:
        parse_instructions(data, "prompts.yaml", SCHEMA)
    assert str(caught.value).startswith("prompts.yaml: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_file_that_is_not_a_mapping_is_refused():
    with pytest.raises(TemplateError, match="prompts.yaml: <top level>"):
        parse_instructions(["system"], "prompts.yaml", SCHEMA)


def test_only_the_chosen_styles_instructions_are_asked_with_the_example_sentences():
    chosen = INSTRUCTIONS.only(["narrative", "dense"])
    assert tuple(chosen.styles) == ("dense", "narrative")  # the file's order
    assert chosen.pool == ("dense", "narrative", *[EXAMPLE] * INSTRUCTIONS.example_entries)
    book = PromptBook(chosen, LIBRARY)
    asked = [book.prompt(f"k{n}", b"", TRUSTED, 0, turn).request for n in range(20) for turn in range(book.pool_size)]
    assert {r.style_id.split(":")[0] for r in asked} == {"dense", "narrative", EXAMPLE}
    left_out = [INSTRUCTIONS.styles[name] for name in INSTRUCTIONS.styles if name not in ("dense", "narrative")]
    assert not any(text in r.instruction for r in asked for text in left_out)
    assert INSTRUCTIONS.only(list(INSTRUCTIONS.styles)) == INSTRUCTIONS
    with pytest.raises(TemplateError, match="styles: no instruction for style 'haiku'"):
        INSTRUCTIONS.only(["dense", "haiku"])
