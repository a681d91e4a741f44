"""The import job's corpus-wide files, each written once and sorted, so the same input gives the same bytes.

- ``deadletter.jsonl``: every entry left out (``path``, ``entry``, ``stage``, ``reason``), in entry order
  (:func:`entry_position`), through the shared bucket parts (:mod:`pipelines.shared.dead_letters`).
- ``import_report.json``: what was imported: the samples in the corpus, the dead letters per stage,
  and the released attribute phrases outside our schema, counted per group and phrase (kept verbatim
  in the records, never dropped). The counts are combined across workers (:class:`ImportSummary`), so
  nothing that grows with the corpus is gathered; the tally grows only with the distinct phrases.

Shards and ``manifest.json`` are written by the shared sink (:mod:`pipelines.shared.shard_sink`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import apache_beam as beam

from pipelines.importing.job import ImportJob
from pipelines.shared.shard_sink import publish_text
from shards import layout
from shards.sample import GROUPS


def entry_position(letter: Mapping[str, Any]) -> int:
    """Where a letter goes in ``deadletter.jsonl``: its entry's index in the file; -1 (first) for a letter of
    no entry (a key collision found by the shard writer)."""
    entry = letter.get("entry", -1)
    return entry if isinstance(entry, int) else -1


class ImportSummary(beam.CombineFn):
    """Items -> ``[samples, samples with an out-of-schema phrase, Counter((group, phrase))]``."""

    def create_accumulator(self) -> list[Any]:
        return [0, 0, Counter()]

    def add_input(self, accumulator: list[Any], item: Mapping[str, Any]) -> list[Any]:
        accumulator[0] += 1
        if item["out_of_schema"]:
            accumulator[1] += 1
            accumulator[2].update((group, phrase) for group, phrase in item["out_of_schema"])
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[list[Any]]) -> list[Any]:
        merged = self.create_accumulator()
        for samples, entries, tally in accumulators:
            merged[0] += samples
            merged[1] += entries
            merged[2].update(tally)
        return merged

    def extract_output(self, accumulator: list[Any]) -> list[Any]:
        return accumulator


def import_report(summary: list[Any], stages: Iterable[tuple[str, int]], job: ImportJob) -> dict[str, Any]:
    samples, entries, tally = summary
    by_group = {group: {} for group in GROUPS}
    by_rank = sorted(tally.items(), key=lambda pair: (GROUPS.index(pair[0][0]), -pair[1], pair[0][1]))
    for (group, phrase), count in by_rank:
        by_group[group][phrase] = count
    return {
        "format": job.format,
        "input": job.annotations,
        "images": job.images,
        "split": job.split,
        "attributes": job.attributes,
        "samples": samples,
        "dead_lettered": dict(sorted(stages)),
        "out_of_schema": {"phrases": sum(tally.values()), "samples": entries, "by_group": by_group},
    }


def write_import_report(summary: list[Any], output: str, job: ImportJob, stages: Iterable[tuple[str, int]]) -> str:
    report = import_report(summary, stages, job)
    return publish_text(output, layout.IMPORT_REPORT_NAME, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
