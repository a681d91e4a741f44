"""The synthesis job's own corpus file: ``filter_report.json``, written from counts per reason (a small element,
whatever the corpus size). Shards, ``manifest.json``, the dataset JSON and the dead letters are written by the
shared sink (:mod:`pipelines.shared`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pipelines.shared.shard_sink import publish_text
from shards import layout
from spac.corpus import filters as corpus_filters


def report_counts(letter: Mapping[str, str]) -> tuple[str, str]:
    """What the filter report counts a dead letter under: (stage, kind of reason)."""
    return letter["stage"], corpus_filters.reason_kind(letter["reason"])


REJECTED_EXAMPLES = 5  # rejected texts kept per reason in the report: the smallest (key, style) ones


def caption_model_report(
    counts: Iterable[tuple[str, int]], examples: Iterable[tuple[str, Sequence[tuple[str, str, str]]]]
) -> dict[str, Any]:
    """The caption-model stage's part of the filter report: its counters summed over the corpus, and for each
    rejection reason up to :data:`REJECTED_EXAMPLES` rejected texts ``{key, style, text}``, from (name, total)
    and (reason, [(key, style, text), ...]) pairs."""
    return {
        "counters": dict(sorted(counts)),
        "rejected_examples": {
            reason: [{"key": key, "style": style, "text": text} for key, style, text in sorted(texts)]
            for reason, texts in sorted(examples)
        },
    }


def write_filter_report(
    counts: Iterable[tuple[tuple[str, str], int]],
    output: str,
    config: corpus_filters.FilterConfig,
    caption_model: Mapping[str, Any] | None = None,
) -> str:
    """Counts per reason of the images left out (filters: every reason listed, zeros included), from
    ``((stage, reason category), count)`` pairs; with ``--captioner mllm`` or ``spac`` the caption stage's report
    (:func:`caption_model_report`) under ``caption_model``."""
    filtered: dict[str, int] = {}
    dead: dict[str, int] = {}
    for (stage, reason), count in counts:
        table = filtered if stage == "filter" else dead
        table[reason] = table.get(reason, 0) + count
    report = {
        "thresholds": {
            "max_unknown": config.max_unknown,
            "gender_vote": config.gender_vote,
            "min_images": config.min_images,
            "max_images": config.max_images,
            "seed": config.seed,
        },
        "dead_lettered": dict(sorted(dead.items())),
        "filtered": {reason: filtered.get(reason, 0) for reason in corpus_filters.REASONS},
    }
    if caption_model is not None:
        report["caption_model"] = dict(caption_model)
    return publish_text(output, layout.FILTER_REPORT_NAME, json.dumps(report, indent=2) + "\n")
