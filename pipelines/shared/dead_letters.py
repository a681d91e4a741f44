"""Dead letters: every record a job leaves out, as ``{"path", "stage", "reason"}`` (a job may add fields) on the
tagged output :data:`DEAD_LETTER`, written to ``deadletter.jsonl`` through bucket parts
(:mod:`pipelines.shared.corpus_parts`), so no element ever holds every letter."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import apache_beam as beam

from pipelines.shared import corpus_parts
from shards import layout

DEAD_LETTER = "dead_letter"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def dead_letter(path: str, stage: str, reason: str) -> dict[str, str]:
    """A letter; ``stage`` is one of :data:`shards.layout.DEAD_LETTER_STAGES` (the names ``spac report`` counts)."""
    if stage not in layout.DEAD_LETTER_STAGES:
        raise ValueError(f"dead-letter stage {stage!r} is not one of shards.layout.DEAD_LETTER_STAGES")
    return {"path": path, "stage": stage, "reason": _ADDRESS.sub("", reason)}


def json_safe_path(path: str) -> str:
    """A path as text that any coder and JSON file accept: undecodable bytes become ``\\xNN``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def letter_line(letter: Mapping[str, Any]) -> str:
    """A letter as its line of ``deadletter.jsonl``."""
    return json.dumps(dict(letter), sort_keys=True, ensure_ascii=False)


def _positioned_line(
    letter: Mapping[str, Any], position_of: Callable[[Mapping[str, Any]], int] | None
) -> tuple[int, str]:
    return (position_of(letter) if position_of is not None else 0), letter_line(letter)


def _bucketed(positioned: tuple[int, str], ordered: bool) -> tuple[int, tuple[int, str]]:
    position, line = positioned
    bucket = corpus_parts.position_bucket(position) if ordered else corpus_parts.dead_letter_bucket(line)
    return bucket, positioned


class WriteDeadLetterFile(beam.PTransform):
    """Dead-letter dicts -> ``deadletter.jsonl``, through bucket parts.

    ``position_of`` (a module-level function: it travels to the workers) orders the file by a job's own
    position of a letter (e.g. the entry's index in its input file), then by line; without it the letters are
    hashed into buckets and the file is sorted by line inside each bucket. Either way the same letters give
    the same bytes.
    """

    def __init__(
        self,
        output: str,
        name: str = layout.DEAD_LETTER_NAME,
        position_of: Callable[[Mapping[str, Any]], int] | None = None,
    ):
        super().__init__()
        self._output, self._name, self._position_of = output, name, position_of

    def expand(self, letters: beam.PCollection) -> beam.PCollection:
        return (
            letters
            | "LetterLines" >> beam.Map(_positioned_line, self._position_of)
            | "BucketLetters" >> beam.Map(_bucketed, self._position_of is not None)
            | "GroupLetterBuckets" >> beam.GroupByKey()
            | "WriteLetterParts" >> beam.Map(corpus_parts.write_dead_letter_bucket, self._output)
            | "CollectLetterBuckets" >> beam.combiners.ToList()
            | "AssembleDeadLetters" >> beam.Map(corpus_parts.assemble_dead_letters, self._output, self._name)
        )
