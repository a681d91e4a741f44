"""Which predicted attribute values the caption-model stage trusts: the grounding of its prompts and checks.

A value is trusted when its group is known and its confidence is at least the stage's ``min_confidence``; a
confidence of None (a value given rather than predicted: typed by a user, imported with a corpus) is trusted.
Unknown groups, and phrases outside the schema (a released corpus's own values), are left out: the model may say
what it sees there, and no check holds it to anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from spac.attributes import UNKNOWN, AttributeValue, Schema


class PredictedAttributes(Protocol):
    """Group -> phrase (or ``unknown``) and group -> confidence; spac.predictor.model.Prediction is one."""

    @property
    def attributes(self) -> Mapping[str, str]: ...

    @property
    def confidences(self) -> Mapping[str, float | None]: ...


@dataclass(frozen=True)
class GivenAttributes:
    """Attributes from anywhere but the predictor's output (a corpus record, a user's flag)."""

    attributes: Mapping[str, str]
    confidences: Mapping[str, float | None]

    @classmethod
    def from_record(cls, entries: Mapping[str, Mapping[str, object]]) -> GivenAttributes:
        """From a corpus record's ``attributes`` (``{group: {"value": phrase, "confidence": float | None}}``)."""
        return cls(
            {g: str(e["value"]) for g, e in entries.items()},
            {g: _confidence(e.get("confidence")) for g, e in entries.items()},
        )


def _confidence(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def trusted_values(prediction: PredictedAttributes, min_confidence: float, schema: Schema) -> dict[str, AttributeValue]:
    """Group -> the schema value of every known group whose confidence is at least ``min_confidence``
    (gender included), in the schema's group order."""
    trusted = {}
    for group in schema.group_names:
        phrase = prediction.attributes.get(group, UNKNOWN)
        confidence = prediction.confidences.get(group)
        if phrase != UNKNOWN and phrase in schema.group(group) and (confidence is None or confidence >= min_confidence):
            trusted[group] = schema.value(group, phrase)
    return trusted
