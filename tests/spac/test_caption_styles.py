"""Style modules: the bundled styles' shapes, rendering prose and list phrasings from any subset of
known groups, and one-line errors naming the file and key for a malformed style file."""
from __future__ import annotations

import re
import shutil
from importlib import resources
from itertools import combinations
from pathlib import Path

import pytest

from spac.attributes import load_schema
from spac.caption_slots import GROUP_SLOTS, FillContext, TemplateError
from spac.caption_styles import Part, available_styles, load_style, parse_style
from spac.grammar import person_for

SCHEMA = load_schema()
VALUES = {"hair": "short black hair", "upper": "red t-shirt", "lower": "blue jeans", "shoes": "white sneakers",
          "belongings": "black backpack"}
PROSE = {
    "name": "test", "description": "a test style", "empty": ["The {gender} walks by."],
    "phrasings": [{"noun": "the {gender}", "sentences": [
        {"modifiers": [{"lead": "with", "groups": ["hair"]}],
         "predicates": [{"lead": "{v:wear}", "groups": ["upper", "lower"]}, {"lead": "{v:carry}", "groups": ["belongings"]}],
         "fallback": "{v:walk} by"},
        {"predicates": [{"lead": "{v:walk} in", "groups": ["shoes"], "pair": True}]}]}],
}
LIST = {
    "name": "test", "description": "a test list", "empty": ["{gender}; no details visible."],
    "phrasings": [{"list": {"head": "{gender}", "after_head": ": ", "separator": " | ", "sections": [
        {"label": "wearing ", "groups": ["upper", "lower", "shoes"], "joiner": " + "},
        {"groups": ["hair", "belongings"], "nothing": "carrying {belongings}"}]}}],
}


def _ctx(*groups: str, gender: str = "man", **overrides: str) -> FillContext:
    values = {**VALUES, **overrides}
    return FillContext(person_for(gender), {g: SCHEMA.value(g, values[g]) for g in groups})


def _first(style_data: dict, ctx: FillContext) -> str:
    return next(parse_style(style_data, "test.yaml", SCHEMA, "test").texts(ctx, 0))


def test_prose_names_every_known_group_once_and_agrees_with_the_subject() -> None:
    assert _first(PROSE, _ctx(*GROUP_SLOTS)) == ("The man with short black hair wears a red t-shirt and blue jeans "
                                                "and carries a black backpack. He walks in a pair of white sneakers.")
    assert _first(PROSE, _ctx(*GROUP_SLOTS, gender="unknown")).endswith("They walk in a pair of white sneakers.")


def test_prose_leaves_out_unknown_parts_and_falls_back() -> None:
    assert _first(PROSE, _ctx("hair")) == "The man with short black hair walks by."
    # A left-out first sentence hands the noun to the next one.
    assert _first(PROSE, _ctx("shoes", gender="woman")) == "The woman walks in a pair of white sneakers."
    assert _first(PROSE, _ctx()) == "The man walks by."  # nothing known: an `empty` sentence


def test_a_predicate_ending_in_a_list_gets_a_comma_before_and() -> None:
    data = {**PROSE, "phrasings": [{"noun": "the {gender}", "sentences": [{"predicates": [
        {"lead": "{v:wear}", "groups": ["upper", "lower", "shoes"]}, {"lead": "{v:carry}", "groups": ["belongings"]}]},
        {"predicates": [{"lead": "{v:have}", "groups": ["hair"]}]}]}]}
    assert _first(data, _ctx(*GROUP_SLOTS)).startswith(
        "The man wears a red t-shirt, blue jeans and white sneakers, and carries a black backpack.")


def test_part_renders_lead_objects_and_after_or_nothing() -> None:
    part = Part("in", ("upper", "lower"), after="today")
    assert part.render(_ctx("upper", "lower"), False) == "in a red t-shirt and blue jeans today"
    assert part.render(_ctx("lower"), False) == "in blue jeans today"
    assert part.render(_ctx("hair"), False) is None


def test_list_phrasing_with_labels_joiners_and_nothing() -> None:
    assert _first(LIST, _ctx(*GROUP_SLOTS)) == ("Man: wearing red t-shirt + blue jeans + white sneakers | "
                                               "short black hair, black backpack.")
    assert _first(LIST, _ctx("belongings", belongings="nothing")) == "Man: carrying nothing."
    assert _first(LIST, _ctx(gender="woman")) == "Woman; no details visible."


