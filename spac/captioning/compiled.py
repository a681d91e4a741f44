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
# A phrase in one form as a caption uses it: (text, text at a sentence start, mention start, mention end),
# the mention relative to the text; end 0 = not an attribute mention (a neutral noun).
PhraseForm = tuple[str, str, int, int]

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
    """One shape's text: ``head``, then per slot its phrase and the literal text after it. A slot is
    (group, or None for the noun; index in FORMS; whether it starts a sentence; the literal after it, its length)."""

    head: str
    slots: tuple[tuple[str | None, int, bool, str, int], ...]

    def fill(self, noun: PhraseForm, values: Mapping[str, AttributeValue]) -> tuple[str, Spans]:
        """The caption for the person's ``noun`` (:func:`noun_form`) and ``values``, and its spans."""
        pieces = [self.head]
        pos = len(self.head)
        spans = []
        for group, form, capital, after, after_length in self.slots:
            if group is None:
                text, at_start, start, end = noun
            else:
                value = values[group]
                entry = _FORMS_OF.get(id(value))
                if entry is None or entry[0] is not value:
                    entry = _forms_entry(value)
                text, at_start, start, end = entry[1][form]
            if capital:
                text = at_start
            if end:
                spans.append((pos + start, pos + end))
            pos += len(text) + after_length
            pieces.append(text)
            pieces.append(after)
        return "".join(pieces), tuple(spans)


def compile_text(text: str) -> Compiled:
    """A tidied text written with placeholders (:func:`placeholders`) -> its literals and slots."""
    pieces = _MARK.split(text)
    slots = []
    offset = len(pieces[0])
    for i in range(1, len(pieces), 2):
        group, form = _SLOT_OF_MARK[pieces[i]]
        after = pieces[i + 1]
        slots.append((group, form, starts_sentence(text, offset), after, len(after)))
        offset += 1 + len(after)
    return Compiled(pieces[0], tuple(slots))


def placeholders(ctx: FillContext) -> FillContext:
    """``ctx`` with marks for the noun and for each known group's phrase: what a shape is compiled from."""
    return FillContext(
        dataclasses.replace(ctx.person, noun=GENDER_MARK), {group: PLACEHOLDERS[group] for group in ctx.values}
    )


def _inert(text: str) -> bool:
    return bool(text) and " ".join(text.split()) == text and _NOT_INERT.search(text) is None


def _form(text: str, start: int, end: int) -> PhraseForm:
    if not _inert(text):
        raise NotCompilable(text)
    return (text, capitalised(text), start, end)


# id(value) -> (value, its three forms); keeping the value keeps its id from being reused (as slots does).
_FORMS_OF: dict[int, tuple[AttributeValue, tuple[PhraseForm, ...]]] = {}


def _forms_entry(value: AttributeValue) -> tuple[AttributeValue, tuple[PhraseForm, ...]]:
    forms = []
    for form in FORMS:
        text = group_phrase(value, form)  # the phrase itself ends every form: "a red t-shirt", "a pair of x"
        forms.append(_form(text, len(text) - len(value.phrase), len(text)))
    if len(_FORMS_OF) >= MAX_CACHED:
        _FORMS_OF.clear()
    entry = _FORMS_OF[id(value)] = (value, tuple(forms))
    return entry


def noun_form(person: Person) -> PhraseForm:
    """The person's noun as a slot fills it; a mention when it names a gender ("man", "woman"): a person of
    unknown gender is "person" or "pedestrian" with they/them (grammar.person_for), which name no attribute."""
    return _form(person.noun, 0, 0 if person.plural_pronoun else len(person.noun))


def write(
    cache: dict, shape: Hashable, said: FillContext, ctx: FillContext, render: Callable[..., str], *args: object
) -> tuple[str, Spans | None]:
    """``render(said, ctx, *args)``'s text and its spans, from the text compiled for ``shape`` in ``cache``.

    ``render`` is the ordinary writer (fill + tidy); ``shape`` with the person must determine its text up
    to the value phrases (the caller's choices and the known groups). ``said`` is ``ctx`` less what the text
    leaves unsaid (spac.captioning.slots.unsay_nothing). Spans None: a phrase was not inert (module doc).
    """
    person = ctx.person
    entry = cache.get((shape, id(person)))
    if entry is None or entry[0] is not person:
        entry = _compile_entry(cache, shape, said, ctx, render, args)
    try:
        if entry[2] is None:
            raise NotCompilable(person.noun)
        return entry[1].fill(entry[2], ctx.values)
    except NotCompilable:
        return render(said, ctx, *args), None


def _compile_entry(
    cache: dict, shape: Hashable, said: FillContext, ctx: FillContext, render: Callable[..., str], args: tuple
) -> tuple[Person, Compiled, PhraseForm | None]:
    """(the person, the shape's compiled text, the person's noun form or None when it is not inert)."""
    person = ctx.person
    try:
        noun: PhraseForm | None = noun_form(person)
    except NotCompilable:
        noun = None
    if len(cache) >= MAX_CACHED:
        cache.clear()
    compiled = compile_text(render(placeholders(said), placeholders(ctx), *args))
    entry = cache[(shape, id(person))] = (person, compiled, noun)
    return entry
