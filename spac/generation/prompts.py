"""Prompts as data (templates/prompts/): the caption-model stage's instructions and the requests they make for one
image; and the attribute questions of ``--predictor mllm`` (attributes.yaml, read by spac.generation.attributes).

A request's user instruction is, one per line: the grounding (the trusted attribute values, see
spac.generation.grounding), one style instruction, and the rules. The style instructions form a pool: the
file's ``styles`` (our five style modules in words; only those chosen, with ``--styles``) and
``example_entries`` entries of ``example``, an
"in the style of this example" instruction whose example is a sentence of the sentence library (the bundled
one or a mined one, as the captioner uses) filled with the person's trusted values. The pool is ordered
per (key, seed) by a stable hash; turn ``t`` of an image takes the ``t``-th entry, so the texts of one
image, and the retries after them, each get a style of their own.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources

from common.digests import stable_int_after, stable_prefix
from spac.attributes import UNKNOWN, AttributeValue, Schema
from spac.captioning.grammar import person_for, tidy
from spac.captioning.library import SentenceLibrary
from spac.captioning.slots import FillContext, TemplateError, fill, parse_yaml, unsay_nothing
from spac.generation.requests import CaptionRequest

EXAMPLE = "example"  # the pool entry of an example-sentence instruction; its style id is "example:<index>"
BUNDLED_DIR = "prompts"  # in the templates package
INSTRUCTIONS_FILE = "instructions.yaml"  # the caption-model stage's
ATTRIBUTES_FILE = "attributes.yaml"  # --predictor mllm's questions
# Each text's placeholders: these and no others (str.format fields).
_FIELDS = {"system": set(), "grounding": {"attributes"}, "example": {"example"}, "rules": set()}


@dataclass(frozen=True)
class Instructions:
    """The parsed instructions file (see its own comments for what each text is)."""

    version: int
    system: str
    grounding: str
    group_labels: Mapping[str, str]
    styles: Mapping[str, str]
    example: str
    example_entries: int
    rules: str
    source: str = ""

    @property
    def pool(self) -> tuple[str, ...]:
        """The style instructions one text may get: every style id, then ``EXAMPLE`` once per example entry."""
        return (*self.styles, *[EXAMPLE] * self.example_entries)

    def only(self, style_ids: Sequence[str]) -> Instructions:
        """These instructions with the style instructions of ``style_ids`` alone (the style modules chosen with
        ``--styles``), in the file's order; the example-sentence entries stay. TemplateError for a style the file
        has no instruction for."""
        missing = [style for style in style_ids if style not in self.styles]
        if missing:
            raise TemplateError(f"{self.source}: styles: no instruction for style {missing[0]!r}")
        return replace(self, styles={name: text for name, text in self.styles.items() if name in style_ids})


def _text(data: Mapping, key: str, source: str, fields: set[str]) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise TemplateError(f"{source}: {key}: expected a non-empty string, got {value!r}")
    try:
        found = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise TemplateError(f"{source}: {key}: {exc} in {value!r}") from None
    if found != fields:
        wanted = ", ".join(f"{{{f}}}" for f in sorted(fields)) or "no placeholder"
        raise TemplateError(f"{source}: {key}: expected {wanted}, found {', '.join(sorted(found)) or 'none'}")
    return " ".join(value.split())


def _named_texts(data: Mapping, key: str, source: str, names: tuple[str, ...] | None = None) -> dict[str, str]:
    value = data.get(key)
    if not isinstance(value, dict) or not value:
        raise TemplateError(f"{source}: {key}: expected a mapping of name to text")
    if names is not None and set(value) != set(names):
        raise TemplateError(f"{source}: {key}: expected one entry per group: {', '.join(names)}")
    return {str(name): _text(value, name, f"{source}: {key}", set()) for name in value}


def _top_level(data: object, source: str, allowed: set[str]) -> dict:
    """A prompt file's mapping, with only ``allowed`` keys and a positive ``version``."""
    if not isinstance(data, dict):
        raise TemplateError(f"{source}: <top level>: expected a mapping with {', '.join(sorted(allowed))}")
    unexpected = sorted(set(data) - allowed)
    if unexpected:
        raise TemplateError(f"{source}: {unexpected[0]}: unexpected key (allowed: {', '.join(sorted(allowed))})")
    _count(data, "version", source, 1, "positive")
    return data


