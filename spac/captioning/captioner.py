"""SPAC's template + style captioner: 2-3 texts per person from its six attribute values.

For one person (an attributes dict) and a caption key (e.g. the image key) the captioner writes two
style captions, in two different style modules (templates/styles/*.yaml), then one sentence from the
masked sentence library (templates/sentences.yaml, style "template"). When fewer than
``MIN_GROUPS_FOR_TWO_STYLES`` groups besides gender are known there is too little to say twice, and it
writes one style caption plus the library sentence. The texts of one person are always distinct.

Every choice (styles, phrasings, sentences, "person" or "pedestrian") comes from a hash of
(key, seed, purpose), so the same input and seed give the same captions on every machine.
Captions name every known value by its schema phrase, never an unknown group, never "unknown"; the one
exception is belongings ``nothing``, which people rarely say: it is usually left unsaid and sometimes said
in words of its own ("She is not carrying anything."; see spac.captioning.slots.unsay_nothing).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.digests import StableDraws
from common.errors import InputError
from spac.attributes import UNKNOWN, AttributeValue, Schema, load_schema
from spac.captioning.compiled import Spans
from spac.captioning.grammar import person_for
from spac.captioning.library import BUNDLED_SOURCE, SentenceLibrary, load_library
from spac.captioning.slots import GROUP_SLOTS, FillContext
from spac.captioning.styles import Style, available_styles, load_style

TEMPLATE_STYLE = "template"
MIN_GROUPS_FOR_TWO_STYLES = 2
NEUTRAL_NOUNS = ("person", "pedestrian")
STYLE_NAMES: tuple[str, ...] = available_styles()
_person_for = functools.lru_cache(maxsize=64)(person_for)  # (gender, neutral noun) -> Person, immutable
# Choices hash 64 bits (StableDraws), not stable_int's default 63: every released corpus was captioned with
# the full 64, and a choice taken modulo a count depends on all of them.
LIBRARY = b"library"


@dataclass(frozen=True, slots=True)
class Caption:
    """A text and the style that wrote it. ``spans``: its attribute phrases as (start, end), what
    spac.language.attribute_spans finds in it; None where the captioner cannot vouch for that (a schema,
    styles or library other than the bundled ones, which tests/spac/captioning/test_captioner_spans.py does
    not cover): ask spaCy. Derived from the text, so not compared."""

    text: str
    style: str
    spans: Spans | None = field(default=None, compare=False)


@dataclass(frozen=True)
class _Purposes:
    """One style's hashed choices, as the UTF-8 bytes that follow the caption key and seed."""

    style: bytes
    phrasing: bytes
    noun: bytes


def _purposes(name: str) -> _Purposes:
    return _Purposes(f"style:{name}".encode(), f"phrasing:{name}".encode(), f"noun:{name}".encode())


def check_style_names(names: str | Sequence[str], valid: Sequence[str] = STYLE_NAMES) -> tuple[str, ...]:
    """Style names (a sequence, or one comma-separated string as a flag gives them), deduplicated in order;
    InputError naming the valid ones when one is unknown or none given."""
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        what = f"unknown style {unknown[0]!r}" if unknown else "no style given"
        raise InputError(f"{what}; valid styles: {', '.join(valid)}")
    return tuple(dict.fromkeys(names))


