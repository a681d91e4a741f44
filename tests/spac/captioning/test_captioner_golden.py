"""The captioner's output, byte for byte: 500 fixed attribute sets, keys, seeds and style choices against
the captions written before the captioner was optimised (tests/spac/data/captions_golden.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spac.attributes import load_schema
from spac.captioning.captioner import Captioner

GOLDEN = Path(__file__).parent / "data" / "captions_golden.json"


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_the_fixture_covers_what_it_should(golden: dict) -> None:
    cases = golden["cases"]
    assert len(cases) == 500
    assert {c["seed"] for c in cases} >= {0, 1, 2}
    assert any(c["styles"] for c in cases) and any("nothing" in c["attributes"] for c in cases)
    assert {len(c["captions"]) for c in cases} >= {2, 3}


def test_captions_are_identical_to_the_golden_ones(golden: dict) -> None:
    schema = load_schema()
    assert list(schema.group_names) == golden["groups"]
    captioner = Captioner(schema)
    for _ in range(2):  # twice: caches filled on the first pass must not change the second
        for case in golden["cases"]:
            attrs = dict(zip(golden["groups"], case["attributes"]))
            got = [[c.text, c.style] for c in captioner(attrs, case["key"], seed=case["seed"], styles=case["styles"])]
            assert got == case["captions"], (case["key"], case["seed"])