def test_texts_start_at_the_hashed_phrasing_and_give_each_once() -> None:
    data = {**LIST, "phrasings": [LIST["phrasings"][0], {"list": {**LIST["phrasings"][0]["list"], "head": "a {gender}"}}]}
    style = parse_style(data, "test.yaml", SCHEMA, "test")
    first, second = list(style.texts(_ctx(*GROUP_SLOTS), 0)), list(style.texts(_ctx(*GROUP_SLOTS), 1))
    assert len(first) == 2 and first == second[::-1]


def test_styles_have_distinct_shapes_and_several_phrasings() -> None:
    ctx = _ctx(*GROUP_SLOTS)
    openings = {}
    for name in available_styles():
        texts = list(load_style(name, SCHEMA).texts(ctx, 0))
        assert len(set(texts)) >= 4, f"style {name} should have several phrasings"
        openings[name] = {" ".join(t.lower().split()[:3]) for t in texts}
    for a, b in combinations(openings, 2):
        assert not openings[a] & openings[b], f"styles {a} and {b} share openings {openings[a] & openings[b]}"
    assert len(openings) >= 4


def _copy_styles(tmp_path: Path) -> Path:
    folder = tmp_path / "styles"
    shutil.copytree(Path(str(resources.files("templates").joinpath("styles"))), folder)
    return folder


def test_available_styles_are_the_yaml_stems_of_a_folder(tmp_path: Path) -> None:
    folder = _copy_styles(tmp_path)
    assert available_styles(folder) == available_styles()
    (folder / "notes.txt").write_text("")
    shutil.copy(folder / "dense.yaml", folder / "zeta.yaml")
    assert available_styles(folder) == (*available_styles(), "zeta")


@pytest.mark.parametrize("old, new, key", [
    ("groups: [hair]}", "groups: [hat]}", "phrasings[0].sentences[0].modifiers[0].groups"),
    ('noun: "there is a {gender}"', 'noun: "there is a red {gender}"', "phrasings[0].noun"),
    ('{lead: "with", groups: [hair]}', '{lead: "with", groups: [hair], colour: true}', "phrasings[0].sentences[0].modifiers[0].colour"),
    ("name: dense", "name: dense\nname2: x", "name2"),
    ("name: dense", "name: thick", "name"),
    ('{lead: "with", groups: [hair]}', '{lead: "with", groups: [hair, hair]}', "phrasings[0]"),
])
def test_malformed_style_gives_one_line_error_naming_file_and_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    folder = _copy_styles(tmp_path)
    path = folder / "dense.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(TemplateError) as err:
        load_style("dense", SCHEMA, folder)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: {key}:"), message


@pytest.mark.parametrize("change, key, problem", [
    ({"description": ""}, "description", "one-line description"),
    ({"empty": []}, "empty", "non-empty list"),
    ({"phrasings": [{"noun": "the {gender}", "sentences": [{"modifiers": [{"groups": list(GROUP_SLOTS)}]}]}]},
     "phrasings[0].sentences[0].fallback", "needs a fallback predicate"),
    ({"phrasings": [{"noun": "the {gender}", "sentences": [{}]}]}, "phrasings[0].sentences[0]",
     "needs modifiers or predicates"),
    ({"phrasings": [{"noun": "the {gender}", "sentences": [{"predicates": [
        {"lead": "in {a upper}", "groups": list(GROUP_SLOTS)}]}]}]}, "phrasings[0].sentences[0].predicates[0].lead",
     "group slots belong in 'groups'"),
])
def test_malformed_style_data_names_the_key(change: dict, key: str, problem: str) -> None:
    with pytest.raises(TemplateError) as err:
        parse_style({**PROSE, **change}, "test.yaml", SCHEMA, "test")
    assert str(err.value).startswith(f"test.yaml: {key}: ") and problem in str(err.value), str(err.value)


def test_list_literals_may_not_hold_slots_or_attribute_words() -> None:
    section = LIST["phrasings"][0]["list"]["sections"][0]
    for label in ("red ", "{gender} "):
        data = {**LIST, "phrasings": [{"list": {**LIST["phrasings"][0]["list"],
                                                "sections": [{**section, "label": label}, LIST["phrasings"][0]["list"]["sections"][1]]}}]}
        with pytest.raises(TemplateError, match="punctuation and connectives only"):
            parse_style(data, "test.yaml", SCHEMA, "test")


def test_style_with_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    folder = _copy_styles(tmp_path)
    (folder / "dense.yaml").write_text("name: dense\nphrasings: [\n")
    with pytest.raises(TemplateError, match=rf"^{re.escape(str(folder / 'dense.yaml'))}: line \d+: invalid YAML"):
        load_style("dense", SCHEMA, folder)


def test_missing_style_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"none\.yaml: cannot read style module: "):
        load_style("none", SCHEMA, tmp_path)
