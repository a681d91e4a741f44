"""Caption texts compiled once per shape, then filled per caption: the captioner's fast path and its spans.

What a style phrasing or a library sentence writes depends on the person's values only through their
phrases; everything else (which phrasing or sentences, which groups are known, the pronouns, the verbs'
number) takes few forms: a *shape*. :func:`write` runs the ordinary code once per shape (fill + tidy, in
:mod:`spac.captioning.styles` and :mod:`spac.captioning.library`) with one mark character in place of the
person's noun and of each group's phrase in each form, and splits the result into literal text and slots.
A caption is then its shape's literals joined with the phrases, and the place of every phrase is known on
the way: the attribute spans, i.e. the noun when it names a gender ("man", not "person") and each value's
phrase without its article or "a pair of", as (start, end) in the final text. They equal what
:func:`spac.language.attribute_spans` finds on the same texts for the bundled schema, styles and library
(tests/spac/captioning/test_captioner_spans.py); what spaCy would find around texts written from other
templates is not known here, so the captioner gives no spans for those (spac.captioning.captioner).

Joining is exact only when a phrase cannot change how tidy() treats the text around it: non-empty, single
spaces, none of ``,.;:!?`` and no mark (*inert*). Every bundled phrase is; a value whose phrase is not raises
:class:`NotCompilable` inside :func:`write`, which then writes that text the ordinary way, without spans.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

from spac.attributes import AttributeValue
from spac.captioning.grammar import Person, capitalised, starts_sentence
from spac.captioning.slots import GROUP_SLOTS, MARKS, FillContext, GroupPlaceholder, group_phrase

Spans = tuple[tuple[int, int], ...]
# A phrase as one slot fills it: (text, mention start, mention end), the mention relative to the text; end 0 =
# no attribute mention (a neutral noun). A phrase's choices: each form in FORMS as is, then capitalised.
PhraseForm = tuple[str, int, int]

FORMS = ("bare", "a", "pair")
GENDER_MARK = "\ue000"
PLACEHOLDERS = {
    group: GroupPlaceholder(group, {form: chr(0xE001 + 3 * i + j) for j, form in enumerate(FORMS)})
    for i, group in enumerate(GROUP_SLOTS)
}
_SLOT_OF_MARK: dict[str, tuple[str | None, int]] = {GENDER_MARK: (None, 0)} | {
    mark: (p.group, FORMS.index(form)) for p in PLACEHOLDERS.values() for form, mark in p.forms.items()
}
_MARK = re.compile(f"([{MARKS}])")
_NOT_INERT = re.compile(f"[,.;:!?{MARKS}]")
MAX_CACHED = 65536


class NotCompilable(Exception):
    """A phrase that tidy() could change (see the module doc): the text is written the ordinary way."""


@dataclass(frozen=True)
class Compiled:
    """One shape's text: ``parts``, the literal text with None where a slot goes; per slot its index in
    ``parts``, its group (None: the noun), its choice (2 * index in FORMS, + 1 where it starts a sentence),
    and the length of the literal text before it."""

    parts: tuple[str | None, ...]
    slots: tuple[tuple[int, str | None, int, int], ...]

    def fill(self, noun: tuple[PhraseForm, ...], values: Mapping[str, AttributeValue]) -> tuple[str, Spans]:
        """The caption for the person's ``noun`` (:func:`noun_choices`) and ``values``, and its spans."""
        parts = list(self.parts)
        forms_of = _FORMS_OF.get
        spans = []
        filled = 0  # length of the phrases so far
        for index, group, choice, literal in self.slots:
            if group is None:
                text, start, end = noun[choice]
            else:
                value = values[group]
                text, start, end = (forms_of(id(value)) or _forms_entry(value))[0][choice]
            parts[index] = text
            if end:
                spans.append((literal + filled + start, literal + filled + end))
            filled += len(text)
        return "".join(parts), tuple(spans)  # type: ignore[arg-type]


