"""The checks every generated text passes before it is kept: one rule per rejection reason.

The rules, in the order they are tried (the first that fails names the reason):

- ``empty``: nothing but white space.
- ``markup``: a control or other non-printing character (new lines, tabs, zero-width and direction marks,
  unassigned code points, U+FFFD), a character of HTML or markdown (``< > * # ` | _ { } [ ] \\ ~``), an HTML
  entity (``&amp;``), or a list marker at the start ("- ", "1. ", "• ").
- ``too_short`` / ``too_long``: fewer than ``min_words`` or more than ``max_words`` words (a word: letters and
  digits, with inner hyphens or apostrophes: "t-shirt" and "man's" are one).
- ``repetition``: the same word three times in a row, a phrase of 2-4 words twice in a row, a sequence of
  ``REPEATED_NGRAM`` words twice anywhere, or the same sentence twice (words compared in lower case).
- ``duplicate``: the same words (lower case, punctuation ignored) as another text of the image.
- ``gender``: the trusted gender is one and the text names the other ("woman", "lady", "girl" for a man) or uses
  its pronouns ("she", "her" for a man).
- ``contradiction``: for a trusted group besides gender, the text mentions the group (spac.language's phrases)
  and none of its mentions agrees with the trusted value. A mention agrees when its item is the value's item
  (synonyms resolved: "pants" is trousers) or either is generic ("hair", "top", "shoes", "bag"), and its colour
  is the value's or either has none. So "a red t-shirt under a black jacket" keeps a trusted red t-shirt, and
  "a blue t-shirt" does not; colours are the schema's palette ("dark blue" is navy, not blue).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

from spac import language
from spac.attributes import GENERIC_NOUNS, AttributeValue, Schema, load_schema
from spac.generation.grounding import PredictedAttributes, trusted_values

REASONS = ("empty", "markup", "too_short", "too_long", "repetition", "duplicate", "gender", "contradiction")
DEFAULT_MIN_WORDS = 5
DEFAULT_MAX_WORDS = 60
REPEATED_NGRAM = 5

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_NON_PRINTING = {"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"}
_MARKUP_CHARACTERS = frozenset("<>*#`|_{}[]\\~\ufffd")
_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-f]+|[a-z]+);", re.IGNORECASE)
_LIST_MARKER = re.compile(r"\s*(?:[-+•]|\d+[.)])\s")
_SENTENCE_END = re.compile(r"[.!?]+")
_OTHER_PRONOUNS = {
    "man": frozenset({"she", "her", "hers", "herself"}),
    "woman": frozenset({"he", "him", "his", "himself"}),
}


def words(text: str) -> list[str]:
    """The text's words, in lower case."""
    return _WORD.findall(text.lower())


def normalised(text: str) -> str:
    """What two texts share when one duplicates the other: their words, lower case, single spaces."""
    return " ".join(words(text))


def has_markup(text: str) -> bool:
    return (
        any(ch in _MARKUP_CHARACTERS or unicodedata.category(ch) in _NON_PRINTING for ch in text)
        or _ENTITY.search(text) is not None
        or _LIST_MARKER.match(text) is not None
    )


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def is_repetitive(text: str) -> bool:
    tokens = words(text)
    if any(tokens[i] == tokens[i + 1] == tokens[i + 2] for i in range(len(tokens) - 2)):
        return True
    for n in range(2, 5):
        if any(tokens[i : i + n] == tokens[i + n : i + 2 * n] for i in range(len(tokens) - 2 * n + 1)):
            return True
    long_ngrams = _ngrams(tokens, REPEATED_NGRAM)
    sentences = [s for s in (normalised(part) for part in _SENTENCE_END.split(text)) if s]
    return len(set(long_ngrams)) < len(long_ngrams) or len(set(sentences)) < len(sentences)


def _generic_items(schema: Schema) -> frozenset[tuple[str, str]]:
    named = {(group.name, item.name) for group in schema.groups for item in group.items if item.generic}
    return frozenset(named | {(group, noun) for group, nouns in GENERIC_NOUNS.items() for noun in nouns})


def _agrees(mention: language.AttributeMention, value: AttributeValue, generic: frozenset[tuple[str, str]]) -> bool:
    same_item = mention.item == value.item or value.generic or (mention.group, mention.item) in generic
    same_colour = mention.colour is None or value.colour is None or mention.colour == value.colour
    return same_item and same_colour


def _names_other_gender(
    tokens: Iterable[str], mentions: Sequence[language.AttributeMention], gender: AttributeValue
) -> bool:
    if any(m.group == "gender" and m.item != gender.item for m in mentions):
        return True
    return not _OTHER_PRONOUNS.get(gender.item, frozenset()).isdisjoint(tokens)


def _contradicts(
    mentions: Sequence[language.AttributeMention], trusted: Mapping[str, AttributeValue], schema: Schema
) -> bool:
    generic = _generic_items(schema)
    for group, value in trusted.items():
        said = [m for m in mentions if m.group == group]
        if group != "gender" and said and not any(_agrees(m, value, generic) for m in said):
            return True
    return False


def rejection(
    text: str,
    mentions: Sequence[language.AttributeMention],
    trusted: Mapping[str, AttributeValue],
    others: Iterable[str],
    min_words: int,
    max_words: int,
    schema: Schema,
) -> str | None:
    """The first reason (module doc) ``text`` is rejected for, or None when it is kept. ``mentions``: what
    spac.language finds in it; ``trusted``: the values it must agree with (spac.generation.grounding);
    ``others``: the image's other texts."""
    if not text.strip():
        return "empty"
    if has_markup(text.strip()):
        return "markup"
    tokens = words(text)
    if len(tokens) < min_words:
        return "too_short"
    if len(tokens) > max_words:
        return "too_long"
    if is_repetitive(text):
        return "repetition"
    if normalised(text) in {normalised(other) for other in others}:
        return "duplicate"
    if "gender" in trusted and _names_other_gender(tokens, mentions, trusted["gender"]):
        return "gender"
    if _contradicts(mentions, trusted, schema):
        return "contradiction"
    return None


def check_text(
    text: str,
    prediction: PredictedAttributes,
    min_confidence: float,
    others: Iterable[str] = (),
    min_words: int = DEFAULT_MIN_WORDS,
    max_words: int = DEFAULT_MAX_WORDS,
    schema: Schema | None = None,
) -> str | None:
    """None when ``text`` is kept, else the reason it is rejected (one of ``REASONS``, see the module doc),
    checked against the values of ``prediction`` at or above ``min_confidence`` and the image's ``others``."""
    schema = schema or load_schema()
    trusted = trusted_values(prediction, min_confidence, schema)
    return rejection(text, language.extract_attributes(text, schema), trusted, others, min_words, max_words, schema)
