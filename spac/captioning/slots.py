"""The slot language shared by the sentence library and the style modules, and its checks.

A template is plain text with slots in braces:

- ``{gender}``: the pedestrian noun: "man", "woman", or "person"/"pedestrian" when gender is unknown;
- ``{they}`` ``{them}`` ``{their}``: pronouns that agree with the gender (he/him/his, she/her/her, they/them/their);
- ``{v:verb}``: ``verb`` in the present tense, agreeing with the subject the caller names (see ``fill``);
- ``{hair}`` ... ``{belongings}``: the group's value phrase, bare ("red t-shirt", "blue jeans", "nothing");
- ``{a upper}``: with the article it needs ("a red t-shirt", "an orange coat", "blue jeans", "short black hair");
- ``{pair shoes}``: like ``{a ...}`` but plural garments become "a pair of white sneakers".

Belongings ``nothing`` is a known value that people almost never spell out ("carries nothing"): the
style modules and the library leave it unsaid except in about one text in ``NOTHING_ONE_IN``, which adds
one of their ``nothing`` sentences instead ("He has nothing in his hands."); see :func:`unsay_nothing`.

The literal text around the slots may not name any attribute (no item, synonym, colour, or generic noun
such as "hair" or "bag"): that keeps captions from mentioning an unknown attribute, and keeps the
value phrases the only attribute words in a caption.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

import yaml

from common.digests import stable_int
from common.errors import InputError
from spac.attributes import GENERIC_NOUNS, GROUP_ORDER, UNKNOWN, AttributeValue, Schema
from spac.captioning.grammar import Person, conjugate, noun_phrase

GROUP_SLOTS = GROUP_ORDER[1:]
PRONOUN_SLOTS = ("they", "them", "their")
NOTHING = "nothing"  # the belongings item that says nothing is carried
NOTHING_ONE_IN = 12  # a text says that nothing is carried about once in this many

_SLOT = re.compile(r"\{([^{}]*)\}")
_GROUP_FORMS = {"": "bare", "a": "a", "pair": "pair"}


class TemplateError(InputError):
    """A malformed sentence library or style file; the message names the file and the offending key."""


@dataclass(frozen=True)
class Slot:
    kind: str  # "gender", "pronoun", "verb" or "group"
    name: str  # the pronoun, the verb's base form, or the group name
    form: str = "bare"  # groups only: "bare", "a" or "pair"


@functools.lru_cache(maxsize=4096)  # fill() parses every slot of every caption it writes; the slot texts are few
def parse_slot(body: str) -> Slot:
    """One slot's text between the braces -> Slot; InputError naming the slot when it is not one we know."""
    text = body.strip()
    if text == "gender":
        return Slot("gender", "gender")
    if text in PRONOUN_SLOTS:
        return Slot("pronoun", text)
    if text.startswith("v:") and re.fullmatch(r"[a-z]+", text[2:]):
        return Slot("verb", text[2:])
    prefix, _, group = text.rpartition(" ")
    if group in GROUP_SLOTS and prefix in _GROUP_FORMS:
        return Slot("group", group, _GROUP_FORMS[prefix])
    raise InputError(f"unknown slot {{{body}}}")


def parse_slots(template: str) -> list[Slot]:
    """Every slot of a template, in order; InputError for an unknown slot or a stray brace."""
    slots = [parse_slot(m.group(1)) for m in _SLOT.finditer(template)]
    if "{" in _SLOT.sub("", template) or "}" in _SLOT.sub("", template):
        raise InputError("unbalanced brace")
    return slots


def groups_of(template: str) -> frozenset[str]:
    return frozenset(s.name for s in parse_slots(template) if s.kind == "group")


@dataclass(frozen=True)
class FillContext:
    """What a template is filled with: how to name the person and the known values by group."""

    person: Person
    values: Mapping[str, AttributeValue | GroupPlaceholder]  # placeholders only while a text is compiled


def unsay_nothing(ctx: FillContext, digest: int) -> tuple[FillContext, bool]:
    """``ctx`` without belongings ``nothing`` (people rarely say it), and whether this text says it anyway.

    The second value is True for about one ``digest`` in ``NOTHING_ONE_IN`` when the belongings are
    ``nothing``; the caller then adds one of its ``nothing`` sentences. Other contexts come back unchanged.
    """
    value = ctx.values.get("belongings")
    if value is None or value.item != NOTHING:
        return ctx, False
    rest = {group: v for group, v in ctx.values.items() if group != "belongings"}
    return FillContext(ctx.person, rest), stable_int(digest, NOTHING) % NOTHING_ONE_IN == 0


# Template text -> its pieces: literal text at even positions, parsed slots at odd ones (what _SLOT.sub
# would visit). The templates of a library and its styles are few; fill() runs for every caption.
_COMPILED: dict[str, tuple[str | Slot, ...]] = {}
_MAX_COMPILED = 65536
# Verb forms and noun phrases are pure functions of few inputs: computed once each. The values come from a
# Schema and live as long as it does: noun phrases are cached by the value object's identity, keeping it alive.
_conjugate = functools.lru_cache(maxsize=4096)(conjugate)
_NOUN_PHRASES: dict[int, tuple[AttributeValue, str, str]] = {}


def compile_template(template: str) -> tuple[str | Slot, ...]:
    """The template's pieces, literal text and :class:`Slot` alternating (an InputError for an unknown slot)."""
    pieces = _COMPILED.get(template)
    if pieces is None:
        split = _SLOT.split(template)
        pieces = tuple(parse_slot(piece) if i % 2 else piece for i, piece in enumerate(split))
        if len(_COMPILED) >= _MAX_COMPILED:
            _COMPILED.clear()
        _COMPILED[template] = pieces
    return pieces


