"""Style modules: the bundled styles' shapes, rendering phrasings from any subset of known groups, the
rare "nothing" sentence, no table-like output, and one-line errors naming the file and key for a
malformed style file."""

from __future__ import annotations

import re
import shutil
from importlib import resources
from itertools import combinations
from pathlib import Path

import pytest

from spac.attributes import load_schema
from spac.captioning.grammar import person_for
from spac.captioning.slots import GROUP_SLOTS, FillContext, TemplateError
from spac.captioning.styles import Part, available_styles, load_style, parse_style

SCHEMA = load_schema()
VALUES = {
    "hair": "short black hair",
    "upper": "red t-shirt",
    "lower": "blue jeans",
    "shoes": "white sneakers",
    "belongings": "black backpack",
}
PROSE = {
    "name": "test",
    "description": "a test style",
    "empty": ["The {gender} walks by."],
    "phrasings": [
        {
            "noun": "the {gender}",
            "sentences": [
                {
                    "modifiers": [{"lead": "with", "groups": ["hair"]}],
                    "predicates": [
                        {"lead": "{v:wear}", "groups": ["upper", "lower"]},
                        {"lead": "{v:carry}", "groups": ["belongings"]},
                    ],
                    "fallback": "{v:walk} by",
                },
                {"predicates": [{"lead": "{v:walk} in", "groups": ["shoes"], "pair": True}]},
            ],
        }
    ],
}
FRAGMENT = {
    "name": "test",
    "description": "a test fragment",
    "empty": ["A {gender} on the street."],
    "nothing": ["{they} {v:be} not carrying anything.", "{they} {v:have} {belongings} in {their} hands."],
    "phrasings": [
        {
            "noun": "a {gender}",
            "clause": True,
            "sentences": [
                {
                    "modifiers": [
                        {"lead": "dressed in", "groups": ["upper", "lower", "shoes"]},
                        {"lead": "with", "groups": ["hair", "belongings"], "comma": True},
                    ]
                }
            ],
        }
    ],
}
# What a table looks like: "Man - red t-shirt + blue jeans; white sneakers | short black hair".
TABLE_LIKE = re.compile(r" - | \+ |;| \| |: ")


def _ctx(*groups: str, gender: str = "man", **overrides: str) -> FillContext:
    values = {**VALUES, **overrides}
    return FillContext(person_for(gender), {g: SCHEMA.value(g, values[g]) for g in groups})


def _first(style_data: dict, ctx: FillContext) -> str:
    return next(parse_style(style_data, "test.yaml", SCHEMA, "test").texts(ctx, 0))


def test_prose_names_every_known_group_once_and_agrees_with_the_subject() -> None:
    assert _first(PROSE, _ctx(*GROUP_SLOTS)) == (
        "The man with short black hair wears a red t-shirt and blue jeans "
        "and carries a black backpack. He walks in a pair of white sneakers."
    )
    assert _first(PROSE, _ctx(*GROUP_SLOTS, gender="unknown")).endswith("They walk in a pair of white sneakers.")


def test_prose_leaves_out_unknown_parts_and_falls_back() -> None:
    assert _first(PROSE, _ctx("hair")) == "The man with short black hair walks by."
    # A left-out first sentence hands the noun to the next one.
    assert _first(PROSE, _ctx("shoes", gender="woman")) == "The woman walks in a pair of white sneakers."
    assert _first(PROSE, _ctx()) == "The man walks by."  # nothing known: an `empty` sentence


def test_a_predicate_ending_in_a_list_gets_a_comma_before_and() -> None:
    data = {
        **PROSE,
        "phrasings": [
            {
                "noun": "the {gender}",
                "sentences": [
                    {
                        "predicates": [
                            {"lead": "{v:wear}", "groups": ["upper", "lower", "shoes"]},
                            {"lead": "{v:carry}", "groups": ["belongings"]},
                        ]
                    },
                    {"predicates": [{"lead": "{v:have}", "groups": ["hair"]}]},
                ],
            }
        ],
    }
    assert _first(data, _ctx(*GROUP_SLOTS)).startswith(
        "The man wears a red t-shirt, blue jeans and white sneakers, and carries a black backpack."
    )


def test_part_renders_lead_objects_and_after_or_nothing() -> None:
    part = Part("in", ("upper", "lower"), after="today")
    assert part.render(_ctx("upper", "lower"), False) == "in a red t-shirt and blue jeans today"
    assert part.render(_ctx("lower"), False) == "in blue jeans today"
    assert part.render(_ctx("hair"), False) is None


def test_a_fragment_enumerates_and_drops_the_comma_after_a_bare_subject() -> None:
    assert _first(FRAGMENT, _ctx(*GROUP_SLOTS)) == (
        "A man dressed in a red t-shirt, blue jeans and white sneakers, with short black hair and a black backpack."
    )
    assert _first(FRAGMENT, _ctx("hair", "belongings", gender="woman")) == (
        "A woman with short black hair and a black backpack."
    )
    assert _first(FRAGMENT, _ctx(gender="woman")) == "A woman on the street."
    # With a main verb to follow, the comma stays: "A man, carrying a black backpack, walks by."
    data = {
        **PROSE,
        "phrasings": [
            {
                "noun": "a {gender}",
                "sentences": [
                    {
                        "modifiers": [{"lead": "carrying", "groups": ["belongings"], "comma": True}],
                        "predicates": [{"lead": "{v:wear}", "groups": ["hair", "upper", "lower", "shoes"]}],
                        "fallback": "{v:walk} by",
                    }
                ],
            }
        ],
    }
    assert _first(data, _ctx("belongings")) == "A man, carrying a black backpack, walks by."


