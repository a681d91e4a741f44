"""Masked library sentences mined from human captions (the paper's 1,664-sentence library was made so).

Each caption (CUHK-PEDES, ICFG-PEDES, RSTPReid: see spac.sources.caption_files) becomes at most one library
sentence in the slot language of spac.captioning.slots, or is dropped with one counted reason:

1. **Read.** Quotes and spaces normalised, "he's"/"she's" spelled out. A separate sentence that says
   nothing is carried ("He has nothing in his hands.") is cut off; pronoun-led, it may become one of the
   library's ``nothing`` sentences. Any other negated attribute ("no backpack" inside the first sentence,
   "not wearing boots") drops the caption.
2. **Mask.** Every attribute phrase spac.language finds (with its span) becomes a group slot: with an
   article before it, ``{a upper}`` (the article is absorbed; "a pair of" gives ``{pair shoes}``); after a
   determiner or possessive, the bare ``{upper}``. The person noun (man, lady, girl, pedestrian, ...;
   age and build words before it such as "young" or "elderly" are dropped) becomes ``{gender}``; a caption
   that starts with "He"/"She" and names no person gets "The {gender}". Pronouns become ``{they}``,
   ``{them}``, ``{their}`` ("her" by what follows it), and a verb whose subject is ``{they}`` becomes
   ``{v:...}`` ("she wears ... and carries" -> "{they} {v:wear} ... and {v:carry}"), so the sentence
   agrees with any gender.
3. **Check** with the library loader's own checks (``{gender}`` once, each group once, no attribute word
   outside a slot), then: no attribute the schema does not have (glasses, a hat, a scarf, a logo, a
   striped pattern, "young": ``EXTRA_ATTRIBUTE_WORDS`` and the schema's descriptors), no word left to
   modify a slot ("dark {a lower}" would give "dark blue jeans" or "dark a red skirt": the word before a
   slot must be one of ``BEFORE_SLOT`` words, a verb or an -ing form).
4. **Refill** ``refills`` times with random values of the sentence's groups and each gender in turn:
   every refill must read grammatically (no doubled article or word, a/an agreement, "they" never with a
   singular verb, "he"/"she" never with a plural one) and pass the round trip: spac.language on the
   filled text recovers every value and the gender, and finds no other attribute.
5. **Deduplicate**: a sentence identical to a kept one after masking and normalising case, spaces and
   punctuation is a ``duplicate``; one whose token set (words and slots) has a Jaccard similarity of at
   least ``jaccard`` (default 0.8) with a kept sentence of the same groups is a ``near-duplicate``
   ("A {gender} wears {a upper}." and "The {gender} wears {a upper}." are 4/6 = 0.67 apart: both kept).

The kept sentences are sorted into sections by the groups they mention (``HULSB`` ... ``B``, ``none``)
as templates/sentences.yaml is. Addenda are the kept sentences' later sentences that name one group and
no person ("{they} {v:carry} {a belongings}."). What the captions cannot give (a section for people with
nothing known, addenda of a group, ``nothing`` sentences) is taken from the bundled library, and the
report says so, so the file always loads with spac.captioning.library's loader.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from math import ceil

from common.digests import stable_int
from common.errors import InputError
from spac.attributes import UNKNOWN, Schema, load_schema
from spac.captioning.grammar import conjugate, person_for, tidy
from spac.captioning.library import SentenceLibrary, check_addendum, check_sentence, load_library
from spac.captioning.slots import (
    GROUP_SLOTS,
    NOTHING,
    FillContext,
    TemplateError,
    check_nothing_sentence,
    fill,
    groups_of,
    literal_text,
    parse_slots,
)
from spac.language import AttributeMention, extract_attributes_batch
from spac.mining.labels import NOTHING_CARRIED, negated

DEFAULT_JACCARD = 0.8
DEFAULT_REFILLS = 6
MIN_WORDS, MAX_WORDS = 4, 80
CHUNK = 2048  # captions masked and checked at a time
GROUP_CODES = {"hair": "H", "upper": "U", "lower": "L", "shoes": "S", "belongings": "B"}
NO_GROUP_SECTION = "none"
SOURCE = "<mined>"

# Drop reasons, in the order the steps meet them.
UNUSABLE = "unusable characters"
NEGATION = "negation"
UNRESOLVED = "attribute the schema cannot write"
GROUP_TWICE = "group named twice"
SEVERAL_PEOPLE = "names more than one person"
NO_PERSON = "no person noun"
PRONOUN = "pronoun the slots lack"
SPANS = "attribute span inside a word"
LENGTH = f"shorter than {MIN_WORDS} or longer than {MAX_WORDS} words"
ATTRIBUTE_WORD = "attribute word outside a slot"
OUTSIDE_SCHEMA = "names an attribute outside the schema"
MODIFIED_SLOT = "a word modifies a slot"
ITEM_CONTEXT = "words that fit only some values"
INVALID = "not a valid library sentence"
UNGRAMMATICAL = "does not refill grammatically"
ROUND_TRIP = "round trip fails"
DUPLICATE = "duplicate"
NEAR_DUPLICATE = "near-duplicate"
MASKING_REASONS = (UNUSABLE, NEGATION, UNRESOLVED, GROUP_TWICE, SEVERAL_PEOPLE, NO_PERSON, PRONOUN, SPANS)
CHECK_REASONS = (
    LENGTH,
    ATTRIBUTE_WORD,
    OUTSIDE_SCHEMA,
    MODIFIED_SLOT,
    ITEM_CONTEXT,
    INVALID,
    UNGRAMMATICAL,
    ROUND_TRIP,
    DUPLICATE,
    NEAR_DUPLICATE,
)

# A person's age and build: no schema group holds them (EXTRA_ATTRIBUTE_WORDS), and right before a person noun
# the word is dropped rather than the sentence (PERSON_ADJECTIVES).
AGE_AND_BUILD = (
    "young",
    "younger",
    "old",
    "older",
    "elderly",
    "aged",
    "middle-aged",
    "teenage",
    "adult",
    "tall",
    "short",
    "thin",
    "slim",
    "skinny",
    "slender",
    "heavy",
    "heavyset",
    "overweight",
    "fat",
    "chubby",
    "plump",
)
# What people are said to wear or have that the schema has no group for: a sentence naming one would say
# it of every person it is filled for.
EXTRA_ATTRIBUTE_WORDS = frozenset(
    [
        "glasses",
        "sunglasses",
        "spectacles",
        "eyeglasses",
        "goggles",
        "hat",
        "hats",
        "cap",
        "caps",
        "beanie",
        "helmet",
        "hood",
        "hoodless",
        "scarf",
        "scarves",
        "tie",
        "bowtie",
        "belt",
        "socks",
        "stockings",
        "gloves",
        "mittens",
        "watch",
        "bracelet",
        "necklace",
        "earrings",
        "earring",
        "jewelry",
        "jewellery",
        "ring",
        "mask",
        "headphones",
        "earphones",
        "headband",
        "hairband",
        "headscarf",
        "hijab",
        "veil",
        "uniform",
        "apron",
        "badge",
        "lanyard",
        "bike",
        "bicycle",
        "scooter",
        "motorcycle",
        "motorbike",
        "skateboard",
        "stroller",
        "pram",
        "cart",
        "wheelchair",
        "dog",
        "child",
        "kid",
        "baby",
        "cane",
        "crutch",
        "crutches",
        "bottle",
        "cup",
        "book",
        "books",
        "box",
        "paper",
        "papers",
        "folder",
        "camera",
        "cigarette",
        "food",
        "drink",
        "briefcase",
        "basket",
        "sack",
        "pouch",
        "wallet",
        "keys",
        "key",
        "tablet",
        "laptop",
        "newspaper",
        "flowers",
        "beard",
        "mustache",
        "moustache",
        "tattoo",
        "tattoos",
        "bald",
        "bangs",
        "fringe",
        "braid",
        "braids",
        "pigtails",
        "dreadlocks",
        "logo",
        "logos",
        "graphic",
        "graphics",
        "print",
        "prints",
        "pattern",
        "patterns",
        "stripes",
        "stripe",
        "dots",
        "dot",
        "design",
        "designs",
        "letters",
        "letter",
        "writing",
        "words",
        "picture",
        "pictures",
        "cartoon",
        "sleeves",
        "sleeve",
        "collar",
        "buttons",
        "zipper",
        "pocket",
        "pockets",
        "hem",
        "fur",
        "lace",
        "sequins",
        "gold",
        "silver",
        "multicolored",
        "multicoloured",
        "multi-colored",
        "colorful",
        "colourful",
        "camouflage",
        "camo",
        "metallic",
        "transparent",
        "rainbow",
        "teenager",
        "teen",
        "muscular",
        "pregnant",
        *AGE_AND_BUILD,
    ]
)
# Dropped before a person noun instead: "a young man" -> "a {gender}".
PERSON_ADJECTIVES = frozenset(
    [
        *AGE_AND_BUILD,
        "little",
        "small",
        "big",
        "large",
        "bald",
        "asian",
    ]
)
PERSON_NOUNS = frozenset({"person", "pedestrian", "individual"})
PLURAL_PEOPLE = frozenset({"men", "women", "guys", "boys", "girls", "ladies", "gentlemen", "people", "persons"})
# Words that may stand right before a group slot (besides slots, punctuation, verbs and -ing forms).
BEFORE_SLOT = frozenset(
    [
        "in",
        "with",
        "of",
        "on",
        "over",
        "under",
        "underneath",
        "beneath",
        "above",
        "below",
        "and",
        "or",
        "plus",
        "also",
        "both",
        "either",
        "into",
        "from",
        "by",
        "at",
        "to",
        "while",
        "but",
        "then",
        "as",
        "like",
        "inside",
        "through",
        "atop",
        "alongside",
        "beside",
        "behind",
        "near",
        "around",
        "across",
        "along",
        "including",
        "wears",
        "wear",
        "wore",
        "worn",
        "carries",
        "carry",
        "carried",
        "holds",
        "hold",
        "held",
        "has",
        "have",
        "had",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "pulls",
        "pull",
        "dons",
        "dressed",
        "clad",
        "sports",
        "the",
        "this",
        "that",
        "its",
        "my",
        "your",
        "'s",
    ]
)
ADVERBS = frozenset(
    {
        "also",
        "always",
        "only",
        "just",
        "still",
        "then",
        "now",
        "clearly",
        "probably",
        "both",
        "apparently",
        "currently",
        "even",
        "often",
        "usually",
        "seemingly",
    }
)
# Verbs captions use with a pronoun subject; their -s, past and base forms become {v:...}.
VERBS = (
    "be",
    "have",
    "do",
    "wear",
    "carry",
    "hold",
    "walk",
    "look",
    "seem",
    "appear",
    "pull",
    "push",
    "drag",
    "sport",
    "don",
    "stand",
    "hang",
    "talk",
    "use",
    "put",
    "keep",
    "go",
    "come",
    "cross",
    "wait",
    "ride",
    "grip",
    "clutch",
    "bring",
    "tow",
    "sling",
    "wheel",
    "roll",
    "match",
    "step",
    "move",
    "head",
    "run",
    "read",
    "check",
    "turn",
    "face",
    "pass",
    "leave",
    "enter",
    "stroll",
    "make",
    "take",
    "get",
    "pair",
    "complete",
    "finish",
    "accessorize",
    "dress",
    "like",
    "love",
    "prefer",
    "choose",
    "stride",
    "hurry",
    "rush",
    "sit",
    "lean",
    "smile",
    "speak",
    "chat",
    "glance",
    "watch",
    "text",
    "browse",
)
_IRREGULAR = {
    "is": "be",
    "are": "be",
    "was": "be",
    "were": "be",
    "am": "be",
    "has": "have",
    "had": "have",
    "does": "do",
    "did": "do",
    "wore": "wear",
    "held": "hold",
    "stood": "stand",
    "went": "go",
    "came": "come",
    "kept": "keep",
    "brought": "bring",
    "took": "take",
    "got": "get",
    "made": "make",
    "rode": "ride",
    "ran": "run",
    "left": "leave",
    "sat": "sit",
    "hung": "hang",
    "spoke": "speak",
}
_OBJECT_FOLLOWERS = frozenset(
    [
        "and",
        "or",
        "but",
        "with",
        "in",
        "on",
        "at",
        "to",
        "from",
        "by",
        "for",
        "as",
        "while",
        "when",
        "who",
        "that",
        "which",
        "is",
        "was",
        "has",
        "had",
        "while",
        "because",
        "so",
        "than",
        "then",
        "too",
        "also",
        "into",
        "onto",
        "over",
        "under",
        "around",
        "behind",
        "beside",
        "near",
        "across",
        "along",
    ]
)
# Words around a belongings slot that fit some values only: "on his back" (a backpack, not an umbrella),
# "pulling" (a suitcase), "talks on" (a phone).
_BELONGINGS = r"\{(?:a |pair )?belongings\}"
_ITEM_CONTEXT = re.compile(
    _BELONGINGS + r"\s+(?:on|over|across|under)\s+(?:\{their\}|the)\s+(?:back|shoulders?|head|arm|ear)\b"
    r"|(?:\bpull\w*|\bdrag\w*|\bwheel\w*|\btow\w*|\broll\w*|\{v:(?:pull|drag|wheel|tow|roll)\}"
    r"|\btalk\w*\s+on|\bchat\w*\s+on|\{v:(?:talk|chat)\}\s+on|\bopen\w*|\bunder)\s+(?:\{their\}\s+)?" + _BELONGINGS,
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*|[^\sA-Za-z0-9]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_TOKENS = re.compile(r"\{[^{}]*\}|[a-z0-9]+(?:['-][a-z0-9]+)*")


def _verb_forms() -> dict[str, str]:
    """Present -s, regular past and base forms of VERBS, and the irregular forms -> the base form."""
    forms = {}
    irregular_bases = set(_IRREGULAR.values()) | {"put", "read", "sling"}
    for base in VERBS:
        forms[base] = base
        forms[conjugate(base, False)] = base
        if base not in irregular_bases:
            past = (
                base[:-1] + "ied"
                if base.endswith("y") and base[-2] not in "aeiou"
                else base + ("d" if base.endswith("e") else "ed")
            )
            forms[past] = base
    forms.update(_IRREGULAR)
    return forms


VERB_FORMS = _verb_forms()
_SINGULAR_FORMS = frozenset(f for f, base in VERB_FORMS.items() if f != base and f.endswith("s"))

_GRAMMAR = [
    re.compile(r"\b(a|an|the|his|her|their|this|that)\s+(a|an|the|his|her|their)\b", re.IGNORECASE),
    re.compile(r"\ba\s+[aeiou]", re.IGNORECASE),
    re.compile(r"\ban\s+[^aeiou\s]", re.IGNORECASE),
    re.compile(r"\b(\w+)\s+\1\b", re.IGNORECASE),
    re.compile(
        r"\bthey\s+(?:(?:" + "|".join(sorted(ADVERBS)) + r")\s+)?(?:is|was|has|does|isn't|wasn't|doesn't|"
        r"hasn't|" + "|".join(sorted(_SINGULAR_FORMS - {"is", "was", "has", "does"})) + r")\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?:he|she)\s+(?:(?:" + "|".join(sorted(ADVERBS)) + r")\s+)?(?:are|were|have|do|aren't|weren't|"
        r"haven't|don't)\b",
        re.IGNORECASE,
    ),
    re.compile(r"\s[,.;:!?]|,,|\.\.|[,;:]\s*[.;]|\s\s"),
]


@dataclass
class Token:
    text: str
    space: bool  # a space before it
    start: int = -1
    end: int = -1
    slot: bool = False


@dataclass
class MiningReport:
    """What became of the captions: every caption read is kept or dropped with one reason."""

    read: int = 0
    masked: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    addenda_mined: Counter = field(default_factory=Counter)  # group -> addenda taken from kept sentences
    nothing_mined: int = 0
    from_bundled: list[str] = field(default_factory=list)  # what the bundled library had to supply


@dataclass(frozen=True)
class MinedLibrary:
    sentences: dict[str, list[str]]  # section -> masked sentences
    addenda: dict[str, list[str]]
    nothing: list[str]
    report: MiningReport

    @property
    def count(self) -> int:
        """Mined sentences (not counting any section the bundled library supplied)."""
        return self.report.kept

    def data(self) -> dict:
        return {"sentences": self.sentences, "addenda": self.addenda, "nothing": self.nothing}


class _Rejected(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---- 1. reading ------------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Quotes, dashes and spaces made plain; "he's" -> "he is"; _Rejected for braces or control characters."""
    text = (
        text.replace("\u2019", "'")
        .replace("\u2018", "'")
        .replace("\u201c", '"')
        .replace("\u201d", '"')
        .replace("\u2013", "-")
        .replace("\u2014", "-")
        .replace("`", "'")
    )
    if "{" in text or "}" in text or any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        raise _Rejected(UNUSABLE)
    text = re.sub(r"\s+", " ", text.replace('"', " ")).strip()
    text = re.sub(r"\b([Hh]e|[Ss]he)'s\b", r"\1 is", text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    if not text:
        raise _Rejected(UNUSABLE)
    return text


def sentences_of(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``."""
    bounds, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        bounds.append((start, match.start()))
        start = match.end()
    bounds.append((start, len(text)))
    return bounds


def _says_nothing(text: str, start: int, end: int, mentions: Sequence[AttributeMention]) -> bool:
    inside = [m for m in mentions if start <= m.start < end]
    return bool(NOTHING_CARRIED.search(text[start:end])) or any(
        m.group == "belongings" and (m.item == NOTHING or negated(text, m)) for m in inside
    )


# ---- 2. masking ------------------------------------------------------------------------------------------


def _tokens(text: str) -> list[Token]:
    tokens: list[Token] = []
    for match in _WORD.finditer(text):
        word, start = match.group(0), match.start()
        space = start > 0 and text[start - 1].isspace()
        lower = word.lower()
        for suffix in ("n't", "'s"):
            if lower.endswith(suffix) and len(word) > len(suffix):
                cut = len(word) - len(suffix)
                tokens.append(Token(word[:cut], space, start, start + cut))
                tokens.append(Token(word[cut:], False, start + cut, match.end()))
                break
        else:
            tokens.append(Token(word, space, start, match.end()))
    return tokens


def _replace_mentions(tokens: list[Token], mentions: Sequence[AttributeMention], nothing_ok: bool) -> list[Token]:
    """One slot token per mention (articles absorbed); gender mentions become {gender}."""
    out: list[Token] = []
    i = 0
    by_start = {m.start: m for m in mentions}
    while i < len(tokens):
        token = tokens[i]
        mention = by_start.get(token.start)
        if mention is None:
            if any(m.start < token.start < m.end for m in mentions):
                raise _Rejected(SPANS)
            out.append(token)
            i += 1
            continue
        j = i
        while j < len(tokens) and tokens[j].end <= mention.end:
            j += 1
        if tokens[j - 1].end != mention.end:
            raise _Rejected(SPANS)
        space = token.space
        if mention.group == "gender":
            if mention.text.lower() in PLURAL_PEOPLE:
                raise _Rejected(SEVERAL_PEOPLE)
            slot = "{gender}"
        elif mention.item == NOTHING and nothing_ok:
            slot = "{belongings}"
        else:
            before = [t.text.lower() for t in out[-3:]]
            if before[-3:] == ["a", "pair", "of"]:
                space = out[-3].space
                del out[-3:]
                slot = f"{{pair {mention.group}}}" if mention.group == "shoes" else f"{{a {mention.group}}}"
            elif before and before[-1] in ("a", "an"):
                space = out[-1].space
                del out[-1]
                slot = f"{{a {mention.group}}}"
            elif before and before[-1] in ("the", "his", "her", "their", "this", "that", "its", "my", "'s"):
                slot = f"{{{mention.group}}}"
            else:
                slot = f"{{a {mention.group}}}"
        out.append(Token(slot, space, token.start, mention.end, slot=True))
        i = j
    return out


def _person(tokens: list[Token], allow_none: bool) -> list[Token]:
    """Person nouns -> {gender} (age and build words before one dropped); exactly one {gender} unless
    ``allow_none``; a leading He/She becomes "The {gender}"."""
    out: list[Token] = []
    for token in tokens:
        is_person = token.slot and token.text == "{gender}" or not token.slot and token.text.lower() in PERSON_NOUNS
        if is_person and out and out[-1].text == "{gender}":
            continue  # "female pedestrian": one person noun
        if is_person:
            space = token.space
            while out and not out[-1].slot and out[-1].text.lower() in PERSON_ADJECTIVES:
                space = out.pop().space
            if out and not out[-1].slot and out[-1].text.lower() == "an":
                out[-1].text = out[-1].text[:1]  # "An older man" -> "A {gender}"
            out.append(Token("{gender}", space, token.start, token.end, slot=True))
        else:
            out.append(token)
    count = sum(t.text == "{gender}" for t in out)
    if count > 1:
        raise _Rejected(SEVERAL_PEOPLE)
    if count == 0 and not allow_none:
        first = out[0].text.lower() if out else ""
        if first not in ("he", "she"):
            raise _Rejected(NO_PERSON)
        out[0:1] = [Token("The", out[0].space), Token("{gender}", True, slot=True)]
    return out


def _pronouns(tokens: list[Token]) -> list[Token]:
    for k, token in enumerate(tokens):
        if token.slot:
            continue
        word = token.text.lower()
        if word in ("he", "she", "they"):
            token.text, token.slot = "{they}", True
        elif word in ("him", "them"):
            token.text, token.slot = "{them}", True
        elif word in ("his", "their"):
            token.text, token.slot = "{their}", True
        elif word == "her":
            after = tokens[k + 1] if k + 1 < len(tokens) else None
            possessive = after is not None and (
                after.slot or after.text[0].isalnum() and after.text.lower() not in _OBJECT_FOLLOWERS
            )
            token.text, token.slot = ("{their}" if possessive else "{them}"), True
        elif word in ("hers", "himself", "herself", "themselves", "theirs", "themself"):
            raise _Rejected(PRONOUN)
    return tokens


def _singular_base(word: str) -> str | None:
    """A verb's base form from its -s form, by the spelling rules ('wears' -> 'wear')."""
    if len(word) < 3 or not word.endswith("s") or word.endswith("ss") or not word.isalpha():
        return None
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    return word[:-1]


def _verbs(tokens: list[Token]) -> list[Token]:
    """A verb whose subject is {they} -> {v:base}: right after {they} (an adverb may stand between), or
    coordinated with such a verb ("and carries")."""
    they_subject = False
    previous = ""  # the previous token that is not an adverb
    for token in tokens:
        text = token.text
        if token.slot:
            if text == "{they}":
                they_subject = True
            elif text == "{gender}":
                they_subject = False
            if not text.startswith("{v:"):
                previous = text
            continue
        word = text.lower()
        if word in ".!?;":
            they_subject = False
        if word in ADVERBS:
            continue
        base = None
        if previous == "{they}":
            base = VERB_FORMS.get(word) or _singular_base(word)
        elif they_subject and previous in ("and", "or", "but", ",") and word in VERB_FORMS:
            base = VERB_FORMS[word]
        if base is not None and base.isalpha():
            token.text, token.slot = f"{{v:{base}}}", True
            previous = "{v}"
            continue
        previous = word
    return tokens


def _join(tokens: list[Token]) -> str:
    text = "".join((" " if t.space else "") + t.text for t in tokens).strip()
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"[,;:\s]+$", "", text)
    text = re.sub(r"[!?]$", ".", text)
    if not text.endswith("."):
        text += "."
    return text[0].upper() + text[1:] if text[0].isalpha() else text


def mask(text: str, mentions: Sequence[AttributeMention], *, nothing: bool = False) -> str:
    """A human sentence -> a masked sentence (see the module doc, step 2); _Rejected with the reason.
    ``nothing``: a sentence that says nothing is carried (no person noun; "nothing" -> {belongings})."""
    for m in mentions:
        if nothing and m.group == "belongings" and m.item != NOTHING:
            raise _Rejected(NEGATION)  # "not carrying a bag" would refill as "not carrying a red handbag"
        if m.group != "gender" and m.value is None:
            raise _Rejected(UNRESOLVED)
    groups = [m.group for m in mentions if m.group != "gender"]
    if len(groups) != len(set(groups)):
        raise _Rejected(GROUP_TWICE)
    tokens = _replace_mentions(_tokens(text), mentions, nothing)
    tokens = _verbs(_pronouns(_person(tokens, allow_none=nothing)))
    return _join(tokens)


# ---- 3. checks ---------------------------------------------------------------------------------------------


class _Checker:
    """The checks of a masked sentence against one schema (steps 3 and 4 of the module doc)."""

    def __init__(self, schema: Schema, refills: int) -> None:
        self.schema, self.refills = schema, refills
        self.outside = EXTRA_ATTRIBUTE_WORDS | {d.lower() for d in schema.descriptors}
        self.values = {g: [v for v in schema.group(g).values if v.item != NOTHING] for g in GROUP_SLOTS}
        self.nothing_value = next(v for v in schema.group("belongings").values if v.item == NOTHING)

    def static(self, template: str, kind: str) -> str:
        """Length, loader checks, outside-schema words, slot modifiers; the checked text or _Rejected."""
        words = literal_text(template).split()
        if kind == "sentence" and not MIN_WORDS <= len(sentence_tokens(template)) <= MAX_WORDS:
            raise _Rejected(LENGTH)
        try:
            if kind == "sentence":
                check_sentence(template, SOURCE, "sentence", self.schema)
            elif kind == "nothing":
                check_nothing_sentence(template, SOURCE, "nothing", self.schema)
            else:
                check_addendum(template, SOURCE, "addendum", kind, self.schema)
        except TemplateError as exc:
            message = str(exc)
            raise _Rejected(
                ATTRIBUTE_WORD
                if "must come from a slot" in message
                else GROUP_TWICE
                if "appears twice" in message
                else INVALID
            ) from None
        plain = {w.strip(".,;:!?'\"()").lower() for w in words}
        if plain & self.outside:
            raise _Rejected(OUTSIDE_SCHEMA)
        if _ITEM_CONTEXT.search(template):
            raise _Rejected(ITEM_CONTEXT)
        tokens = re.findall(r"\{[^{}]*\}|'s\b|[A-Za-z0-9]+(?:['-][A-Za-z0-9]+)*|[^\sA-Za-z0-9]", template)
        for before, token in zip(tokens, tokens[1:]):
            if token.startswith("{") and parse_slots(token)[0].kind == "group":
                word = before.lower()
                if not (
                    before.startswith("{")
                    or not before[0].isalnum()
                    or word in BEFORE_SLOT
                    or word in VERB_FORMS
                    or word.endswith("ing")
                ):
                    raise _Rejected(MODIFIED_SLOT)
        return template

    def fills(self, template: str, kind: str, seed: int) -> list[tuple[str, str, dict]]:
        """(text, gender, group -> value phrase) for each refill of ``template``."""
        rng = random.Random(stable_int(template, seed))
        groups = sorted(groups_of(template))
        out = []
        for n in range(self.refills):
            gender = ("man", "woman", UNKNOWN)[n % 3]
            person = person_for(gender, ("person", "pedestrian")[n // 3 % 2])
            if kind == "nothing":
                values = {"belongings": self.nothing_value} if groups else {}
            else:
                values = {g: rng.choice(self.values[g]) for g in groups}
            text = tidy(fill(template, FillContext(person, values), person.plural_pronoun))
            out.append((text, gender, {g: v.phrase for g, v in values.items()}))
        return out

    @staticmethod
    def grammatical(text: str) -> bool:
        return not any(rule.search(text) for rule in _GRAMMAR)

    @staticmethod
    def round_trip(gender: str, values: dict, mentions: Sequence[AttributeMention]) -> bool:
        for m in mentions:
            if m.group == "gender":
                if gender == UNKNOWN or (m.value is not None and m.value != gender):
                    return False
            elif m.group not in values or (m.value is not None and m.value != values[m.group]):
                return False
        return all(any(m.value == v for m in mentions) for v in values.values())


# ---- 5. near-duplicates --------------------------------------------------------------------------------------


def sentence_tokens(template: str) -> tuple[str, ...]:
    """Words and slots, lower case, punctuation dropped: what "the same sentence" is compared on."""
    return tuple(_TOKENS.findall(template.lower()))


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a or b else 1.0


class NearDuplicates:
    """Kept token sets, indexed by their prefix under a fixed token order (prefix filtering: two sets with
    Jaccard >= t share a token among the first |A| - ceil(t|A|) + 1 of each), so a new sentence is compared
    only with kept ones that could be that close."""

    def __init__(self, threshold: float, order: dict[str, int] | None = None) -> None:
        if not 0 < threshold <= 1:
            raise InputError(f"the near-duplicate threshold is a Jaccard similarity in (0, 1], got {threshold}")
        self.threshold, self.order = threshold, order or {}
        self.kept: list[frozenset[str]] = []
        self.index: dict[tuple, list[int]] = {}

    def _prefix(self, tokens: frozenset[str]) -> list[str]:
        ordered = sorted(tokens, key=lambda t: (self.order.get(t, 0), t))
        return ordered[: len(ordered) - ceil(self.threshold * len(ordered)) + 1]

    def near(self, bucket: object, tokens: frozenset[str]) -> bool:
        """Whether a kept set of the same bucket is at least ``threshold`` similar; else keep this one."""
        seen: set[int] = set()
        for token in self._prefix(tokens):
            for k in self.index.get((bucket, token), ()):
                if k not in seen:
                    seen.add(k)
                    if jaccard(tokens, self.kept[k]) >= self.threshold:
                        return True
        self.kept.append(tokens)
        for token in self._prefix(tokens):
            self.index.setdefault((bucket, token), []).append(len(self.kept) - 1)
        return False


# ---- the whole -------------------------------------------------------------------------------------------------


@dataclass
class _Candidate:
    template: str
    kind: str  # "sentence", "nothing" or a group (an addendum)


def section_name(groups: Iterable[str]) -> str:
    code = "".join(GROUP_CODES[g] for g in GROUP_SLOTS if g in set(groups))
    return code or NO_GROUP_SECTION


def _section_order() -> list[str]:
    """Sections as templates/sentences.yaml orders them: more groups first, then in group order."""
    names = []
    for size in range(len(GROUP_SLOTS), 0, -1):
        names += [section_name(c) for c in combinations(GROUP_SLOTS, size)]
    return names + [NO_GROUP_SECTION]


def _split_nothing(text: str, mentions: list[AttributeMention]) -> tuple[str, list[str]]:
    """(the caption without its sentences that say nothing is carried, those sentences); _Rejected when
    the first sentence says it or another attribute is negated."""
    main, nothing = [], []
    for k, (start, end) in enumerate(sentences_of(text)):
        if _says_nothing(text, start, end, mentions):
            if k == 0:
                raise _Rejected(NEGATION)
            nothing.append(text[start:end])
        else:
            if any(start <= m.start < end and m.group != "gender" and negated(text, m) for m in mentions):
                raise _Rejected(NEGATION)
            main.append(text[start:end])
    return " ".join(main), nothing


def _later_sentences(template: str) -> Iterator[str]:
    """The sentences of a masked template after its first, each starting with a pronoun slot."""
    for start, end in sentences_of(template)[1:]:
        part = template[start:end]
        if part.startswith(("{they}", "{their}")):
            yield part


class TemplateMiner:
    """Mines a sentence library from human captions with one schema (build once; ``mine`` per corpus)."""

    def __init__(
        self,
        schema: Schema | None = None,
        jaccard_threshold: float = DEFAULT_JACCARD,
        refills: int = DEFAULT_REFILLS,
        seed: int = 0,
        batch_size: int = 512,
    ) -> None:
        if refills < 1:
            raise ValueError(f"refills must be at least 1, got {refills}")
        self.schema = schema if schema is not None else load_schema()
        self.threshold, self.seed, self.batch_size = jaccard_threshold, seed, batch_size
        NearDuplicates(jaccard_threshold)  # checks the threshold now
        self.checker = _Checker(self.schema, refills)

    def _masked(self, captions: list[str], report: MiningReport) -> list[_Candidate]:
        """Each caption's masked sentence, then the nothing sentences cut off the captions."""
        normal: list[str] = []
        for text in captions:
            try:
                normal.append(normalise(text))
            except _Rejected as rejected:
                report.dropped[rejected.reason] += 1
        split: list[tuple[str, list[AttributeMention] | None]] = []
        cut_off: list[str] = []
        for text, mentions in zip(normal, extract_attributes_batch(normal, self.schema, self.batch_size)):
            try:
                main, nothing = _split_nothing(text, mentions)
            except _Rejected as rejected:
                report.dropped[rejected.reason] += 1
                continue
            split.append((main, None if nothing else mentions))
            cut_off += nothing
        # A caption that lost a sentence is read again, so the spans match its text.
        again = iter(
            extract_attributes_batch(
                [main for main, found in split if found is None] + cut_off, self.schema, self.batch_size
            )
        )
        split = [(main, next(again) if found is None else found) for main, found in split]
        out: list[_Candidate] = []
        for main, found in split:
            try:
                out.append(_Candidate(mask(main, found), "sentence"))
                report.masked += 1
            except _Rejected as rejected:
                report.dropped[rejected.reason] += 1
        for sentence, found in zip(cut_off, again):
            with contextlib.suppress(_Rejected):  # a nothing sentence we cannot use costs its caption nothing
                out.append(_Candidate(mask(sentence, found, nothing=True), "nothing"))
        return out

    def _valid(self, candidates: list[_Candidate]) -> list[str | None]:
        """Per candidate: None when it passes steps 3 and 4, else the reason."""
        reasons: list[str | None] = []
        fills: list[tuple[int, str, str, dict]] = []
        for k, candidate in enumerate(candidates):
            try:
                self.checker.static(candidate.template, candidate.kind)
                reasons.append(None)
            except _Rejected as rejected:
                reasons.append(rejected.reason)
                continue
            for text, gender, values in self.checker.fills(candidate.template, candidate.kind, self.seed):
                fills.append((k, text, gender, values))
        readings = extract_attributes_batch([text for _, text, _, _ in fills], self.schema, self.batch_size)
        for (k, text, gender, values), mentions in zip(fills, readings):
            if reasons[k] is not None:
                continue
            if not self.checker.grammatical(text):
                reasons[k] = UNGRAMMATICAL
            elif (
                not self.checker.round_trip(gender, values, mentions)
                or candidates[k].kind == "nothing"
                and not (NOTHING_CARRIED.search(text) or any(m.item == NOTHING for m in mentions))
            ):
                reasons[k] = ROUND_TRIP
        return reasons

    def mine(self, captions: Iterable[str], progress: Callable[[int], object] | None = None) -> MinedLibrary:
        """The library mined from ``captions``; ``progress(n)`` is told of every ``n`` captions masked and
        checked (deduplication, at the end, is quick)."""
        report = MiningReport()
        candidates: list[_Candidate] = []
        reasons: list[str | None] = []
        chunk: list[str] = []
        for text in (*captions, None):
            if text is not None:
                chunk.append(text)
            if chunk and (text is None or len(chunk) >= CHUNK):
                report.read += len(chunk)
                masked = self._masked(chunk, report)
                candidates += masked
                reasons += self._valid(masked)
                if progress is not None:
                    progress(len(chunk))
                chunk = []

        valid = [c for c, r in zip(candidates, reasons) if r is None]
        frequency = Counter(t for c in valid for t in set(sentence_tokens(c.template)))
        order = {t: n for t, n in frequency.items()}
        near = NearDuplicates(self.threshold, order)
        exact: set[tuple] = set()
        sections: dict[str, list[str]] = {}
        nothing: list[str] = []
        kept_templates: list[str] = []
        for candidate, reason in zip(candidates, reasons):
            kind = candidate.kind
            if reason is None:
                tokens = sentence_tokens(candidate.template)
                bucket = (kind, section_name(groups_of(candidate.template)))
                if (bucket, tokens) in exact:
                    reason = DUPLICATE
                elif near.near(bucket, frozenset(tokens)):
                    reason = NEAR_DUPLICATE
                exact.add((bucket, tokens))
            if kind == "nothing":
                if reason is None:
                    nothing.append(candidate.template)
                continue
            if reason is not None:
                report.dropped[reason] += 1
                continue
            report.kept += 1
            kept_templates.append(candidate.template)
            sections.setdefault(section_name(groups_of(candidate.template)), []).append(candidate.template)
        report.nothing_mined = len(nothing)
        addenda = self._addenda(kept_templates, report)
        return self._complete(sections, addenda, nothing, report)

    def _addenda(self, templates: list[str], report: MiningReport) -> dict[str, list[str]]:
        found: list[_Candidate] = []
        for template in templates:
            for part in _later_sentences(template):
                groups = groups_of(part)
                kinds = [s.kind for s in parse_slots(part)]
                if len(groups) == 1 and "gender" not in kinds:
                    found.append(_Candidate(part, next(iter(groups))))
        addenda: dict[str, list[str]] = {}
        for candidate, reason in zip(found, self._valid(found)):
            if reason is None and candidate.template not in addenda.get(candidate.kind, []):
                addenda.setdefault(candidate.kind, []).append(candidate.template)
                report.addenda_mined[candidate.kind] += 1
        return addenda

    def _complete(
        self, sections: dict[str, list[str]], addenda: dict[str, list[str]], nothing: list[str], report: MiningReport
    ) -> MinedLibrary:
        """Supply from the bundled library what the captions did not give, so the library loads."""
        bundled: SentenceLibrary = load_library(None, self.schema)
        if NO_GROUP_SECTION not in sections:
            sections[NO_GROUP_SECTION] = [s.text for s in bundled.sentences if not s.groups]
            report.from_bundled.append(f"sentences.{NO_GROUP_SECTION} ({len(sections[NO_GROUP_SECTION])})")
        for group in GROUP_SLOTS:
            if group not in addenda:
                addenda[group] = list(bundled.addenda[group])
                report.from_bundled.append(f"addenda.{group} ({len(addenda[group])})")
        if not nothing and bundled.nothing:
            nothing = list(bundled.nothing)
            report.from_bundled.append(f"nothing ({len(nothing)})")
        order = _section_order()
        ordered = {name: sections[name] for name in order if name in sections}
        return MinedLibrary(ordered, {g: addenda[g] for g in GROUP_SLOTS}, nothing, report)


def mine_templates(
    captions: Iterable[str],
    schema: Schema | None = None,
    jaccard_threshold: float = DEFAULT_JACCARD,
    refills: int = DEFAULT_REFILLS,
    seed: int = 0,
) -> MinedLibrary:
    """A sentence library mined from human captions; see the module doc."""
    return TemplateMiner(schema, jaccard_threshold, refills, seed).mine(captions)


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def library_yaml(mined: MinedLibrary, header: Sequence[str] = ()) -> str:
    """The library as YAML in templates/sentences.yaml's layout, ``header`` lines as comments on top."""
    lines = [f"# {line}".rstrip() for line in header]
    lines += ["", "sentences:"]
    for name, items in mined.sentences.items():
        lines.append(f"  {name}:")
        lines += [f"    - {_quoted(t)}" for t in items]
    lines += ["", "addenda:"]
    for group, items in mined.addenda.items():
        lines.append(f"  {group}:")
        lines += [f"    - {_quoted(t)}" for t in items]
    if mined.nothing:
        lines += ["", "nothing:"]
        lines += [f"  - {_quoted(t)}" for t in mined.nothing]
    return "\n".join(lines) + "\n"
