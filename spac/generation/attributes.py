"""A vision-language model as SPAC's attribute predictor (``--predictor mllm``): the six groups, each one of the
schema's phrases or ``unknown``, for a user with real photographs and no trained predictor.

Two ways to ask, one per backend:

- a server (:class:`ServerAttributeAsker`): one chat request per image whose OpenAI ``response_format`` is a JSON
  schema with, per group, an enum of the schema's phrases and ``unknown``; vLLM and SGLang enforce it by guided
  decoding. The answer is read, never trusted: a value outside the group's enum, a missing group or an answer
  that is not a JSON object makes that group ``unknown``, never a guess. A server gives no probability, so a
  value it returned has confidence 1.0 (``unknown`` for an off-schema group has 0.0).
- a model in this process (:class:`LikelihoodAttributeAsker`): per group, every candidate phrase is scored by
  the model's likelihood of it as the answer to the group's question (the way LUPerson-T ranks CLIP prompts),
  the mean log-probability per token so long phrases are not penalised; the group's confidences are the
  softmax of those scores over its candidates, and a top value below ``min_confidence`` is ``unknown`` with
  that value's confidence kept, as the trained predictor does.

Both give :class:`AskedAttributes`, shaped as ``spac.predictor.model.Prediction`` (attributes, confidences,
embedding), so the corpus filters and captions use them unchanged. torch and transformers come only through
``spac.generation.in_process``, when a model in this process is opened. The server's instruction and the
groups' questions are data (templates/prompts/attributes.yaml, versioned; its sha256 goes to job.json).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from spac.attributes import UNKNOWN, Schema, load_schema
from spac.generation.backends import Backend
from spac.generation.prompts import ATTRIBUTES_FILE, AttributePrompts, load_attribute_prompts, prompt_files_sha256
from spac.generation.requests import CaptionRequest, TextGenerator

PREDICTOR_NAME = "mllm"  # --predictor mllm: the job's and spac caption's name for this predictor
SCHEMA_NAME = "pedestrian_attributes"
ANSWER_TOKENS = 256  # six short phrases as JSON take about 70 tokens; guided decoding may add whitespace
RETURNED_CONFIDENCE = 1.0  # a value a server returned: it gives no probability


@dataclass(frozen=True)
class AskedAttributes:
    """One image's attributes and confidences, shaped as spac.predictor.model.Prediction.

    ``off_schema``: the groups whose answer was missing or not one of the schema's values (made ``unknown``);
    ``failure``: the request's failure kind when the model gave no answer at all (every group ``unknown``).
    """

    attributes: dict[str, str]
    confidences: dict[str, float]
    off_schema: tuple[str, ...] = ()
    failure: str | None = None
    embedding: None = None  # no appearance vector: identity cleaning needs the trained predictor


class AttributeAsker(Protocol):
    def describe(self) -> dict[str, Any]:
        """JSON-ready, for job.json: the backend and how it is asked."""
        ...

    def ask(self, images: Sequence[bytes]) -> list[AskedAttributes]:
        """One answer per corpus JPEG, in order; never raises for one image."""
        ...


def response_format(schema: Schema) -> dict[str, Any]:
    """The OpenAI ``response_format`` that constrains an answer to the schema: every group required, each an
    enum of its phrases and ``unknown``, nothing else."""
    properties = {group.name: {"type": "string", "enum": list(group.labels)} for group in schema.groups}
    json_schema = {
        "type": "object",
        "properties": properties,
        "required": list(schema.group_names),
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": json_schema, "strict": True}}


def read_answer(text: str | None, schema: Schema) -> AskedAttributes:
    """The attributes of a server's answer: each group's value if it is one of the schema's (or ``unknown``),
    else ``unknown`` and the group named in ``off_schema``."""
    try:
        answer = json.loads(text) if text is not None else None
    except (json.JSONDecodeError, RecursionError):
        answer = None
    if not isinstance(answer, dict):
        answer = {}
    attributes, confidences, off_schema = {}, {}, []
    for group in schema.groups:
        value = answer.get(group.name)
        if isinstance(value, str) and value in group:
            attributes[group.name], confidences[group.name] = value, RETURNED_CONFIDENCE
        else:
            attributes[group.name], confidences[group.name] = UNKNOWN, 0.0
            off_schema.append(group.name)
    return AskedAttributes(attributes, confidences, tuple(off_schema))


def _image_key(image_jpeg: bytes) -> str:
    """A request's key (its seed material): the image's own digest, so the same image is asked the same way."""
    return hashlib.sha256(image_jpeg).hexdigest()[:16]


class ServerAttributeAsker:
    """Asks an OpenAI-compatible server for the six groups as schema-constrained JSON, one request per image
    through the caption-model client (its concurrency, retries and failure kinds)."""

    def __init__(self, generator: TextGenerator, schema: Schema, prompts: AttributePrompts | None = None) -> None:
        self.generator = generator
        self.schema = schema
        self.prompts = prompts or load_attribute_prompts(schema)
        self.response_format = response_format(schema)
        self.instruction = self.prompts.instruction.format(groups=", ".join(schema.group_names))

    def describe(self) -> dict[str, Any]:
        return _description(self.generator.describe(), self.prompts)

    def ask(self, images: Sequence[bytes]) -> list[AskedAttributes]:
        requests = [
            CaptionRequest(_image_key(jpeg), jpeg, "", self.instruction, "attributes", self.response_format)
            for jpeg in images
        ]
        answers = self.generator.generate(requests)
        return [
            read_answer(a.text, self.schema) if a.failure is None else _unanswered(self.schema, a.failure)
            for a in answers
        ]


def _unanswered(schema: Schema, failure: str) -> AskedAttributes:
    groups = schema.group_names
    return AskedAttributes(dict.fromkeys(groups, UNKNOWN), dict.fromkeys(groups, 0.0), groups, failure)


class PhraseScorer(Protocol):
    """spac.generation.in_process.InProcessGenerator: a model that scores phrases as answers."""

    def describe(self) -> dict[str, Any]: ...

    def phrase_scores(self, image_jpeg: bytes, question: str, phrases: Sequence[str]) -> list[float] | None: ...


def softmax(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    weights = [math.exp(score - top) for score in scores]
    total = sum(weights)
    return [weight / total for weight in weights]


class LikelihoodAttributeAsker:
    """Ranks each group's phrases by a model's mean log-probability per token of the phrase as the answer to
    the group's question; confidences are the softmax over the group's phrases (:meth:`distributions`)."""

    def __init__(
        self,
        scorer: PhraseScorer,
        schema: Schema,
        min_confidence: float = 0.0,
        prompts: AttributePrompts | None = None,
    ) -> None:
        self.scorer = scorer
        self.schema = schema
        self.min_confidence = min_confidence
        self.prompts = prompts or load_attribute_prompts(schema)

    def describe(self) -> dict[str, Any]:
        return _description(self.scorer.describe(), self.prompts, self.min_confidence)

    def distributions(self, image_jpeg: bytes) -> dict[str, dict[str, float]] | None:
        """Group -> phrase -> probability (summing to 1 over the group's phrases); None when the model could
        not score the image."""
        distributions = {}
        for group in self.schema.groups:
            phrases = [value.phrase for value in group.values]
            scores = self.scorer.phrase_scores(image_jpeg, self.prompts.questions[group.name], phrases)
            if scores is None:
                return None
            distributions[group.name] = dict(zip(phrases, softmax(scores)))
        return distributions

    def ask(self, images: Sequence[bytes]) -> list[AskedAttributes]:
        return [self._decide(self.distributions(jpeg)) for jpeg in images]

    def _decide(self, distributions: Mapping[str, Mapping[str, float]] | None) -> AskedAttributes:
        if distributions is None:
            return _unanswered(self.schema, "error")
        attributes, confidences = {}, {}
        for group, probabilities in distributions.items():
            phrase = max(probabilities, key=probabilities.__getitem__)  # the first of equals: schema order
            confidences[group] = probabilities[phrase]
            attributes[group] = phrase if confidences[group] >= self.min_confidence else UNKNOWN
        return AskedAttributes(attributes, confidences)


def open_asker(
    backend: Backend,
    min_confidence: float = 0.0,
    schema: Schema | None = None,
    loaded: PhraseScorer | None = None,
) -> AttributeAsker:
    """The asker of ``backend``: JSON through a server (answers up to ANSWER_TOKENS long), or the likelihoods of
    a model loaded here (``loaded``, when the caller already has it: ``spac caption`` captions with it too)."""
    schema = schema or load_schema()
    if backend.server is not None:
        return ServerAttributeAsker(_answering(backend).open(), schema)
    return LikelihoodAttributeAsker(loaded or backend.open(), schema, min_confidence)  # type: ignore[arg-type]


def _answering(backend: Backend) -> Backend:
    """The backend with room for a whole JSON answer (a caption's token budget may cut one short)."""
    return replace(backend, decoding=replace(backend.decoding, max_new_tokens=ANSWER_TOKENS))


def describe_asker(backend: Backend, min_confidence: float = 0.0) -> dict[str, Any]:
    """What :func:`open_asker`'s asker describes, without loading a model: for job.json."""
    prompts = load_attribute_prompts(load_schema())
    if backend.server is not None:
        return _description(_answering(backend).describe(), prompts)
    return _description(backend.describe(), prompts, min_confidence)


def _description(
    generator: dict[str, Any], prompts: AttributePrompts, min_confidence: float | None = None
) -> dict[str, Any]:
    """A server asked for JSON (no threshold: it gives no probability), or a model's likelihoods; with the
    version and sha256 of the questions file."""
    asked = {"prompts_version": prompts.version, "prompt_files_sha256": prompt_files_sha256(ATTRIBUTES_FILE)}
    if min_confidence is None:
        return {"asked": "json_schema", "generator": generator, **asked}
    return {"asked": "likelihood", "generator": generator, **asked, "min_confidence": min_confidence}
