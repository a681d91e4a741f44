"""Style modules: templates/styles/<name>.yaml, each a set of phrasings of one caption shape.

A style file holds ``name`` (its file stem), ``description``, ``empty`` (sentences for a person with no
known group besides gender), ``phrasings`` and optionally ``nothing``. Every phrasing mentions each of the
five groups exactly once, so every known value is named; parts whose groups are all unknown are left out.
Every phrasing is prose, a sentence a person could have written: no lists of bare phrases.

A phrasing has ``noun`` (the first sentence's subject, e.g. "the {gender}") and ``sentences``; later
sentences start with ``{they}``. A sentence has ``modifiers`` attached to its subject ("with {a hair}",
or set off by commas with ``comma: true``), ``predicates`` (``lead`` + the groups' noun phrases joined
"a, b and c" + optional ``after``; ``pair: true`` for "a pair of"), joined "p1, p2 and p3", and a
``fallback`` predicate used when only modifiers remain. Only a phrasing whose ``noun`` stands on its own
(``clause: true``: a clause such as "there is a {gender}", or the noun phrase of a caption written as a
fragment, "a {gender}" + "in ..., with ...") may end a sentence without a predicate; there a comma modifier
that would follow the bare subject is attached without its comma ("A man with short black hair.").

Belongings ``nothing`` is left unsaid (see :func:`spac.captioning.slots.unsay_nothing`); in the rare text that
says it, one of the style's ``nothing`` sentences is added ("{they} {v:have} {belongings} in {their}
hands."). A style without ``nothing`` sentences never says it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from spac.attributes import Schema
from spac.captioning.compiled import Spans, write
from spac.captioning.grammar import join_list, tidy
from spac.captioning.slots import (
    GROUP_SLOTS,
    FillContext,
    TemplateError,
    check_nothing_sentence,
    check_template,
    fill,
    group_phrase,
    groups_of,
    parse_yaml,
    unsay_nothing,
)


@dataclass(frozen=True)
class Part:
    """A predicate or modifier: ``lead`` then the groups' noun phrases then ``after``."""

    lead: str
    groups: tuple[str, ...]
    after: str = ""
    comma: bool = False
    pair: bool = False

    def render(self, ctx: FillContext, plural: bool) -> str | None:
        values = ctx.values
        form = "pair" if self.pair else "a"
        phrases = [group_phrase(values[g], form) for g in self.groups if g in values]  # "{a g}" / "{pair g}" filled
        if not phrases:
            return None
        text = phrases[0] if len(phrases) == 1 else join_list(phrases)  # value phrases are never empty
        lead = fill(self.lead, ctx, plural) if self.lead else ""
        if lead:
            text = lead + " " + text
        after = fill(self.after, ctx, plural) if self.after else ""
        return text + " " + after if after else text


def _join_predicates(predicates: list[str]) -> str:
    """'p1 and p2', 'p1, p2 and p3'; a comma before 'and' when the previous predicate ends in a list."""
    if len(predicates) == 1:
        return predicates[0]
    joiner = ", and " if "," in predicates[-2] else " and "
    return ", ".join(predicates[:-1]) + joiner + predicates[-1]


@dataclass(frozen=True)
class SentencePlan:
    modifiers: tuple[Part, ...]
    predicates: tuple[Part, ...]
    fallback: str = ""

    def render(self, subject: str, ctx: FillContext, plural: bool) -> str | None:
        text = subject
        predicates = [p for p in (part.render(ctx, plural) for part in self.predicates) if p]
        ends_after_modifiers = not predicates and not self.fallback
        for part in self.modifiers:
            rendered = part.render(ctx, plural)
            if rendered:
                if part.comma and not (text == subject and ends_after_modifiers):
                    # Consecutive comma modifiers share one comma: "a man, in X, carrying Y, walks".
                    text += (" " if text.endswith(",") else ", ") + rendered + ","
                else:
                    text += ("" if text.endswith(" ") else " ") + rendered
        if text == subject and not predicates:
            return None
        if not predicates and self.fallback:
            predicates = [fill(self.fallback, ctx, plural)]
        if predicates:
            text += " " + _join_predicates(predicates)
        return text.rstrip(",") + "."


