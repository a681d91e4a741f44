"""The captioner's attribute spans against spaCy's (spac.language.attribute_spans) on the same texts: every
style module and the library sentence, over random attribute sets (unknown groups, unknown gender, belongings
``nothing`` and the rare text that says it, every value of the schema, generic and bare ones included)."""

from __future__ import annotations

import random

import pytest

from spac import language
from spac.attributes import UNKNOWN, load_schema
from spac.captioning.captioner import TEMPLATE_STYLE, Caption, Captioner


def _captions(n_sets: int, seed: int) -> list[Caption]:
    """Each set captioned once per style module (its caption, then a library sentence), keys and seeds varied."""
    schema = load_schema()
    captioner = Captioner(schema)
    rng = random.Random(seed)
    captions = []
    for i in range(n_sets):
        attrs = {g.name: UNKNOWN if rng.random() < 0.3 else rng.choice(g.values).phrase for g in schema.groups}
        if rng.random() < 0.3:
            attrs["belongings"] = "nothing"
        for name in captioner.style_names:
            captions += captioner(attrs, f"spans-{seed}-{i}", seed=i % 3, styles=[name])
    return captions


def _assert_spans_equal_spacy(captions: list[Caption]) -> None:
    spans_of: dict[str, tuple] = {}
    for c in captions:
        assert c.spans is not None, c
        assert spans_of.setdefault(c.text, c.spans) == c.spans  # the same text, the same spans
    texts = sorted(spans_of)
    for text, found in zip(texts, language.attribute_spans(texts)):
        assert list(spans_of[text]) == found, text


def _assert_covers(captions: list[Caption]) -> None:
    captioner = Captioner()
    assert {c.style for c in captions} == {*captioner.style_names, TEMPLATE_STYLE}
    texts = [c.text for c in captions]
    assert any(t.startswith(("Person", "Pedestrian", "The person", "The pedestrian", "A person")) for t in texts)
    assert any(" nothing " in t for t in texts)  # belongings nothing said, in a nothing sentence
    assert any(" a pair of " in t for t in texts) and any(" an " in t for t in texts)


def test_spans_equal_spacy_on_500_attribute_sets() -> None:
    captions = _captions(500, seed=1)
    _assert_covers(captions)
    _assert_spans_equal_spacy(captions)


@pytest.mark.slow
def test_spans_equal_spacy_on_10000_attribute_sets() -> None:
    captions = _captions(10_000, seed=2)
    _assert_covers(captions)
    _assert_spans_equal_spacy(captions)


def test_no_spans_for_templates_the_golden_test_does_not_cover(tmp_path) -> None:
    library = tmp_path / "sentences.yaml"
    library.write_text(
        "sentences:\n  all:\n    - 'A {gender} in {a upper}.'\n    - 'A {gender} walks.'\n"
        + "addenda:\n"
        + "".join(f"  {g}: ['It is {{{g}}}.']\n" for g in ("hair", "upper", "lower", "shoes", "belongings")),
        encoding="utf-8",
    )
    attrs = {"gender": "man", "upper": "red t-shirt", "lower": "blue jeans"}
    mined = Captioner(library_path=library)(attrs, "k")
    assert [c.spans is None for c in mined] == [False, False, True]  # the bundled styles keep theirs
    assert all(c.spans is not None for c in Captioner()(attrs, "k"))
