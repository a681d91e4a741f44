"""Attribute labels mined from human captions, the PLIP paper's way: no human attribute labelling.

Each caption is read by the schema's matchers (spac.language): every mention gives a group, an item and
maybe a colour. Then, per image (all of its captions together):

- **Negation.** A mention governed by a negation ("no bag", "not carrying a bag", "without a backpack",
  "doesn't have a bag": the negating word, then at most four of ``NEGATION_FILLERS`` before the mention) is
  dropped; a negated belonging, or "not carrying anything", is a vote for ``nothing``.
- **Gender** from gendered words: the schema's gender nouns (man, woman, lady, boy, girl, ...) and the
  pronouns he/him/his/himself and she/her/hers/herself, counted over all captions; the majority wins, a
  tie is ``unknown``.
- **Every other group, agreement first, then the more specific phrase.** The item: the specific item
  (not a generic one such as "top" or "bag") named by the most captions; on a tie, the earlier one in
  ``TIE_BREAK`` (outer layers before inner ones: a "white shirt under a black jacket" is a jacket; a
  specific word before a broad one: "jeans" before "pants"); then the first mentioned. A generic item only
  when no caption names a specific one; for belongings "phone" and "nothing" only when nothing else is
  carried. The colour: the colour most captions give that item or the group's generic item, a colour
  said of the item itself winning a tie, then the first. So "black jacket" beats "jacket" (it adds the
  colour) and "black top" (it names the item), and "black top" + "jacket" give "black jacket".
- The value is the schema phrase of (item, colour); a colour outside the item's palette falls back to the
  item's bare value ("short purple hair" -> "short hair"); nothing resolvable is ``unknown``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from spac.attributes import GROUP_ORDER, UNKNOWN, Attributes, Schema, load_schema
from spac.language import AttributeMention, extract_attributes_batch

MALE_PRONOUNS = frozenset({"he", "him", "his", "himself"})
FEMALE_PRONOUNS = frozenset({"she", "her", "hers", "herself"})
NEGATIONS = frozenset({"no", "not", "without", "never", "nor", "neither"})
# Words that may stand between a negation and the thing it negates: "not carrying a bag", "no visible bag".
NEGATION_FILLERS = frozenset(
    {
        "a",
        "an",
        "any",
        "the",
        "his",
        "her",
        "their",
        "visible",
        "obvious",
        "seem",
        "seems",
        "to",
        "be",
        "is",
        "are",
        "appear",
        "appears",
        "carry",
        "carries",
        "carrying",
        "hold",
        "holds",
        "holding",
        "have",
        "has",
        "having",
        "wear",
        "wears",
        "wearing",
        "got",
        "with",
        "bring",
        "brings",
        "bringing",
        "or",
    }
)
MAX_FILLERS = 4
NOTHING_CARRIED = re.compile(
    r"(?:\bnot|n['\u2019]t|\bnever|\bwithout)\s+(?:\w+\s+){0,4}(?:anything|any\s+belongings)\b|\bempty[- ]handed\b"
    r"|\bnothing\s+in\s+(?:his|her|their|the|both)?\s*hands?\b|\bhands\s+are\s+empty\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z]+n't|[a-z]+")

# Item preference on a vote tie, per group (items not listed come after, in order of first mention).
TIE_BREAK: dict[str, tuple[str, ...]] = {
    "hair": ("ponytail", "curly hair", "long hair", "short hair"),
    "upper": ("down jacket", "coat", "jacket", "hoodie", "sweater", "vest", "polo shirt", "blouse", "t-shirt", "shirt"),
    "lower": ("jeans", "shorts", "leggings", "sweatpants", "long skirt", "skirt", "dress", "trousers"),
    "shoes": ("high heels", "boots", "sandals", "sneakers", "leather shoes", "canvas shoes"),
    "belongings": ("suitcase", "backpack", "shoulder bag", "handbag", "umbrella"),
}
# Belongings said in passing: chosen only when nothing else is carried.
WEAK_BELONGINGS = ("phone", "nothing")


@dataclass(frozen=True)
class _Vote:
    caption: int
    position: int
    item: str
    colour: str | None


def negated(text: str, mention: AttributeMention) -> bool:
    """Whether a negation governs ``mention``: a negating word, then at most MAX_FILLERS filler words."""
    clause = re.split(r"[.;:,!?]", text[: mention.start].lower().replace("\u2019", "'"))[-1]
    words = _WORD.findall(clause)
    for fillers, word in enumerate(reversed(words)):
        if word in NEGATIONS or word.endswith("n't"):
            return True
        if word not in NEGATION_FILLERS or fillers >= MAX_FILLERS:
            return False
    return False


def _gender(captions: Sequence[str], mentions: Sequence[Sequence[AttributeMention]]) -> str:
    votes = Counter(m.value for found in mentions for m in found if m.group == "gender" and m.value)
    for text in captions:
        words = _WORD.findall(text.lower())
        votes["man"] += sum(w in MALE_PRONOUNS for w in words)
        votes["woman"] += sum(w in FEMALE_PRONOUNS for w in words)
    if votes["man"] == votes["woman"]:
        return UNKNOWN
    return "man" if votes["man"] > votes["woman"] else "woman"


class LabelMiner:
    """Mines the six labels of an image from its captions with one schema (build once, reuse)."""

    def __init__(self, schema: Schema | None = None) -> None:
        self.schema = schema if schema is not None else load_schema()
        self._values = {(g.name, v.item, v.colour): v.phrase for g in self.schema.groups for v in g.values}
        self._generic = {(g.name, i.name) for g in self.schema.groups for i in g.items if i.generic}
        self._generic_item = {g.name: next((i.name for i in g.items if i.generic), None) for g in self.schema.groups}

    def labels(
        self, captions: Sequence[str], mentions: Sequence[Sequence[AttributeMention]] | None = None
    ) -> Attributes:
        """The six labels of one image from its captions (``mentions``: their extract_attributes, if known)."""
        if mentions is None:
            mentions = extract_attributes_batch(list(captions), self.schema) if captions else []
        votes: dict[str, list[_Vote]] = {g: [] for g in GROUP_ORDER[1:]}
        nothing: list[_Vote] = []
        for c, (text, found) in enumerate(zip(captions, mentions)):
            for p, m in enumerate(found):
                if m.group == "gender":
                    continue
                if negated(text, m):
                    if m.group == "belongings":
                        nothing.append(_Vote(c, p, "nothing", None))
                    continue
                votes[m.group].append(_Vote(c, p, m.item, m.colour))
            if NOTHING_CARRIED.search(text):
                nothing.append(_Vote(c, len(found), "nothing", None))
        attributes = {"gender": _gender(captions, mentions)}
        for group, group_votes in votes.items():
            if group == "belongings":
                group_votes = group_votes + nothing
            attributes[group] = self._reconcile(group, group_votes)
        return attributes

    def _reconcile(self, group: str, votes: list[_Vote]) -> str:
        if not votes:
            return UNKNOWN
        specific = [v for v in votes if (group, v.item) not in self._generic and v.item in self._items(group)]
        if group == "belongings":
            strong = [v for v in specific if v.item not in WEAK_BELONGINGS]
            if strong:
                specific = strong
            elif any((group, v.item) in self._generic for v in votes):
                specific = []  # "a bag" beats a phone in passing and a "no backpack"
            else:  # a phone before nothing
                specific = [v for v in specific if v.item == WEAK_BELONGINGS[0]] or specific
        if specific:
            item = self._winner(group, specific)
        else:
            item = self._generic_item[group]
            if item is None or not any(v.item == item for v in votes):
                return UNKNOWN
        generic_item = self._generic_item[group]
        said = [v for v in votes if v.colour is not None and v.item in (item, generic_item)]
        colour = None
        if said:
            counts = Counter(self._per_caption(said, key=lambda v: v.colour))
            best = max(counts.values())
            tied = [v for v in said if counts[v.colour] == best]
            tied.sort(key=lambda v: (v.item != item, v.caption, v.position))
            colour = tied[0].colour
        for candidate in (colour, None):
            value = self._values.get((group, item, candidate))
            if value is not None:
                return value
        return UNKNOWN

    def _items(self, group: str) -> set[str]:
        return {i.name for i in self.schema.group(group).items}

    @staticmethod
    def _per_caption(votes: Iterable[_Vote], key) -> Iterator[str]:
        """Each caption votes once for each distinct key it gives."""
        seen = set()
        for v in votes:
            if (v.caption, key(v)) not in seen:
                seen.add((v.caption, key(v)))
                yield key(v)

    def _winner(self, group: str, votes: list[_Vote]) -> str:
        counts = Counter(self._per_caption(votes, key=lambda v: v.item))
        best = max(counts.values())
        order = TIE_BREAK.get(group, ())
        tied = [v for v in votes if counts[v.item] == best]
        tied.sort(key=lambda v: (order.index(v.item) if v.item in order else len(order), v.caption, v.position))
        return tied[0].item


def mine_labels(
    captions_per_image: Iterable[Sequence[str]], schema: Schema | None = None, batch_size: int = 256
) -> Iterator[Attributes]:
    """The labels of each image, in order; captions are read ``batch_size`` images at a time."""
    miner = LabelMiner(schema)
    batch: list[Sequence[str]] = []

    def flush() -> Iterator[Attributes]:
        texts = [t for captions in batch for t in captions]
        found = extract_attributes_batch(texts, miner.schema)
        start = 0
        for captions in batch:
            yield miner.labels(captions, found[start : start + len(captions)])
            start += len(captions)
        batch.clear()

    for captions in captions_per_image:
        batch.append(list(captions))
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()


def labels_from_captions(captions: Sequence[str], schema: Schema | None = None) -> Attributes:
    """The six labels of one image from its captions."""
    return next(mine_labels([captions], schema))


def coverage(rows: Iterable[Mapping[str, str]], groups: Sequence[str] = GROUP_ORDER) -> dict[str, float]:
    """Per group, the share of rows with a known value (0.0 for no rows)."""
    known, total = Counter(), 0
    for row in rows:
        total += 1
        known.update(g for g in groups if row.get(g, UNKNOWN) != UNKNOWN)
    return {g: known[g] / total if total else 0.0 for g in groups}
