"""spac.render.styled_corpus: rendered people as corpus records whose texts come from the named style modules."""

from __future__ import annotations

from shards.sample import validate_record
from spac.render.styled_corpus import styled_people


def test_each_person_gets_one_text_per_style_and_the_record_names_them():
    people = styled_people(3, 4, ("dense", "inventory"))
    assert len(people) == 4
    for record, image in people:
        validate_record(record)
        assert sorted(record["styles"]) == ["dense", "inventory"]
        assert len(set(record["captions"])) == 2
        assert image.size[0] > 0
    assert len({record["key"] for record, _ in people}) == 4


def test_the_same_seed_gives_the_same_records():
    first = [record for record, _ in styled_people(5, 2, ("appositive", "narrative"))]
    assert first == [record for record, _ in styled_people(5, 2, ("appositive", "narrative"))]
    assert first != [record for record, _ in styled_people(6, 2, ("appositive", "narrative"))]
