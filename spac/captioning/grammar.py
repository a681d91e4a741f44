"""English agreement for generated captions: a/an, "a pair of", pronouns, verb number, sentence tidying."""

from __future__ import annotations

from dataclasses import dataclass

from spac.attributes import UNKNOWN, AttributeValue

# Words whose first letter misleads the vowel rule: "a uniform" but "an hour".
_ARTICLE_EXCEPTIONS = {
    "one": "a",
    "once": "a",
    "uniform": "a",
    "unique": "a",
    "university": "a",
    "used": "a",
    "hour": "an",
    "honest": "an",
    "heir": "an",
}
# Verbs whose third person singular is not made by the spelling rules below.
_IRREGULAR_SINGULAR = {"be": "is", "have": "has", "do": "does", "go": "goes"}
_PLURAL_FORM = {"be": "are"}


def indefinite_article(phrase: str) -> str:
    """'a' or 'an' for the phrase that follows it, judged by the sound of its first word."""
    words = phrase.strip().lower().split()
    if not words:
        raise ValueError("indefinite_article needs a non-empty phrase")
    first = words[0]
    if first in _ARTICLE_EXCEPTIONS:
        return _ARTICLE_EXCEPTIONS[first]
    return "an" if first[0] in "aeiou" else "a"


def takes_no_article(value: AttributeValue) -> bool:
    """Plural garments ("blue jeans"), hair as a mass noun ("short black hair") and "nothing"."""
    return value.plural or value.item == "nothing" or value.item.endswith("hair")


def noun_phrase(value: AttributeValue, pair: bool = False) -> str:
    """The value's phrase with the article English wants: "a red t-shirt", "an umbrella", "blue jeans".

    With ``pair`` a plural garment becomes "a pair of blue jeans"; nothing else changes.
    """
    if value.plural:
        return f"a pair of {value.phrase}" if pair else value.phrase
    if takes_no_article(value):
        return value.phrase
    return f"{indefinite_article(value.phrase)} {value.phrase}"


@dataclass(frozen=True)
class Person:
    """How a caption refers to its pedestrian: the noun, and pronouns that agree with the gender."""

    noun: str
    they: str
    them: str
    their: str
    plural_pronoun: bool


_PRONOUNS = {"man": ("he", "him", "his", False), "woman": ("she", "her", "her", False)}


def person_for(gender: str, neutral_noun: str = "person") -> Person:
    """'man' -> he/him/his; 'woman' -> she/her/her; unknown -> ``neutral_noun`` with they/them/their."""
    if gender == UNKNOWN:
        return Person(neutral_noun, "they", "them", "their", True)
    if gender not in _PRONOUNS:
        raise ValueError(f"no pronouns for gender {gender!r}; expected man, woman or unknown")
    return Person(gender, *_PRONOUNS[gender])


def conjugate(verb: str, plural: bool) -> str:
    """Present tense of the first word of ``verb`` for a singular or plural subject: 'carry' -> 'carries'/'carry'."""
    head, _, rest = verb.strip().partition(" ")
    if not head:
        raise ValueError("conjugate needs a verb")
    if plural:
        form = _PLURAL_FORM.get(head, head)
    elif head in _IRREGULAR_SINGULAR:
        form = _IRREGULAR_SINGULAR[head]
    elif head.endswith(("s", "sh", "ch", "x", "z")):
        form = head + "es"
    elif head.endswith("y") and head[-2:-1] not in tuple("aeiou"):
        form = head[:-1] + "ies"
    else:
        form = head + "s"
    return f"{form} {rest}" if rest else form


def join_list(parts: list[str], conjunction: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} {conjunction} {parts[-1]}"


_LOWERCASE = frozenset("abcdefghijklmnopqrstuvwxyz")
_SENTENCE_ENDS = (". ", "! ", "? ")


def capitalised(word: str) -> str:
    """``word`` as it reads at a sentence start after :func:`tidy`: its first letter upper-cased if a-z."""
    return word[0].upper() + word[1:] if word[:1] in _LOWERCASE else word


def starts_sentence(text: str, index: int) -> bool:
    """Whether :func:`tidy`, on a tidied text, capitalises what stands at ``index``: the start or after '. ' etc."""
    return index == 0 or text.endswith(_SENTENCE_ENDS, 0, index)


def _capitalise_sentence_starts(text: str) -> str:
    """a-z at the start and after '. ', '! ', '? ' upper-cased (the text's whitespace is single spaces)."""
    if text[:1] in _LOWERCASE:
        text = text[0].upper() + text[1:]
    for end in _SENTENCE_ENDS:
        if end in text:
            text = end.join(p[0].upper() + p[1:] if p[:1] in _LOWERCASE else p for p in text.split(end))
    return text


def tidy(text: str) -> str:
    """Single spaces, no space before punctuation, capital sentence starts, one final period."""
    # str.split() splits on the whitespace runs that re's \s+ matches (both use str.isspace): this is
    # re.sub(r"\s+", " ", text).strip(); with single spaces left, " ," -> "," is re.sub(r"\s+([,.;:])", r"\1", ...).
    text = " ".join(text.split())
    for mark in ",.;:":
        if " " + mark in text:
            text = text.replace(" " + mark, mark)
    text = text.rstrip(",;: ")
    if not text.endswith((".", "!", "?")):
        text += "."
    # Every whitespace run is one space now, so a sentence starts at the text's start or after '. ' etc.:
    # what the regex (^|[.!?]\s+)([a-z]) finds, without a Python callback per match.
    return _capitalise_sentence_starts(text)