@dataclass(frozen=True)
class ProsePhrasing:
    noun: str
    sentences: tuple[SentencePlan, ...]

    def render(self, ctx: FillContext) -> str | None:
        out: list[str] = []
        for plan in self.sentences:
            first = not out
            subject = fill(self.noun if first else "{they}", ctx, False)
            rendered = plan.render(subject, ctx, plural=not first and ctx.person.plural_pronoun)
            if rendered:
                out.append(rendered)
        return " ".join(out) if out else None


@dataclass(frozen=True)
class Style:
    name: str
    description: str
    phrasings: tuple[ProsePhrasing, ...]
    empty: tuple[str, ...]
    nothing: tuple[str, ...] = ()

    # (shape, id(person)) -> compiled text (spac.captioning.compiled); not part of the value
    _compiled: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def texts(self, ctx: FillContext, digest: int) -> Iterator[str]:
        """Captions for ``ctx`` in preference order: the hashed phrasing first, then the others."""
        return (text for text, _ in self.written(ctx, digest))

    def written(self, ctx: FillContext, digest: int) -> Iterator[tuple[str, Spans | None]]:
        """:meth:`texts` with each text's attribute spans (see spac.captioning.compiled.write)."""
        said, say_nothing = unsay_nothing(ctx, digest)
        groups = tuple(said.values)
        n = len(self.phrasings)
        for step in range(n):
            phrasing, empty = (digest + step) % n, (digest + step) % len(self.empty)
            addition = (digest // 7 + step) % len(self.nothing) if say_nothing and self.nothing else -1
            shape = (phrasing, empty, addition, groups)
            yield write(self._compiled, shape, said, ctx, self._render, phrasing, empty, addition)

    def _render(self, said: FillContext, ctx: FillContext, phrasing: int, empty: int, addition: int) -> str:
        """The text of one shape, written the ordinary way (``addition`` -1: no nothing sentence)."""
        text = self.phrasings[phrasing].render(said)
        if text is None:
            text = fill(self.empty[empty], said, False)
        if addition >= 0:
            text = tidy(text) + " " + fill(self.nothing[addition], ctx, ctx.person.plural_pronoun)
        return tidy(text)


TOP = "<top level>"


class _Reader:
    """Typed access to one style file's mappings, with errors that name the file and key."""

    def __init__(self, source: str, schema: Schema) -> None:
        self.source, self.schema = source, schema

    def fail(self, key: str, problem: str) -> TemplateError:
        return TemplateError(f"{self.source}: {key}: {problem}")

    def mapping(self, value: Any, key: str, allowed: set[str]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {value!r}")
        unexpected = sorted(set(value) - allowed)
        if unexpected:
            raise self.fail(
                f"{key}.{unexpected[0]}" if key != TOP else str(unexpected[0]),
                f"unexpected key (allowed: {', '.join(sorted(allowed))})",
            )
        return value

    def items(self, value: Any, key: str) -> list:
        if not isinstance(value, list) or not value:
            raise self.fail(key, "expected a non-empty list")
        return value

    def template(self, value: Any, key: str, required: bool = True) -> str:
        if value is None and not required:
            return ""
        text = check_template(value, self.source, key, self.schema)
        if groups_of(text):
            raise self.fail(key, f"group slots belong in 'groups', not in the text: {text!r}")
        return text

    def groups(self, value: Any, key: str) -> tuple[str, ...]:
        groups = tuple(self.items(value, key))
        bad = [g for g in groups if g not in GROUP_SLOTS]
        if bad:
            raise self.fail(key, f"{bad[0]!r} is not a group; groups are {', '.join(GROUP_SLOTS)}")
        return groups

    def flag(self, value: Any, key: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value


def _part(r: _Reader, raw: Any, key: str) -> Part:
    raw = r.mapping(raw, key, {"lead", "groups", "after", "comma", "pair"})
    return Part(
        r.template(raw.get("lead"), f"{key}.lead", required=False),
        r.groups(raw.get("groups"), f"{key}.groups"),
        r.template(raw.get("after"), f"{key}.after", required=False),
        r.flag(raw.get("comma"), f"{key}.comma"),
        r.flag(raw.get("pair"), f"{key}.pair"),
    )


def _prose(r: _Reader, raw: dict, key: str) -> ProsePhrasing:
    clause = r.flag(raw.get("clause"), f"{key}.clause")
    plans = []
    raw_sentences = r.items(raw.get("sentences"), f"{key}.sentences")
    for i, s in enumerate(raw_sentences):
        skey = f"{key}.sentences[{i}]"
        s = r.mapping(s, skey, {"modifiers", "predicates", "fallback"})
        modifiers = tuple(_part(r, m, f"{skey}.modifiers[{j}]") for j, m in enumerate(s.get("modifiers") or []))
        predicates = tuple(_part(r, p, f"{skey}.predicates[{j}]") for j, p in enumerate(s.get("predicates") or []))
        fallback = r.template(s.get("fallback"), f"{skey}.fallback", required=False)
        if not modifiers and not predicates:
            raise r.fail(skey, "a sentence needs modifiers or predicates")
        if modifiers and not fallback and not (clause and len(raw_sentences) == 1):
            raise r.fail(
                f"{skey}.fallback", "a sentence with modifiers needs a fallback predicate unless its noun is a clause"
            )
        plans.append(SentencePlan(modifiers, predicates, fallback))
    return ProsePhrasing(r.template(raw.get("noun"), f"{key}.noun"), tuple(plans))


def _mentioned_groups(phrasing: ProsePhrasing) -> list[str]:
    return [g for plan in phrasing.sentences for part in (*plan.modifiers, *plan.predicates) for g in part.groups]


def parse_style(data: Any, source: str, schema: Schema, name: str) -> Style:
    """Validate one style file's data; TemplateError naming the file and key on any defect."""
    r = _Reader(source, schema)
    data = r.mapping(data, TOP, {"name", "description", "empty", "phrasings", "nothing"})
    if data.get("name") != name:
        raise r.fail("name", f"expected {name!r} (the file's name), got {data.get('name')!r}")
    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        raise r.fail("description", "expected a one-line description of the style's shape")
    empty = tuple(r.template(t, f"empty[{i}]") for i, t in enumerate(r.items(data.get("empty"), "empty")))
    nothing = tuple(
        check_nothing_sentence(t, source, f"nothing[{i}]", schema)
        for i, t in enumerate(r.items(data["nothing"], "nothing") if "nothing" in data else ())
    )
    phrasings: list[ProsePhrasing] = []
    for i, raw in enumerate(r.items(data.get("phrasings"), "phrasings")):
        key = f"phrasings[{i}]"
        raw = r.mapping(raw, key, {"noun", "clause", "sentences"})
        phrasing = _prose(r, raw, key)
        mentioned = _mentioned_groups(phrasing)
        if sorted(mentioned) != sorted(GROUP_SLOTS):
            raise r.fail(key, f"a phrasing mentions each group exactly once; it has {', '.join(mentioned)}")
        phrasings.append(phrasing)
    return Style(name, description.strip(), tuple(phrasings), empty, nothing)


def _bundled_dir():
    return resources.files("templates").joinpath("styles")


def available_styles(directory: str | Path | None = None) -> tuple[str, ...]:
    """The style names (file stems) in a styles directory; default: the bundled templates/styles."""
    folder = _bundled_dir() if directory is None else Path(directory)
    return tuple(sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml")))


def load_style(name: str, schema: Schema, directory: str | Path | None = None) -> Style:
    if directory is None:
        source = f"templates/styles/{name}.yaml"
        text = _bundled_dir().joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    else:
        path = Path(directory) / f"{name}.yaml"
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"{source}: cannot read style module: {exc.strerror or exc}") from None
    return parse_style(parse_yaml(text, source), source, schema, name)