def test_nothing_is_left_unsaid_except_in_a_rare_sentence_of_its_own() -> None:
    style = parse_style(FRAGMENT, "test.yaml", SCHEMA, "test")
    ctx = _ctx("upper", "belongings", belongings="nothing")
    texts = [next(style.texts(ctx, digest)) for digest in range(600)]
    said = [t for t in texts if t != "A man dressed in a red t-shirt."]
    assert all(re.search(r"\bnothing\b|anything", t) for t in said)
    assert 0.02 <= len(said) / len(texts) <= 0.15, len(said)
    assert set(said) <= {
        "A man dressed in a red t-shirt. He is not carrying anything.",
        "A man dressed in a red t-shirt. He has nothing in his hands.",
    }
    # Without `nothing` sentences a style never says it; other belongings are always named.
    quiet = parse_style({k: v for k, v in FRAGMENT.items() if k != "nothing"}, "test.yaml", SCHEMA, "test")
    assert {next(quiet.texts(ctx, d)) for d in range(600)} == {"A man dressed in a red t-shirt."}
    assert all("black backpack" in next(style.texts(_ctx("belongings"), d)) for d in range(50))


def test_no_bundled_style_writes_a_table() -> None:
    for name in available_styles():
        style = load_style(name, SCHEMA)
        for size in range(len(GROUP_SLOTS) + 1):
            for groups in combinations(GROUP_SLOTS, size):
                for gender in ("man", "unknown"):
                    for text in style.texts(_ctx(*groups, gender=gender), size):
                        assert not TABLE_LIKE.search(text), (name, text)
                        assert text[0].isupper() and text.endswith("."), (name, text)


def test_texts_start_at_the_hashed_phrasing_and_give_each_once() -> None:
    data = {**FRAGMENT, "phrasings": [FRAGMENT["phrasings"][0], {**FRAGMENT["phrasings"][0], "noun": "one {gender}"}]}
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


@pytest.mark.parametrize(
    "old, new, key",
    [
        ("groups: [hair]}", "groups: [hat]}", "phrasings[0].sentences[0].modifiers[0].groups"),
        ('noun: "there is a {gender}"', 'noun: "there is a red {gender}"', "phrasings[0].noun"),
        (
            '{lead: "with", groups: [hair]}',
            '{lead: "with", groups: [hair], colour: true}',
            "phrasings[0].sentences[0].modifiers[0].colour",
        ),
        ("name: dense", "name: dense\nname2: x", "name2"),
        ("name: dense", "name: thick", "name"),
        ('{lead: "with", groups: [hair]}', '{lead: "with", groups: [hair, hair]}', "phrasings[0]"),
    ],
)
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


@pytest.mark.parametrize(
    "change, key, problem",
    [
        ({"description": ""}, "description", "one-line description"),
        ({"empty": []}, "empty", "non-empty list"),
        (
            {"phrasings": [{"noun": "the {gender}", "sentences": [{"modifiers": [{"groups": list(GROUP_SLOTS)}]}]}]},
            "phrasings[0].sentences[0].fallback",
            "needs a fallback predicate",
        ),
        (
            {"phrasings": [{"noun": "the {gender}", "sentences": [{}]}]},
            "phrasings[0].sentences[0]",
            "needs modifiers or predicates",
        ),
        (
            {
                "phrasings": [
                    {
                        "noun": "the {gender}",
                        "sentences": [{"predicates": [{"lead": "in {a upper}", "groups": list(GROUP_SLOTS)}]}],
                    }
                ]
            },
            "phrasings[0].sentences[0].predicates[0].lead",
            "group slots belong in 'groups'",
        ),
    ],
)
def test_malformed_style_data_names_the_key(change: dict, key: str, problem: str) -> None:
    with pytest.raises(TemplateError) as err:
        parse_style({**PROSE, **change}, "test.yaml", SCHEMA, "test")
    assert str(err.value).startswith(f"test.yaml: {key}: ") and problem in str(err.value), str(err.value)


def test_a_table_of_bare_phrases_is_no_longer_a_style() -> None:
    data = {**FRAGMENT, "phrasings": [{"list": {"head": "{gender}", "sections": [{"groups": list(GROUP_SLOTS)}]}}]}
    with pytest.raises(TemplateError, match=r"^test\.yaml: phrasings\[0\]\.list: unexpected key"):
        parse_style(data, "test.yaml", SCHEMA, "test")


@pytest.mark.parametrize(
    "sentence, problem",
    [
        ("{they} {v:carry} {a upper}.", "names no group but {belongings}"),
        ("The {gender} carries {belongings}.", "names no group but {belongings}"),
        ("{they} {v:be} empty-handed.", "the attribute word 'empty-handed'"),
        ("{they} {v:carry} {belongings}", "ends with a period"),
    ],
)
def test_malformed_nothing_sentences_name_the_key(sentence: str, problem: str) -> None:
    with pytest.raises(TemplateError) as err:
        parse_style({**FRAGMENT, "nothing": [sentence]}, "test.yaml", SCHEMA, "test")
    assert str(err.value).startswith("test.yaml: nothing[0]: ") and problem in str(err.value), str(err.value)


def test_style_with_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    folder = _copy_styles(tmp_path)
    (folder / "dense.yaml").write_text("name: dense\nphrasings: [\n")
    with pytest.raises(TemplateError, match=rf"^{re.escape(str(folder / 'dense.yaml'))}: line \d+: invalid YAML"):
        load_style("dense", SCHEMA, folder)


def test_missing_style_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"none\.yaml: cannot read style module: "):
        load_style("none", SCHEMA, tmp_path)
