"""spac.sources.released_corpus: released SYNTH-PEDES entries checked one at a time; phrases outside the schema
kept verbatim and named, never an error."""

from __future__ import annotations

import pytest

from spac.attributes import load_schema
from spac.sources.released_corpus import ReleasedAttributes, check_released_entry, read_released_attributes

ENTRY = {
    "id": 7,
    "file_path": "Part1/7/1.jpg",
    "attributes": ["man,short black hair,red t-shirt,blue jeans,white sneakers,black backpack"],
    "captions": ["A man in a red t-shirt.", "He wears blue jeans."],
    "prompt_caption": ["The man walks."],
}


def test_a_released_entry_reads_whole():
    entry = check_released_entry(ENTRY)
    assert (entry.id, entry.file_path) == (7, "Part1/7/1.jpg")
    assert entry.captions == ("A man in a red t-shirt.", "He wears blue jeans.")
    assert entry.prompt_caption == ("The man walks.",)
    assert entry.attributes.values["upper"] == "red t-shirt" and entry.attributes.out_of_schema == ()


def test_phrases_outside_the_schema_are_kept_verbatim_and_named():
    released = read_released_attributes("man,black hair,black cape,pink shorts, black shoes ,unknown")
    assert released == ReleasedAttributes(
        {
            "gender": "man",
            "hair": "black hair",
            "upper": "black cape",
            "lower": "pink shorts",
            "shoes": "black shoes",
            "belongings": "unknown",
        },
        ("upper",),
    )
    with pytest.raises(ValueError):  # the strict reading refuses it
        load_schema().from_released("man,black hair,black cape,pink shorts,black shoes,unknown")


def test_case_is_kept_too():
    assert read_released_attributes("Man,black hair,unknown,unknown,unknown,unknown").out_of_schema == ("gender",)


@pytest.mark.parametrize(
    "text, message",
    [
        ("man,black hair,red t-shirt,blue jeans,white sneakers", "expected 6 comma-separated attributes, got 5"),
        ("man,black hair,red t-shirt,blue jeans,white sneakers,a,b", "got 7"),
        ("man,,red t-shirt,blue jeans,white sneakers,unknown", "attribute 'hair' is empty"),
    ],
)
def test_an_attribute_string_that_is_not_six_phrases_is_malformed(text, message):
    with pytest.raises(ValueError, match=message):
        read_released_attributes(text)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"id": "7"}, "'id' must be an integer"),
        ({"id": True}, "'id' must be an integer"),
        ({"file_path": ""}, "'file_path' must be a non-empty string"),
        ({"attributes": "man,..."}, "'attributes' must be a list of one string"),
        ({"attributes": ["a,b,c,d,e,f", "x"]}, "'attributes' must be a list of one string"),
        ({"attributes": ["a,b"]}, "'attributes': expected 6"),
        ({"captions": "one"}, "'captions' must be a list of strings"),
        ({"prompt_caption": [1]}, "'prompt_caption' must be a list of strings"),
    ],
)
def test_a_malformed_entry_is_one_line(change, message):
    with pytest.raises(ValueError, match=message) as caught:
        check_released_entry({**ENTRY, **change})
    assert "\n" not in str(caught.value)


def test_missing_keys_and_non_objects_are_malformed():
    with pytest.raises(ValueError, match="missing key 'prompt_caption'"):
        check_released_entry({k: v for k, v in ENTRY.items() if k != "prompt_caption"})
    with pytest.raises(ValueError, match="expected a JSON object, got list"):
        check_released_entry([1, 2])
