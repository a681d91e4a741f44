"""Partial labels: exact (rendered) and said (captions) labels, candidates, acceptance and validation."""

import pytest

from spac.attributes import UNKNOWN, load_schema
from spac.predictor.labels import (
    MASKED,
    NO_COLOUR,
    GroupLabel,
    accepts,
    allowed,
    candidates,
    check_label,
    exact_labels,
    group_colours,
    group_label,
    said_labels,
    specific_items,
)


@pytest.fixture(scope="module")
def schema():
    return load_schema()


def test_candidates_are_unknown_and_the_specific_values_with_their_label_index(schema):
    upper = schema.group("upper")
    found = candidates(upper)
    assert found[0].phrase == UNKNOWN and found[0].index == 0 and found[0].colour == NO_COLOUR
    assert all(upper.labels[c.index] == c.phrase for c in found)
    assert {c.phrase for c in found} == {UNKNOWN} | {v.phrase for v in upper.values if v.specific}
    assert "top" not in {c.item for c in found} and "jeans" not in {c.phrase for c in candidates(schema.group("lower"))}
    assert {c.colour for c in candidates(schema.group("belongings")) if c.item == "phone"} == {NO_COLOUR}
    assert "top" not in specific_items(upper) and group_colours(upper)[0] == "black"


def test_exact_labels_pin_item_and_colour_and_keep_unknown_as_a_class(schema):
    labels = exact_labels({"gender": "man", "upper": "red t-shirt", "belongings": "phone"}, schema)
    assert labels["upper"] == GroupLabel(frozenset({"t-shirt"}), frozenset({"red"}))
    assert labels["gender"] == GroupLabel(frozenset({"man"}), frozenset({NO_COLOUR}))
    assert labels["belongings"] == GroupLabel(frozenset({"phone"}), frozenset({NO_COLOUR}))
    assert labels["hair"] == GroupLabel(frozenset({UNKNOWN}), frozenset({NO_COLOUR}))
    assert [c.phrase for c in allowed(schema.group("upper"), labels["upper"])] == ["red t-shirt"]


def test_said_labels_mask_unknown_leave_bare_colours_and_generic_items_open(schema):
    labels = said_labels(
        {"gender": "woman", "hair": "black hair", "lower": "jeans", "belongings": "bag"},
        schema,
        {"bag": ["backpack", "handbag", "shoulder bag"]},
    )
    assert labels["upper"] is MASKED and labels["upper"].masked
    assert labels["lower"] == group_label(["jeans"], None)  # item known, colour not said
    assert labels["hair"] == group_label(specific_items(schema.group("hair")), ["black"])
    assert labels["belongings"] == group_label(["backpack", "handbag", "shoulder bag"], None)
    # without a meaning given, a generic item stands for every specific item with the same colouring
    default = said_labels({"belongings": "brown bag"}, schema)["belongings"]
    assert default.items == {"backpack", "handbag", "shoulder bag", "suitcase", "umbrella"}
    assert default.colours == {"brown"}


def test_accepts_only_candidates_the_label_allows(schema):
    upper = schema.group("upper")
    short = group_label(["t-shirt", "polo shirt"], None)
    assert accepts(upper, "red t-shirt", short) and accepts(upper, "navy polo shirt", short)
    assert not accepts(upper, "red shirt", short)
    assert not accepts(upper, "t-shirt", short)  # a bare value is never a right prediction
    assert not accepts(upper, UNKNOWN, short) and accepts(upper, UNKNOWN, MASKED)
    assert accepts(upper, UNKNOWN, group_label([UNKNOWN], [NO_COLOUR]))


def test_check_label_refuses_foreign_names_and_labels_no_value_meets(schema):
    upper = schema.group("upper")
    assert check_label(upper, group_label(["t-shirt"], ["red"])) == group_label(["t-shirt"], ["red"])
    with pytest.raises(ValueError, match="row 3: 'jeans' is not a specific item of group 'upper'"):
        check_label(upper, group_label(["jeans"]), "row 3")
    with pytest.raises(ValueError, match="'blond' is not a specific colour"):
        check_label(upper, group_label(None, ["blond"]))
    with pytest.raises(ValueError, match="no value of group 'belongings'"):
        check_label(schema.group("belongings"), group_label(["phone"], ["red"]))
    check_label(upper, MASKED)