# Characters that stand for phrases while a text is compiled (Unicode private use): never in a template.
MARKS = "\ue000-\ue0ff"
_MARK_CHARACTER = re.compile(f"[{MARKS}]")


@dataclass(frozen=True)
class GroupPlaceholder:
    """Stands in for a group's value when a text is compiled (spac.captioning.compiled): each form of its
    slot is one mark character, the value's phrase in that form once filled."""

    group: str
    forms: Mapping[str, str]  # "bare", "a", "pair" -> its mark


def group_phrase(value: AttributeValue | GroupPlaceholder, form: str) -> str:
    """A group slot's text: the bare phrase, or with its article ("a"), or "a pair of" plural garments ("pair")."""
    if isinstance(value, GroupPlaceholder):
        return value.forms[form]
    if form == "bare":
        return value.phrase
    cached = _NOUN_PHRASES.get(id(value))
    if cached is None or cached[0] is not value:
        if len(_NOUN_PHRASES) >= _MAX_COMPILED:
            _NOUN_PHRASES.clear()
        cached = _NOUN_PHRASES[id(value)] = (value, noun_phrase(value), noun_phrase(value, pair=True))
    return cached[2] if form == "pair" else cached[1]


def fill(template: str, ctx: FillContext, plural: bool) -> str:
    """Fill every slot; ``plural`` is the number of the subject that ``{v:...}`` verbs agree with.

    A group slot whose value is not in ``ctx.values`` is a programming error (KeyError): callers only
    fill templates whose groups are known.
    """
    pieces = compile_template(template)
    if len(pieces) == 1:
        return pieces[0]  # type: ignore[return-value]
    parts = list(pieces)
    person = ctx.person
    for i in range(1, len(parts), 2):
        slot: Slot = parts[i]  # type: ignore[assignment]
        kind = slot.kind
        if kind == "group":
            parts[i] = group_phrase(ctx.values[slot.name], slot.form)
        elif kind == "gender":
            parts[i] = person.noun
        elif kind == "pronoun":
            parts[i] = getattr(person, slot.name)
        else:
            parts[i] = _conjugate(slot.name, plural)
    return "".join(parts)  # type: ignore[arg-type]


def literal_text(template: str) -> str:
    """The template with its slots blanked out: the words we wrote ourselves."""
    return _SLOT.sub(" | ", template)


# Schema holds dicts, so it is not hashable: cache by identity, keeping the schema alive beside its pattern.
_PATTERNS: dict[int, tuple[Schema, re.Pattern[str]]] = {}


def _vocabulary_pattern(schema: Schema) -> re.Pattern[str]:
    cached = _PATTERNS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    terms = {UNKNOWN, *(noun for nouns in GENERIC_NOUNS.values() for noun in nouns)}  # plurals: the (s|es) below
    for colour in schema.colours.values():
        terms.update((colour.name, *colour.synonyms))
    for group in schema.groups:
        for item in group.items:
            terms.update((item.name, item.name.split()[-1], *item.synonyms))
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w-])(?:{alternatives})(?:s|es)?(?![\w-])", re.IGNORECASE)
    _PATTERNS[id(schema)] = (schema, pattern)
    return pattern


def vocabulary_word(template: str, schema: Schema) -> str | None:
    """The first attribute word (item, synonym, colour, generic noun) in the literal text, or None."""
    match = _vocabulary_pattern(schema).search(literal_text(template))
    return match.group(0) if match else None


def parse_yaml(text: str, source: str) -> object:
    """YAML text -> data; TemplateError naming the file and line when it is not valid YAML."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "<yaml>"
        raise TemplateError(f"{source}: {where}: invalid YAML ({getattr(exc, 'problem', None) or exc})") from None


def check_template(template: object, source: str, key: str, schema: Schema) -> str:
    """A template string whose slots parse and whose own words name no attribute; TemplateError otherwise."""
    if not isinstance(template, str) or not template.strip():
        raise TemplateError(f"{source}: {key}: expected a non-empty string, got {template!r}")
    try:
        parse_slots(template)
    except InputError as exc:
        raise TemplateError(f"{source}: {key}: {exc} in {template!r}") from None
    if _MARK_CHARACTER.search(template):
        raise TemplateError(f"{source}: {key}: U+E000..U+E0FF are the captioner's placeholders: {template!r}")
    word = vocabulary_word(template, schema)
    if word is not None:
        raise TemplateError(
            f"{source}: {key}: the attribute word {word!r} must come from a slot, not the text: {template!r}"
        )
    return template.strip()


def check_nothing_sentence(template: object, source: str, key: str, schema: Schema) -> str:
    """A sentence that says nothing is carried ("{they} {v:have} {belongings} in {their} hands."): the
    person as a pronoun, no group but belongings (filled with "nothing"), a final period; TemplateError otherwise."""
    text = check_template(template, source, key, schema)
    kinds = [s.kind for s in parse_slots(text)]
    if not groups_of(text) <= {"belongings"} or "gender" in kinds:
        raise TemplateError(
            f"{source}: {key}: a nothing sentence names no group but {{belongings}} and no {{gender}}: {text!r}"
        )
    if "verb" in kinds and "pronoun" not in kinds:
        raise TemplateError(f"{source}: {key}: {{v:...}} verbs agree with a pronoun; add {{they}}: {text!r}")
    if not text.endswith("."):
        raise TemplateError(f"{source}: {key}: a nothing sentence ends with a period: {text!r}")
    return text
