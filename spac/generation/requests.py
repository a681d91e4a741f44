"""What the caption-model stage asks a text generator, and what it gets back.

The one interface between the stage (`spac.generation.stage.generate_checked`) and its backends (an
OpenAI-compatible server, or a vision-language model in this process): a backend turns a batch of
`CaptionRequest`s into as many `GeneratedText`s, in the same order, and never raises for one request's failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class CaptionRequest:
    """One text to write about one image."""

    key: str  # the sample key (also the determinism seed material)
    image_jpeg: bytes  # the corpus JPEG bytes (what the shard stores)
    system: str  # system prompt text
    instruction: str  # user text: grounding (attribute union) + style instruction + rules
    style_id: str  # provenance, e.g. "dense" or "example:17"; recorded as styles "mllm:<style_id>"
    # An OpenAI response_format (a JSON schema the answer must follow: spac.generation.attributes); a server
    # sends it for guided decoding, a model in process ignores it (that path scores phrases instead).
    response_format: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class DecodingSettings:
    """How the model decodes: greedy unless a temperature is given."""

    max_new_tokens: int = 96
    temperature: float = 0.0  # 0 = greedy
    seed: int = 0  # used when temperature > 0


@dataclass(frozen=True)
class GeneratedText:
    """A backend's answer to one request: a text, or the kind of failure."""

    text: str | None  # None when the request failed
    # The failure kind when text is None: "timeout", "http_5xx", "http_4xx", "refused", "bad_response", "error".
    failure: str | None = None


class TextGenerator(Protocol):
    """A backend: writes one text per request."""

    def describe(self) -> dict[str, Any]:
        """JSON-ready, for job.json: {"kind": "server"|"in_process", "model": name,
        "files_sha256": {...} (a local model), "decoding": {...}}."""
        ...

    def generate(self, requests: Sequence[CaptionRequest]) -> list[GeneratedText]:
        """One answer per request, in the same order; a request's failure is a GeneratedText with its failure
        kind, never an exception."""
        ...