class Captioner:
    """Loads the sentence library and style modules once; call it per person.

    ``styles`` limits the default choice of style modules; ``styles_dir`` and ``library_path`` replace
    the bundled YAML files (for experiments and tests); ``library`` is a library already built (e.g. a
    mined one, see spac.captioning.library.library_for) and wins over ``library_path``.
    """

    def __init__(
        self,
        schema: Schema | None = None,
        styles: Sequence[str] | None = None,
        library_path: str | Path | None = None,
        styles_dir: str | Path | None = None,
        library: SentenceLibrary | None = None,
    ) -> None:
        self.schema = schema or load_schema()
        names = available_styles(styles_dir)
        self.styles: dict[str, Style] = {n: load_style(n, self.schema, styles_dir) for n in names}
        self.library: SentenceLibrary = library if library is not None else load_library(library_path, self.schema)
        self.default_styles = check_style_names(styles, names) if styles is not None else names
        self._value_of = tuple((g, self.schema.group(g).value) for g in GROUP_SLOTS)
        self._genders = self.schema.group("gender")
        self._group_names = frozenset(self.schema.group_names)
        self._purposes = {name: _purposes(name) for name in (*names, TEMPLATE_STYLE)}
        # Spans only for texts of the bundled templates and schema: the ones the spans' golden test covers.
        bundled = self.schema is load_schema()
        self._style_spans = bundled and styles_dir is None
        self._library_spans = bundled and self.library.source == BUNDLED_SOURCE

    @property
    def style_names(self) -> tuple[str, ...]:
        return tuple(self.styles)

    def __call__(
        self, attributes: Mapping[str, str], key: str, seed: int = 0, styles: Sequence[str] | None = None
    ) -> list[Caption]:
        allowed = check_style_names(styles, self.style_names) if styles is not None else self.default_styles
        gender, values = self._values(attributes)
        n_styles = 2 if len(values) >= MIN_GROUPS_FOR_TWO_STYLES else 1
        draw = StableDraws(key, seed)  # every choice is stable_int(key, seed, purpose, bits=64)
        purposes = self._purposes
        ranked = sorted([(draw(purposes[name].style), i, name) for i, name in enumerate(allowed)])  # stable
        chosen = [name for _, _, name in ranked[:n_styles]]

        # A known gender names the person the same way in every text; only a neutral noun is drawn per text.
        known = FillContext(_person_for(gender), values) if gender != UNKNOWN else None
        captions: list[Caption] = []
        for name in chosen:
            ctx = known or self._neutral_context(values, draw, name)
            written = self.styles[name].written(ctx, draw(purposes[name].phrasing))
            self._add_first_new(captions, written, name, self._style_spans)
        ctx = known or self._neutral_context(values, draw, TEMPLATE_STYLE)
        self._add_first_new(captions, self.library.written(ctx, draw(LIBRARY)), TEMPLATE_STYLE, self._library_spans)
        return captions

    def _values(self, attributes: Mapping[str, str]) -> tuple[str, dict[str, AttributeValue]]:
        """(the gender phrase, the known values by group); for anything Schema.validate would refuse, its error."""
        try:  # validate's checks without building its ordered copy: this runs once per caption call
            values = {g: value_of(p) for g, value_of in self._value_of if (p := attributes.get(g, UNKNOWN)) != UNKNOWN}
            gender = attributes.get("gender", UNKNOWN)
            if gender in self._genders and attributes.keys() <= self._group_names:
                return gender, values
        except KeyError:
            pass
        self.schema.validate(attributes)
        raise AssertionError(f"Schema.validate accepted {attributes!r}, which the captioner refused")

    def _neutral_context(self, values: dict[str, AttributeValue], draw: StableDraws, purpose: str) -> FillContext:
        """A person of unknown gender, named by the neutral noun drawn for this text."""
        neutral = NEUTRAL_NOUNS[draw(self._purposes[purpose].noun) % len(NEUTRAL_NOUNS)]
        return FillContext(_person_for(UNKNOWN, neutral), values)

    @staticmethod
    def _add_first_new(
        captions: list[Caption], written: Iterator[tuple[str, Spans | None]], style: str, with_spans: bool
    ) -> None:
        """The first of ``written`` that no caption has said yet, when there is one."""
        used = [c.text for c in captions]
        for text, spans in written:
            if text not in used:
                captions.append(Caption(text, style, spans if with_spans else None))
                return


_DEFAULT: dict[int, Captioner] = {}


def _default_captioner(schema: Schema | None) -> Captioner:
    """One Captioner per schema object (None = bundled schema), built on first use."""
    schema = schema or load_schema()
    cached = _DEFAULT.get(id(schema))
    if cached is None or cached.schema is not schema:
        cached = _DEFAULT[id(schema)] = Captioner(schema)
    return cached


def caption(
    attributes: Mapping[str, str],
    key: str,
    seed: int = 0,
    styles: Sequence[str] | None = None,
    schema: Schema | None = None,
) -> list[Caption]:
    """Two style captions then one library sentence (2 texts when little is known); see the module doc."""
    return _default_captioner(schema)(attributes, key, seed, styles)
