"""Which predicted values the caption-model stage trusts: known, in the schema, at or above the threshold
(a given value, with no confidence, always)."""

from __future__ import annotations

from spac.attributes import UNKNOWN, load_schema
from spac.generation.grounding import GivenAttributes, trusted_values

SCHEMA = load_schema()


def test_trusted_values_are_the_known_ones_at_or_above_the_threshold_in_group_order():
    prediction = GivenAttributes(
        {
            "belongings": "black backpack",
            "upper": "red t-shirt",
            "gender": "man",
            "hair": UNKNOWN,
            "lower": "blue jeans",
        },
        {"belongings": 0.5, "upper": 0.49, "gender": 0.9, "hair": 0.99, "lower": None},
    )
    trusted = trusted_values(prediction, 0.5, SCHEMA)
    assert list(trusted) == ["gender", "lower", "belongings"]
    assert trusted["belongings"] == SCHEMA.value("belongings", "black backpack")
    assert list(trusted_values(prediction, 0.0, SCHEMA)) == ["gender", "upper", "lower", "belongings"]


def test_a_record_gives_its_values_and_confidences_and_a_phrase_outside_the_schema_is_not_trusted():
    entries = {
        "gender": {"value": "woman", "confidence": 0.75},
        "upper": {"value": "red t-shirt", "confidence": None},
        "lower": {"value": "sparkly leggings", "confidence": None, "in_schema": False},
        "shoes": {"value": UNKNOWN, "confidence": 0.2},
    }
    given = GivenAttributes.from_record(entries)
    assert given.attributes == {
        "gender": "woman",
        "upper": "red t-shirt",
        "lower": "sparkly leggings",
        "shoes": UNKNOWN,
    }
    assert given.confidences == {"gender": 0.75, "upper": None, "lower": None, "shoes": 0.2}
    assert list(trusted_values(given, 0.8, SCHEMA)) == ["upper"]
