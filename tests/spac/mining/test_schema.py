"""spac.mining.schema: noun phrases of human captions by group, with what the schema covers."""

from __future__ import annotations

from spac.mining.schema import OTHER, PhraseMiner, format_report, mine_phrases

CAPTIONS = [
    "A man with black hair wears a black leather jacket, black pants and black shoes.",
    "A woman with dark hair and purple hair wears a black hat, a red scarf and blue jeans.",
    "He has black hair, a blue and white cap and carries a bag.",
]


def test_phrases_by_group_with_their_values_and_coverage():
    report = mine_phrases([CAPTIONS[:2], CAPTIONS[2:]])
    groups = report.groups
    assert report.captions == 3
    assert groups["hair"].counts == {"black hair": 2, "dark hair": 1, "purple hair": 1}
    assert groups["hair"].values == {"black hair": "black hair", "dark hair": None, "purple hair": None}
    assert groups["hair"].coverage == 0.5
    assert groups["upper"].values == {"black leather jacket": "black jacket"}
    assert groups["lower"].values == {"black pants": "black trousers", "blue jeans": "blue jeans"}
    assert groups["belongings"].values == {"bag": "bag"}
    assert groups["gender"].mentions == 2 and groups["gender"].coverage == 1.0
    # colour + noun phrases that no schema item matches, for the vocabulary author
    assert groups[OTHER].counts == {"black hat": 1, "red scarf": 1, "blue and white cap": 1}
    assert groups[OTHER].coverage == 0.0


def test_json_and_table():
    miner = PhraseMiner()
    miner.add(CAPTIONS)
    data = miner.report.to_json(limit=1)
    assert data["groups"]["hair"] == {
        "mentions": 4,
        "distinct": 3,
        "covered": 2,
        "coverage": 0.5,
        "phrases": [{"phrase": "black hair", "count": 2, "value": "black hair"}],
    }
    assert data["groups"][OTHER]["covered"] is None and data["groups"][OTHER]["coverage"] is None
    table = format_report(miner.report, limit=5)
    assert "hair                 4         2     50.0%         3" in table
    assert "dark hair" in table and "NOT COVERED" in table and "-> black trousers" in table


def test_no_captions_give_an_empty_report():
    report = mine_phrases([[]])
    assert report.captions == 0 and report.groups["hair"].coverage is None
    assert "hair                 0         0         -         0" in format_report(report)