def compile_text(text: str) -> Compiled:
    """A tidied text written with placeholders (:func:`placeholders`) -> its literals and slots."""
    parts: list[str | None] = _MARK.split(text)
    slots = []
    literal = len(parts[0])  # type: ignore[arg-type]
    for i in range(1, len(parts), 2):
        group, form = _SLOT_OF_MARK[parts[i]]  # type: ignore[index]
        slots.append((i, group, 2 * form + starts_sentence(text, literal + (i - 1) // 2), literal))
        parts[i] = None
        literal += len(parts[i + 1])  # type: ignore[arg-type]
    return Compiled(tuple(parts), tuple(slots))


def placeholders(ctx: FillContext) -> FillContext:
    """``ctx`` with marks for the noun and for each known group's phrase: what a shape is compiled from."""
    return FillContext(
        dataclasses.replace(ctx.person, noun=GENDER_MARK), {group: PLACEHOLDERS[group] for group in ctx.values}
    )


def _inert(text: str) -> bool:
    return bool(text) and " ".join(text.split()) == text and _NOT_INERT.search(text) is None


def _choices(text: str, start: int, end: int) -> tuple[PhraseForm, PhraseForm]:
    """The phrase as is and capitalised (at a sentence start); NotCompilable when it is not inert."""
    if not _inert(text):
        raise NotCompilable(text)
    return (text, start, end), (capitalised(text), start, end)


# id(value) -> (its choices, value). An entry keeps its value alive, so no other object has that id while
# the entry exists: an entry found is the value's own.
_FORMS_OF: dict[int, tuple[tuple[PhraseForm, ...], AttributeValue]] = {}


def _forms_entry(value: AttributeValue) -> tuple[tuple[PhraseForm, ...], AttributeValue]:
    choices: list[PhraseForm] = []
    for form in FORMS:
        text = group_phrase(value, form)  # the phrase itself ends every form: "a red t-shirt", "a pair of x"
        choices += _choices(text, len(text) - len(value.phrase), len(text))
    if len(_FORMS_OF) >= MAX_CACHED:
        _FORMS_OF.clear()
    entry = _FORMS_OF[id(value)] = (tuple(choices), value)
    return entry


def noun_choices(person: Person) -> tuple[PhraseForm, PhraseForm]:
    """The person's noun as a slot fills it; a mention when it names a gender ("man", "woman"): a person of
    unknown gender is "person" or "pedestrian" with they/them (grammar.person_for), which name no attribute."""
    return _choices(person.noun, 0, 0 if person.plural_pronoun else len(person.noun))


def write(
    cache: dict, shape: Hashable, said: FillContext, ctx: FillContext, render: Callable[..., str], *args: object
) -> tuple[str, Spans | None]:
    """``render(said, ctx, *args)``'s text and its spans, from the text compiled for ``shape`` in ``cache``.

    ``render`` is the ordinary writer (fill + tidy); ``shape`` with the person must determine its text up
    to the value phrases (the caller's choices and the known groups). ``cache`` maps (shape, id(person)) to
    entries that keep the person alive, so an entry found is that person's. ``said`` is ``ctx`` less what the text
    leaves unsaid (spac.captioning.slots.unsay_nothing). Spans None: a phrase was not inert (module doc).
    """
    person = ctx.person
    entry = cache.get((shape, id(person))) or _compile_entry(cache, shape, said, ctx, render, args)
    try:
        if entry[2] is None:
            raise NotCompilable(person.noun)
        return entry[1].fill(entry[2], ctx.values)
    except NotCompilable:
        return render(said, ctx, *args), None


def _compile_entry(
    cache: dict, shape: Hashable, said: FillContext, ctx: FillContext, render: Callable[..., str], args: tuple
) -> tuple[Person, Compiled, tuple[PhraseForm, ...] | None]:
    """(the person, the shape's compiled text, the person's noun choices or None when it is not inert)."""
    person = ctx.person
    try:
        noun: tuple[PhraseForm, ...] | None = noun_choices(person)
    except NotCompilable:
        noun = None
    if len(cache) >= MAX_CACHED:
        cache.clear()
    compiled = compile_text(render(placeholders(said), placeholders(ctx), *args))
    entry = cache[(shape, id(person))] = (person, compiled, noun)
    return entry
