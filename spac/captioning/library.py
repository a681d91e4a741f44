"""The masked sentence library ("attribute prompt engineering"): templates/sentences.yaml, or a library
mined from human captions (spac.mining.templates, ``spac mine-templates``).

``sentences`` maps a section name (documentation only) to masked sentences; each sentence names the
person with ``{gender}`` exactly once and mentions any subset of the five other groups. ``addenda``
holds, per group, short sentences that name that group alone; they mention a known group that the
chosen sentence leaves out. ``nothing`` (optional) holds sentences that say nothing is carried.

Selection for one person: the candidates are the sentences whose groups are all known and that leave
at most one known group out (when no sentence comes that close, those that leave out the fewest);
a hash of (key, seed) picks one, and an addendum is appended for each known group it leaves out.
Belongings ``nothing`` count as unknown here: people rarely say it (see
:func:`spac.captioning.slots.unsay_nothing`); in about one text in ``NOTHING_ONE_IN`` a ``nothing`` sentence is
appended instead. So no sentence is ever filled with "nothing", and "with {a belongings}" reads well.

A library may replace the bundled one or stand beside it: :func:`parse_sentences_option` reads the
``--sentences`` flag of ``spac caption`` and of the synthesis job (``PATH`` replaces, ``+PATH`` adds), and
:func:`library_for` builds the library it names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from common.errors import InputError
from spac.attributes import Schema, load_schema
from spac.captioning.compiled import Spans, write
from spac.captioning.grammar import tidy
from spac.captioning.slots import (
    GROUP_SLOTS,
    FillContext,
    TemplateError,
    check_nothing_sentence,
    check_template,
    fill,
    groups_of,
    parse_slots,
    parse_yaml,
    unsay_nothing,
)

MAX_LEFT_OUT = 1
BUNDLED_SOURCE = "templates/sentences.yaml"
ADD_PREFIX = "+"  # --sentences +PATH: the file's sentences beside the bundled ones


@dataclass(frozen=True)
class LibrarySentence:
    text: str
    groups: frozenset[str]


@dataclass(frozen=True)
class SentenceLibrary:
    sentences: tuple[LibrarySentence, ...]
    addenda: Mapping[str, tuple[str, ...]]
    source: str = ""
    nothing: tuple[str, ...] = ()

    # known groups (a tuple) -> candidates, each with the known groups it leaves out: at most 2^5 sets (in
    # the captioner's order), each computed once; (shape, id(person)) -> compiled text
    # (spac.captioning.compiled). Neither is part of the value.
    _candidates: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _compiled: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def candidates(self, known: frozenset[str]) -> list[LibrarySentence]:
        """Sentences that mention only known groups and leave out as few of them as the library allows."""
        return [sentence for sentence, _ in self._left_out(tuple(g for g in GROUP_SLOTS if g in known))]

    def _left_out(self, groups: tuple[str, ...]) -> tuple[tuple[LibrarySentence, tuple[str, ...]], ...]:
        """:meth:`candidates` of the known ``groups`` (a tuple: cheaper to hash than a new frozenset), each
        with the known groups it leaves out."""
        cached = self._candidates.get(groups)
        if cached is None:
            known = frozenset(groups)
            usable = [s for s in self.sentences if s.groups <= known]
            fewest_left_out = min(len(known - s.groups) for s in usable)
            limit = max(MAX_LEFT_OUT, fewest_left_out)
            cached = self._candidates[groups] = tuple(
                (s, tuple(g for g in GROUP_SLOTS if g in known - s.groups))
                for s in usable
                if len(known - s.groups) <= limit
            )
        return cached

    def texts(self, ctx: FillContext, digest: int) -> Iterator[str]:
        """Captions for ``ctx`` in preference order: the hashed pick first, then the other candidates."""
        return (text for text, _ in self.written(ctx, digest))

    def written(self, ctx: FillContext, digest: int) -> Iterator[tuple[str, Spans | None]]:
        """:meth:`texts` with each text's attribute spans (see spac.captioning.compiled.write)."""
        said, say_nothing = unsay_nothing(ctx, digest)
        candidates = self._left_out(tuple(said.values))
        addenda = self.addenda
        for step in range(len(candidates)):
            sentence, left_out = candidates[(digest + step) % len(candidates)]
            parts = (sentence.text,)
            if left_out:
                parts += tuple(addenda[g][(digest // 7 + step) % len(addenda[g])] for g in left_out)
            nothing = self.nothing[(digest // 11 + step) % len(self.nothing)] if say_nothing and self.nothing else ""
            yield write(self._compiled, (parts, nothing), said, ctx, self._render, parts, nothing)

    @staticmethod
    def _render(said: FillContext, ctx: FillContext, parts: tuple[str, ...], nothing: str) -> str:
        """The text of one shape, written the ordinary way (``nothing`` "": no nothing sentence)."""
        plural = ctx.person.plural_pronoun
        text = " ".join(fill(p, said, plural) for p in parts)
        if nothing:
            text += " " + fill(nothing, ctx, plural)
        return tidy(text)


def check_sentence(text: object, source: str, key: str, schema: Schema) -> LibrarySentence:
    """One library sentence as the loader accepts it; TemplateError naming the file and key otherwise."""
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


def check_addendum(text: object, source: str, key: str, group: str, schema: Schema) -> str:
    """One addendum of ``group`` as the loader accepts it; TemplateError naming the file and key otherwise."""
    text = check_template(text, source, key, schema)
    kinds = [s.kind for s in parse_slots(text)]
    if groups_of(text) != {group} or kinds.count("group") != 1 or "gender" in kinds:
        raise TemplateError(f"{source}: {key}: an addendum names its own group once and nothing else: {text!r}")
    if "verb" in kinds and "pronoun" not in kinds:
        raise TemplateError(f"{source}: {key}: {{v:...}} verbs agree with a pronoun; add {{they}}: {text!r}")
    if not text.endswith("."):
        raise TemplateError(f"{source}: {key}: an addendum ends with a period: {text!r}")
    return text


def parse_library(data: object, source: str, schema: Schema) -> SentenceLibrary:
    """Validate parsed YAML and build the library; TemplateError naming the file and key on any defect."""
    if not isinstance(data, dict):
        raise TemplateError(f"{source}: <top level>: expected a mapping with 'sentences' and 'addenda'")
    unexpected = sorted(set(data) - {"sentences", "addenda", "nothing"})
    if unexpected:
        raise TemplateError(f"{source}: {unexpected[0]}: unexpected key (allowed: addenda, nothing, sentences)")
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
            sentence = check_sentence(text, source, key, schema)
            if sentence.text in seen:
                raise TemplateError(f"{source}: {key}: repeats {seen[sentence.text]}")
            seen[sentence.text] = key
            sentences.append(sentence)
    if not any(not s.groups for s in sentences):
        raise TemplateError(
            f"{source}: sentences: at least one sentence must name no group (for people with none known)"
        )
    raw_addenda = data.get("addenda")
    if not isinstance(raw_addenda, dict) or set(raw_addenda) != set(GROUP_SLOTS):
        raise TemplateError(f"{source}: addenda: expected one list per group: {', '.join(GROUP_SLOTS)}")
    addenda = {}
    for group in GROUP_SLOTS:
        items = raw_addenda[group]
        if not isinstance(items, list) or not items:
            raise TemplateError(f"{source}: addenda.{group}: expected a non-empty list of sentences")
        addenda[group] = tuple(
            check_addendum(t, source, f"addenda.{group}[{i}]", group, schema) for i, t in enumerate(items)
        )
    nothing: tuple[str, ...] = ()
    if "nothing" in data:
        items = data["nothing"]
        if not isinstance(items, list) or not items:
            raise TemplateError(f"{source}: nothing: expected a non-empty list of sentences")
        nothing = tuple(check_nothing_sentence(t, source, f"nothing[{i}]", schema) for i, t in enumerate(items))
    return SentenceLibrary(tuple(sentences), addenda, source, nothing)


def library_text(path: str | Path | None = None) -> tuple[str, str]:
    """(the YAML text of a library file, its source name); no path: the bundled templates/sentences.yaml."""
    if path is None:
        return resources.files("templates").joinpath("sentences.yaml").read_text(encoding="utf-8"), BUNDLED_SOURCE
    source = str(path)
    try:
        return Path(path).read_text(encoding="utf-8"), source
    except UnicodeDecodeError:
        raise TemplateError(f"{source}: cannot read sentence library: not UTF-8 text") from None
    except OSError as exc:
        raise TemplateError(f"{source}: cannot read sentence library: {exc.strerror or exc}") from None


def parse_library_text(text: str, source: str, schema: Schema) -> SentenceLibrary:
    """A library from its YAML text (as a job carries it to its workers)."""
    return parse_library(parse_yaml(text, source), source, schema)


def load_library(path: str | Path | None = None, schema: Schema | None = None) -> SentenceLibrary:
    """Load and validate a sentence library; with no path, the bundled templates/sentences.yaml."""
    schema = schema or load_schema()
    return parse_library_text(*library_text(path), schema)


def merge_libraries(first: SentenceLibrary, second: SentenceLibrary) -> SentenceLibrary:
    """Both libraries' sentences, addenda and nothing sentences, in order, each text once."""

    def union(a: tuple, b: tuple) -> tuple:
        return tuple(dict.fromkeys((*a, *b)))

    by_text = {s.text: s for s in (*first.sentences, *second.sentences)}
    return SentenceLibrary(
        tuple(by_text.values()),
        {g: union(first.addenda[g], second.addenda[g]) for g in GROUP_SLOTS},
        f"{first.source} + {second.source}",
        union(first.nothing, second.nothing),
    )


@dataclass(frozen=True)
class SentencesOption:
    """The ``--sentences`` flag: a library file, in place of the bundled one or (``add``) beside it."""

    path: str
    add: bool = False

    @property
    def mode(self) -> str:
        return "add" if self.add else "replace"


def parse_sentences_option(text: str) -> SentencesOption:
    """``PATH`` (replace the bundled library) or ``+PATH`` (add to it); InputError for an empty path.
    A file whose name starts with '+' is given as ``./+name``."""
    add = text.startswith(ADD_PREFIX)
    path = text[len(ADD_PREFIX) :] if add else text
    if not path.strip():
        raise InputError(f"expected PATH (use it in place of the bundled library) or +PATH (add it), got {text!r}")
    return SentencesOption(path, add)


def library_for(option: SentencesOption | None, schema: Schema, text: str | None = None) -> SentenceLibrary:
    """The library ``option`` names (None: the bundled one). ``text``: the file's contents when already read
    (a job reads them once at launch); otherwise the file is read here."""
    bundled = load_library(None, schema)
    if option is None:
        return bundled
    chosen = parse_library_text(text, option.path, schema) if text is not None else load_library(option.path, schema)
    return merge_libraries(bundled, chosen) if option.add else chosen