def _count(data: Mapping, key: str, source: str, least: int, what: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise TemplateError(f"{source}: {key}: expected a {what} integer, got {value!r}")
    return value


def parse_instructions(data: object, source: str, schema: Schema) -> Instructions:
    """Validate a parsed instructions file; TemplateError naming the file and key on any defect."""
    allowed = {"version", "system", "grounding", "group_labels", "styles", "example", "example_entries", "rules"}
    data = _top_level(data, source, allowed)
    _count(data, "example_entries", source, 0, "non-negative")
    styles = _named_texts(data, "styles", source)
    if EXAMPLE in styles or any(":" in name for name in styles):
        raise TemplateError(f"{source}: styles: a style id is neither {EXAMPLE!r} nor contains ':'")
    texts = {key: _text(data, key, source, fields) for key, fields in _FIELDS.items()}
    return Instructions(
        data["version"],
        texts["system"],
        texts["grounding"],
        _named_texts(data, "group_labels", source, schema.group_names),
        styles,
        texts["example"],
        data["example_entries"],
        texts["rules"],
        source,
    )


@dataclass(frozen=True)
class AttributePrompts:
    """The parsed attribute-questions file (``--predictor mllm``, spac.generation.attributes): ``instruction``
    asks a server for every group as JSON ({groups}: the group names); ``questions``, one per group, are what a
    model in process reads each candidate phrase as the answer to."""

    version: int
    instruction: str
    questions: Mapping[str, str]
    source: str = ""


def parse_attribute_prompts(data: object, source: str, schema: Schema) -> AttributePrompts:
    """Validate a parsed attribute-questions file; TemplateError naming the file and key on any defect."""
    data = _top_level(data, source, {"version", "instruction", "questions"})
    return AttributePrompts(
        data["version"],
        _text(data, "instruction", source, {"groups"}),
        _named_texts(data, "questions", source, schema.group_names),
        source,
    )


def _source(name: str) -> str:
    return f"templates/{BUNDLED_DIR}/{name}"


def _bundled_yaml(name: str) -> object:
    return parse_yaml(resources.files("templates").joinpath(BUNDLED_DIR, name).read_text("utf-8"), _source(name))


def load_instructions(schema: Schema) -> Instructions:
    """The bundled templates/prompts/instructions.yaml, validated (the file whose sha256 job.json records)."""
    return parse_instructions(_bundled_yaml(INSTRUCTIONS_FILE), _source(INSTRUCTIONS_FILE), schema)


def load_attribute_prompts(schema: Schema) -> AttributePrompts:
    """The bundled templates/prompts/attributes.yaml, validated (the file whose sha256 job.json records)."""
    return parse_attribute_prompts(_bundled_yaml(ATTRIBUTES_FILE), _source(ATTRIBUTES_FILE), schema)


def prompt_files_sha256(*names: str) -> dict[str, str]:
    """``templates/prompts/<name>`` -> sha256 of its bytes, for each of the bundled prompt files ``names``: what a
    job.json records of the prompts it used."""
    folder = resources.files("templates").joinpath(BUNDLED_DIR)
    return {_source(name): hashlib.sha256(folder.joinpath(name).read_bytes()).hexdigest() for name in sorted(names)}


@dataclass(frozen=True)
class Prompt:
    """One request, and the example sentence its instruction quotes (None for a style module's instruction):
    a text that repeats its example is no text of the model's own."""

    request: CaptionRequest
    example: str | None


class PromptBook:
    """Makes the requests of one image from the instructions and a sentence library (the captioner's)."""

    def __init__(self, instructions: Instructions, library: SentenceLibrary) -> None:
        self.instructions = instructions
        self.library = library
        self._index = {sentence.text: i for i, sentence in enumerate(library.sentences)}

    @property
    def pool_size(self) -> int:
        return len(self.instructions.pool)

    def prompt(
        self, key: str, image_jpeg: bytes, trusted: Mapping[str, AttributeValue], seed: int, turn: int
    ) -> Prompt:
        """Turn ``turn`` of image ``key``: the pool entry at that place in the (key, seed) order (turns below
        ``pool_size`` get distinct entries), with ``trusted`` values (spac.generation.grounding) as grounding."""
        prefix = stable_prefix(key, seed)
        pool = self.instructions.pool
        order = sorted(range(len(pool)), key=lambda i: stable_int_after(prefix, f"mllm-style:{i}"))
        entry = pool[order[turn % len(pool)]]
        example = None
        if entry == EXAMPLE:
            example, index = self._example(trusted, stable_int_after(prefix, f"mllm-example:{turn}"))
            style_id, style = f"{EXAMPLE}:{index}", self.instructions.example.format(example=example)
        else:
            style_id, style = entry, self.instructions.styles[entry]
        lines = [self._grounding(trusted), style, self.instructions.rules]
        instruction = "\n".join(line for line in lines if line)
        return Prompt(CaptionRequest(key, image_jpeg, self.instructions.system, instruction, style_id), example)

    def _grounding(self, trusted: Mapping[str, AttributeValue]) -> str:
        if not trusted:
            return ""
        labels = self.instructions.group_labels
        return self.instructions.grounding.format(
            attributes="; ".join(f"{labels[group]}: {value.phrase}" for group, value in trusted.items())
        )

    def _example(self, trusted: Mapping[str, AttributeValue], digest: int) -> tuple[str, int]:
        """A library sentence that mentions only trusted groups, filled with their values; and its index."""
        gender = trusted["gender"].phrase if "gender" in trusted else UNKNOWN
        person = person_for(gender)
        ctx, _ = unsay_nothing(FillContext(person, {g: v for g, v in trusted.items() if g != "gender"}), digest)
        candidates = self.library.candidates(frozenset(ctx.values))
        sentence = candidates[digest % len(candidates)]
        return tidy(fill(sentence.text, ctx, person.plural_pronoun)), self._index[sentence.text]
