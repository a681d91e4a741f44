"""Which noun phrases do human captions use, by attribute group, and which of them does the schema cover?

The noun phrases come from two sources, both spaCy ``blank("en")`` pipelines (no trained tagger or parser
is needed, or available offline):

- **schema-anchored**: every mention spac.language finds (an item or synonym of the schema, or a generic
  noun such as "hair", with its colour, modifiers and descriptors: "dark brown hair", "black leather
  jacket"; a mention without a colour keeps the shades and descriptors just before it: "dark hair"). Its
  group is the item's group; it is **covered** when it resolves to a schema value, and not covered
  otherwise ("purple hair": no such hair colour; "dark hair": no such colour; "hair" alone);
- **colour-anchored**: a spaCy Matcher over colour + noun sequences: a colour word (a schema colour or
  synonym, possibly shaded: "dark", "light", ...; "X and Y" for two colours), any of the schema's
  descriptors, then a noun (any other alphabetic word that is not a stop word), where that span overlaps
  no schema-anchored mention: "black hat", "white socks", "red scarf". These belong to no group (reported
  as ``other``, never covered): they are where a vocabulary author looks for missing items.

Phrases are counted lower-cased, spaces collapsed. Coverage of a group = covered mentions / all its
mentions. Negation is not looked at ("no bag" counts as a mention of "bag").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import spacy
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.matcher import Matcher

from spac.attributes import GROUP_ORDER, Schema, load_schema
from spac.language import extract_attributes_batch

OTHER = "other"
GROUPS = (*GROUP_ORDER, OTHER)


@dataclass
class GroupPhrases:
    """The phrases of one group: text -> count, and text -> the schema value it resolves to (None: not covered)."""

    counts: Counter = field(default_factory=Counter)
    values: dict[str, str | None] = field(default_factory=dict)

    def add(self, text: str, value: str | None) -> None:
        self.counts[text] += 1
        if self.values.get(text) is None:
            self.values[text] = value

    @property
    def mentions(self) -> int:
        return sum(self.counts.values())

    @property
    def covered(self) -> int:
        return sum(n for text, n in self.counts.items() if self.values[text] is not None)

    @property
    def coverage(self) -> float | None:
        return self.covered / self.mentions if self.mentions else None

    def top(self, limit: int | None = None) -> list[dict]:
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return [{"phrase": text, "count": n, "value": self.values[text]} for text, n in ranked[:limit]]


@dataclass
class PhraseReport:
    captions: int = 0
    groups: dict[str, GroupPhrases] = field(default_factory=lambda: {g: GroupPhrases() for g in GROUPS})

    def to_json(self, limit: int | None = None) -> dict:
        out = {"captions": self.captions, "groups": {}}
        for name, group in self.groups.items():
            covered = None if name == OTHER else group.covered
            out["groups"][name] = {
                "mentions": group.mentions,
                "distinct": len(group.counts),
                "covered": covered,
                "coverage": None if name == OTHER else group.coverage,
                "phrases": group.top(limit),
            }
        return out


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


class PhraseMiner:
    """Counts the noun phrases of captions (see the module doc); feed it with :meth:`add`, read ``report``."""

    def __init__(self, schema: Schema | None = None) -> None:
        self.schema = schema if schema is not None else load_schema()
        self.report = PhraseReport()
        self.nlp = spacy.blank("en")
        colour_words = set()
        for colour in self.schema.colours.values():
            for form in (colour.name, *colour.synonyms):
                colour_words.update(t.lower_ for t in self.nlp.make_doc(form) if t.is_alpha)
        descriptors = {t.lower_ for d in self.nlp.pipe(self.schema.descriptors) for t in d if t.is_alpha}
        shades = set(self.schema.colour_modifiers)
        blocked = sorted(colour_words | descriptors | shades | set(STOP_WORDS))
        colour = [{"LOWER": {"IN": sorted(shades)}, "OP": "?"}, {"LOWER": {"IN": sorted(colour_words)}, "OP": "+"}]
        self.matcher = Matcher(self.nlp.vocab)
        words = sorted(descriptors | shades, key=len, reverse=True)
        self._lead = (
            re.compile(rf"(?:\b(?:{'|'.join(map(re.escape, words))})[\s-]+)+$", re.IGNORECASE) if words else None
        )
        tail = [
            {"LOWER": {"IN": sorted(descriptors | {"-"})}, "OP": "*"},
            {"IS_ALPHA": True, "LOWER": {"NOT_IN": blocked}},
        ]
        self.matcher.add(
            "colour_noun",
            [
                [*colour, *tail],
                [*colour, {"LOWER": {"IN": ["and", "-", "/"]}}, *colour, *tail],  # "black and white hat"
            ],
            greedy="LONGEST",
        )

    def add(self, captions: Sequence[str], batch_size: int = 256) -> None:
        texts = list(captions)
        self.report.captions += len(texts)
        all_mentions = extract_attributes_batch(texts, self.schema, batch_size)
        for text, mentions, doc in zip(texts, all_mentions, self.nlp.pipe(texts, batch_size=batch_size)):
            spans = []
            for m in mentions:
                start = m.start
                if m.colour is None and self._lead is not None and (lead := self._lead.search(text[:start])):
                    start = lead.start()  # "dark hair", "leather shoes"
                self.report.groups[m.group].add(_normal(text[start : m.end]), m.value)
                spans.append((start, m.end))
            for _, s, e in self.matcher(doc):
                start, end = doc[s].idx, doc[e - 1].idx + len(doc[e - 1])
                if all(end <= a or start >= b for a, b in spans):
                    self.report.groups[OTHER].add(_normal(text[start:end]), None)


def mine_phrases(caption_batches: Iterable[Sequence[str]], schema: Schema | None = None) -> PhraseReport:
    """One report over every batch of captions."""
    miner = PhraseMiner(schema)
    for captions in caption_batches:
        miner.add(captions)
    return miner.report


def format_report(report: PhraseReport, limit: int = 15) -> str:
    """The coverage table, then each group's most frequent phrases with what they resolve to."""
    lines = [
        f"{report.captions} captions",
        "",
        f"{'group':<12} {'mentions':>9} {'covered':>9} {'coverage':>9} {'distinct':>9}",
    ]
    for name, group in report.groups.items():
        if name == OTHER:
            lines.append(f"{name:<12} {group.mentions:>9} {'-':>9} {'-':>9} {len(group.counts):>9}")
        else:
            coverage = f"{100 * group.coverage:.1f}%" if group.coverage is not None else "-"
            lines.append(f"{name:<12} {group.mentions:>9} {group.covered:>9} {coverage:>9} {len(group.counts):>9}")
    for name, group in report.groups.items():
        if not group.counts:
            continue
        title = "colour + noun phrases no schema item matches" if name == OTHER else name
        lines += ["", f"{title} (top {min(limit, len(group.counts))} of {len(group.counts)}):"]
        for row in group.top(limit):
            what = f"-> {row['value']}" if row["value"] is not None else "NOT COVERED"
            lines.append(f"  {row['count']:>7}  {row['phrase']:<32} {what}")
    return "\n".join(lines)
