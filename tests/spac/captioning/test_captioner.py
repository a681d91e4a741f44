"""The template + style captioner: caption properties over 10,000 random attribute sets, grammar in
context, belongings "nothing" rarely said, no table-like captions, determinism (pinned texts), style
choice, and custom style and library files."""

from __future__ import annotations

import random
import re
import shutil
from importlib import resources
from pathlib import Path

import pytest

from spac.attributes import UNKNOWN, AttributeValue, Schema, load_schema
from spac.captioning.captioner import STYLE_NAMES, TEMPLATE_STYLE, Caption, Captioner, caption, check_style_names
from spac.captioning.grammar import person_for
from spac.captioning.library import load_library
from spac.captioning.slots import GROUP_SLOTS, FillContext, TemplateError

N_SETS = 10_000
# Words that name a group without a value; captions must not use them for an unknown group either.
GROUP_NOUNS = {"hair": ("hair",), "shoes": ("shoe", "footwear"), "belongings": ("bag",)}
FULL = {
    "gender": "man",
    "hair": "short black hair",
    "upper": "red t-shirt",
    "lower": "blue jeans",
    "shoes": "white sneakers",
    "belongings": "black backpack",
}
# How a caption says that nothing is carried (the style and library `nothing` sentences).
SAYS_NOTHING = re.compile(r"\bnothing\b|\banything\b|\bhands are empty\b", re.IGNORECASE)
TABLE_LIKE = re.compile(r" - | \+ |;| \| ")


