"""The masked sentence library ("attribute prompt engineering"): templates/sentences.yaml.

``sentences`` maps a section name (documentation only) to masked sentences; each sentence names the
person with ``{gender}`` exactly once and mentions any subset of the five other groups. ``addenda``
holds, per group, short sentences that name that group alone; they mention a known group that the
chosen sentence leaves out.

Selection for one person: the candidates are the sentences whose groups are all known and that leave
at most one known group out (when no sentence comes that close, those that leave out the fewest);
a hash of (key, seed) picks one, and an addendum is appended for each known group it leaves out.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterator, Mapping

from spac.attributes import Schema, load_schema
from spac.caption_slots import (
    GROUP_SLOTS, FillContext, TemplateError, check_template, fill, groups_of, parse_slots, parse_yaml,
)
from spac.grammar import tidy

MAX_LEFT_OUT = 1


@dataclass(frozen=True)
class LibrarySentence:
    text: str
    groups: frozenset[str]


@dataclass(frozen=True)
class SentenceLibrary:
    sentences: tuple[LibrarySentence, ...]
    addenda: Mapping[str, tuple[str, ...]]
    source: str = ""

    def candidates(self, known: frozenset[str]) -> list[LibrarySentence]:
        """Sentences that mention only known groups and leave out as few of them as the library allows."""
        usable = [s for s in self.sentences if s.groups <= known]
        fewest_left_out = min(len(known - s.groups) for s in usable)
        limit = max(MAX_LEFT_OUT, fewest_left_out)
        return [s for s in usable if len(known - s.groups) <= limit]

    def texts(self, ctx: FillContext, digest: int) -> Iterator[str]:
        """Captions for ``ctx`` in preference order: the hashed pick first, then the other candidates."""
        known = frozenset(ctx.values)
        candidates = self.candidates(known)
        plural = ctx.person.plural_pronoun
        for step in range(len(candidates)):
            sentence = candidates[(digest + step) % len(candidates)]
            parts = [sentence.text]
            for group in (g for g in GROUP_SLOTS if g in known - sentence.groups):
                options = self.addenda[group]
                parts.append(options[(digest // 7 + step) % len(options)])
            yield tidy(" ".join(fill(p, ctx, plural) for p in parts))


def _check_sentence(text: object, source: str, key: str, schema: Schema) -> LibrarySentence:
    text = check_template(text, source, key, schema)
    slots = parse_slots(text)
    kinds = [s.kind for s in slots]
    if kinds.count("gender") != 1:
        raise TemplateError(f"{source}: {key}: a sentence names the person with {{gender}} exactly once: {text!r}")
    groups = [s.name for s in slots if s.kind == "group"]
    if len(groups) != len(set(groups)):
        raise TemplateError(f"{source}: {key}: a group slot appears twice: {text!r}")
    if "verb" in kinds and "pronoun" not in kinds:
        raise TemplateError(f"{source}: {key}: {{v:...}} verbs agree with a pronoun; add {{they}}: {text!r}")
    if not text.endswith("."):
        raise TemplateError(f"{source}: {key}: a sentence ends with a period: {text!r}")
    return LibrarySentence(text, frozenset(groups))


def _check_addendum(text: object, source: str, key: str, group: str, schema: Schema) -> str:
    text = check_template(text, source, key, schema)
    kinds = [s.kind for s in parse_slots(text)]
    if groups_of(text) != {group} or kinds.count("group") != 1 or "gender" in kinds:
        raise TemplateError(f"{source}: {key}: an addendum names its own group once and nothing else: {text!r}")
    if not text.endswith("."):
        raise TemplateError(f"{source}: {key}: an addendum ends with a period: {text!r}")
    return text


def parse_library(data: object, source: str, schema: Schema) -> SentenceLibrary:
    """Validate parsed YAML and build the library; TemplateError naming the file and key on any defect."""
    if not isinstance(data, dict):
        raise TemplateError(f"{source}: <top level>: expected a mapping with 'sentences' and 'addenda'")
    sections = data.get("sentences")
    if not isinstance(sections, dict) or not sections:
        raise TemplateError(f"{source}: sentences: expected a mapping of section name to a list of sentences")
    sentences: list[LibrarySentence] = []
    seen: dict[str, str] = {}
    for name, items in sections.items():
        if not isinstance(items, list) or not items:
            raise TemplateError(f"{source}: sentences.{name}: expected a non-empty list of sentences")
        for i, text in enumerate(items):
            key = f"sentences.{name}[{i}]"
            sentence = _check_sentence(text, source, key, schema)
            if sentence.text in seen:
                raise TemplateError(f"{source}: {key}: repeats {seen[sentence.text]}")
            seen[sentence.text] = key
            sentences.append(sentence)
    if not any(not s.groups for s in sentences):
        raise TemplateError(f"{source}: sentences: at least one sentence must name no group (for people with none known)")
    raw_addenda = data.get("addenda")
    if not isinstance(raw_addenda, dict) or set(raw_addenda) != set(GROUP_SLOTS):
        raise TemplateError(f"{source}: addenda: expected one list per group: {', '.join(GROUP_SLOTS)}")
    addenda = {}
    for group in GROUP_SLOTS:
        items = raw_addenda[group]
        if not isinstance(items, list) or not items:
            raise TemplateError(f"{source}: addenda.{group}: expected a non-empty list of sentences")
        addenda[group] = tuple(_check_addendum(t, source, f"addenda.{group}[{i}]", group, schema) for i, t in enumerate(items))
    return SentenceLibrary(tuple(sentences), addenda, source)


def load_library(path: str | Path | None = None, schema: Schema | None = None) -> SentenceLibrary:
    """Load and validate a sentence library; with no path, the bundled templates/sentences.yaml."""
    schema = schema or load_schema()
    if path is None:
        text, source = resources.files("templates").joinpath("sentences.yaml").read_text(encoding="utf-8"), "templates/sentences.yaml"
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"{source}: cannot read sentence library: {exc.strerror or exc}") from None
    return parse_library(parse_yaml(text, source), source, schema)