def _term_pattern(terms: set[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?:s|es)?(?![\w-])", re.IGNORECASE)


def _group_terms(schema: Schema) -> dict[str, re.Pattern[str]]:
    """Per group: its item names, their head nouns, synonyms (and generic nouns such as 'hair')."""
    terms = {}
    for group in schema.groups:
        words = {w for item in group.items for w in (item.name, item.name.split()[-1], *item.synonyms)}
        terms[group.name] = _term_pattern(words | set(GROUP_NOUNS.get(group.name, ())))
    return terms


def _random_attributes(rng: random.Random, schema: Schema) -> dict[str, str]:
    unknown = set(rng.sample(schema.group_names, rng.randint(0, len(schema.groups))))
    return {g.name: UNKNOWN if g.name in unknown else rng.choice(g.values).phrase for g in schema.groups}


@pytest.fixture(scope="module")
def schema() -> Schema:
    return load_schema()


@pytest.fixture(scope="module")
def captioner(schema: Schema) -> Captioner:
    return Captioner(schema)


@pytest.fixture(scope="module")
def random_captions(schema: Schema, captioner: Captioner) -> list[tuple[dict[str, str], list[Caption]]]:
    rng = random.Random(1664)
    sets = [_random_attributes(rng, schema) for _ in range(N_SETS)]
    return [(attrs, captioner(attrs, key=f"img-{i:05d}")) for i, attrs in enumerate(sets)]


def test_texts_per_image_are_two_or_three_distinct_and_end_with_the_template(random_captions) -> None:
    for attrs, captions in random_captions:
        known = sum(attrs[g] != UNKNOWN for g in GROUP_SLOTS)
        texts = [c.text for c in captions]
        assert len(texts) == (3 if known >= 2 else 2), (attrs, texts)
        assert len(set(texts)) == len(texts), texts
        assert captions[-1].style == TEMPLATE_STYLE
        styles = [c.style for c in captions[:-1]]
        assert len(set(styles)) == len(styles) and set(styles) <= set(STYLE_NAMES)


def test_every_known_value_is_named_and_nothing_unknown_is(random_captions, schema: Schema) -> None:
    terms = _group_terms(schema)
    colours = _term_pattern({w for c in schema.colours.values() for w in (c.name, *c.synonyms)})
    for attrs, captions in random_captions:
        known = sorted((v for v in attrs.values() if v != UNKNOWN), key=len, reverse=True)
        for c in captions:
            assert "unknown" not in c.text.lower(), c.text
            masked = c.text
            for phrase in known:
                pattern = re.compile(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", re.IGNORECASE)
                # Belongings "nothing" is usually left unsaid; only then may a phrase be missing.
                assert pattern.search(masked) or phrase == "nothing", f"{phrase!r} missing from {c.text!r}"
                masked = pattern.sub("#", masked)
            if attrs["belongings"] != "nothing":
                assert not SAYS_NOTHING.search(c.text), c.text
            for group, value in attrs.items():
                if value == UNKNOWN:
                    found = terms[group].search(masked)
                    assert not found, f"unknown {group} mentioned as {found.group(0)!r} in {c.text!r}"
            assert not colours.search(masked), f"a colour outside the value phrases in {c.text!r}"


def test_captions_are_well_formed(random_captions) -> None:
    for _attrs, captions in random_captions:
        for c in captions:
            t = c.text
            assert "{" not in t and "}" not in t and "  " not in t, t
            assert t[0].isupper() and t.endswith("."), t
            assert not re.search(r"\s[,.;]|,,|\.\.", t), t
            assert not re.search(r"\ba [aeiou]", t, re.IGNORECASE), f"'a' before a vowel: {t!r}"
            assert not re.search(r"\ban [^aeiou\s]", t, re.IGNORECASE), f"'an' before a consonant: {t!r}"


def test_plural_garments_never_take_a_singular_article(random_captions, schema: Schema) -> None:
    plural = {v.phrase for g in schema.groups for v in g.values if v.plural}
    bad = _term_pattern({f"{a} {p}" for a in ("a", "an") for p in plural})
    for _, captions in random_captions:
        for c in captions:
            assert not bad.search(c.text), c.text


def test_pronouns_and_verbs_agree_with_gender(random_captions) -> None:
    wrong_they = re.compile(r"\bthey (is|has|carries|wears|walks|holds)\b", re.IGNORECASE)
    for attrs, captions in random_captions:
        for c in captions:
            words = set(re.findall(r"[a-z]+", c.text.lower()))
            if attrs["gender"] == UNKNOWN:
                assert not words & {"he", "him", "his", "she", "her"}, c.text
                assert words & {"person", "pedestrian"}, c.text
                assert not wrong_they.search(c.text), c.text
            elif attrs["gender"] == "man":
                assert not words & {"she", "her", "they", "them", "their"}, c.text
            else:
                assert not words & {"he", "him", "his", "they", "them", "their"}, c.text


def test_articles_in_context(captioner: Captioner) -> None:
    attrs = dict(FULL, upper="orange coat", belongings="nothing")
    texts = [c.text for k in range(30) for c in captioner(attrs, key=f"k{k}")]
    assert any("an orange coat" in t for t in texts)
    assert not any("a orange" in t or "a nothing" in t for t in texts)
    # An uncoloured umbrella is not in the bundled schema; fill library sentences by hand.
    ctx = FillContext(person_for("woman"), {"belongings": AttributeValue("belongings", "umbrella", None, "umbrella")})
    assert any("an umbrella" in t for t in captioner.library.texts(ctx, 0))


def test_belongings_nothing_is_rarely_said_and_then_in_natural_words(schema: Schema, captioner: Captioner) -> None:
    rng = random.Random(7)
    people = [dict(_random_attributes(rng, schema), belongings="nothing") for _ in range(2000)]
    per_image = [captioner(attrs, key=f"nothing-{i:05d}") for i, attrs in enumerate(people)]
    texts = [c.text for captions in per_image for c in captions]
    said = [t for t in texts if SAYS_NOTHING.search(t)]
    assert 0.02 <= len(said) / len(texts) <= 0.15, (len(said), len(texts))  # it was every text before
    # Never the annotator-unlike "carries nothing" / "holding nothing" a filled-in slot would give.
    assert not any(re.search(r"\b(carr(y|ies|ying)|hold(s|ing)?|with) nothing\b", t) for t in said), said[:5]
    assert sum(any(SAYS_NOTHING.search(c.text) for c in captions) for captions in per_image) / len(people) <= 0.35


def test_no_caption_reads_like_a_table(random_captions) -> None:
    for _, captions in random_captions:
        for c in captions:
            if c.style != TEMPLATE_STYLE:
                assert not TABLE_LIKE.search(c.text), c.text


def test_inventory_is_one_enumerating_sentence(captioner: Captioner) -> None:
    texts = {
        c.text
        for k in range(40)
        for c in captioner(FULL, key=f"inv-{k}", styles=["inventory", "dense"])
        if c.style == "inventory"
    }
    assert len(texts) >= 3
    for text in texts:
        assert text.startswith("A man ") and text.count(".") == 1, text
        assert all(
            v in text for v in ("short black hair", "red t-shirt", "blue jeans", "white sneakers", "black backpack")
        )


def test_few_known_groups_give_one_style_caption_and_the_template(captioner: Captioner) -> None:
    for attrs in ({"gender": "woman"}, {"gender": UNKNOWN}, {"gender": "man", "belongings": "nothing"}):
        captions = captioner(attrs, key="sparse")
        assert [c.style for c in captions][-1] == TEMPLATE_STYLE and len(captions) == 2
        assert len({c.text for c in captions}) == 2


def test_deterministic_per_key_and_seed_and_varied_across_keys(captioner: Captioner, schema: Schema) -> None:
    first = caption(FULL, key="img-1", seed=3)
    assert first == caption(FULL, key="img-1", seed=3) == Captioner(schema)(FULL, key="img-1", seed=3)
    assert caption(FULL, key="img-1", seed=4) != first
    per_key = [captioner(FULL, key=f"img-{k}") for k in range(40)]
    assert len({tuple(c.text for c in captions) for captions in per_key}) >= 35
    assert len({c.text for captions in per_key for c in captions if c.style == TEMPLATE_STYLE}) >= 30
    assert len({c.text for captions in per_key for c in captions if c.style != TEMPLATE_STYLE}) >= 12


def test_captions_are_pinned_across_releases() -> None:
    # Corpora already written must be reproducible: these exact texts came from the released captioner.
    assert caption(FULL, key="img-1", seed=3) == [
        Caption(
            "From head to foot, the man has short black hair, wears a red t-shirt and blue jeans and walks in a "
            "pair of white sneakers. He carries a black backpack.",
            "head_to_toe",
        ),
        Caption(
            "The picture shows a man in a red t-shirt with short black hair wearing blue jeans and white "
            "sneakers, holding a black backpack.",
            "dense",
        ),
        Caption(
            "There is a man with short black hair in blue jeans and white sneakers, carrying a black backpack. "
            "He wears a red t-shirt.",
            "template",
        ),
    ]


def test_styles_argument_limits_the_choice(captioner: Captioner) -> None:
    for k in range(20):
        captions = captioner(FULL, key=f"k{k}", styles=["inventory", "dense"])
        assert {c.style for c in captions[:2]} == {"inventory", "dense"}
    one = captioner(FULL, key="k", styles=["narrative"])
    assert [c.style for c in one] == ["narrative", TEMPLATE_STYLE]
    with pytest.raises(ValueError, match=r"unknown style 'baroque'; valid styles: appositive, dense"):
        caption(FULL, key="k", styles=["baroque"])
    with pytest.raises(ValueError, match="valid styles"):
        Captioner(styles=["baroque"])


def test_custom_styles_and_library_replace_the_bundled_ones(tmp_path: Path, schema: Schema) -> None:
    styles = tmp_path / "styles"
    styles.mkdir()
    bundled = Path(str(resources.files("templates").joinpath("styles")))
    for name in ("dense", "inventory"):
        shutil.copy(bundled / f"{name}.yaml", styles / f"{name}.yaml")
    library = tmp_path / "sentences.yaml"
    addenda = "\n".join(f'  {g}: ["{{they}} {{v:have}} {{a {g}}}."]' for g in GROUP_SLOTS)
    library.write_text(f'sentences:\n  only: ["A {{gender}} walks."]\naddenda:\n{addenda}\n')
    custom = Captioner(schema, library_path=library, styles_dir=styles)
    assert custom.style_names == ("dense", "inventory")
    captions = custom(FULL, key="k")
    assert {c.style for c in captions[:2]} == {"dense", "inventory"}
    assert captions[-1].text.startswith("A man walks. He has ")
    with pytest.raises(ValueError, match="valid styles: dense, inventory"):
        custom(FULL, key="k", styles=["narrative"])
    with pytest.raises(TemplateError, match="cannot read sentence library"):
        Captioner(schema, library_path=tmp_path / "none.yaml", styles_dir=styles)
    built = load_library(library, schema)
    assert Captioner(schema, library=built, styles_dir=styles)(FULL, key="k") == captions


def test_check_style_names_accepts_a_list_or_a_comma_separated_flag() -> None:
    assert check_style_names(["dense", "inventory", "dense"]) == ("dense", "inventory")
    assert check_style_names(" dense, inventory ,") == ("dense", "inventory")
    for names in ([], "", " , "):
        with pytest.raises(ValueError, match="no style given; valid styles: "):
            check_style_names(names)
    with pytest.raises(ValueError, match="unknown style 'x'; valid styles: a, b"):
        check_style_names("a,x", valid=("a", "b"))
