"""The job's writers: one DoFn per shard (skipping complete ones) and the small corpus-wide files, each atomic.

``synthpedes_dataset.json`` (released SYNTH-PEDES format) and ``deadletter.jsonl`` (every image left
out, with its stage and reason) are assembled from parts (:mod:`pipelines.corpus_parts`); the shard
writer writes its shard's part. ``filter_report.json`` is written from counts per reason and
``manifest.json`` from the shard numbers: small elements, whatever the corpus size.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Iterator, Mapping

import apache_beam as beam

from pipelines import corpus_parts
from pipelines.transforms import DEAD_LETTER, counter, dead_letter
from shards import layout, remote
from shards.manifest import read_stats, write_manifest
from shards.sample import released_attributes
from shards.writer import shard_is_complete, write_shard
from spac.corpus import filters as corpus_filters

DATASET_NAME = "synthpedes_dataset.json"
DEAD_LETTER_NAME = "deadletter.jsonl"
FILTER_REPORT_NAME = "filter_report.json"


def released_entry(record: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of the released ``synthpedes_dataset.json``."""
    return {"id": record["id"], "file_path": record["file_path"], "attributes": [released_attributes(record)],
            "captions": list(record["captions"]), "prompt_caption": list(record["prompt_caption"])}


class WriteShard(beam.DoFn):
    """Write one shard unless it is already complete; yield its index.

    With ``dataset_parts`` it also (re)writes the shard's part of ``synthpedes_dataset.json``, complete
    shard or not, so a resumed run assembles the whole file.
    """

    def __init__(self, output: str, prefix: str, dataset_parts: bool = True):
        self._output = output
        self._prefix = prefix
        self._dataset_parts = dataset_parts

    @staticmethod
    def _split_key_collisions(samples: list[dict]) -> tuple[list[dict], list[Any]]:
        """(samples to write, dead letters): of files sharing a key, the first by source path is kept and the
        others are dead-lettered, never written over it (keys are sha256-based: a 64-bit digest collision)."""
        kept: list[dict] = []
        letters: list[Any] = []
        for sample in samples:  # sorted by (key, source)
            if kept and kept[-1]["__key__"] == sample["__key__"]:
                counter("dropped_key_collision").inc()
                letters.append(beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(
                    sample["json"]["source"], "write",
                    f"key {sample['__key__']} already taken by {kept[-1]['json']['source']}")))
            else:
                kept.append(sample)
        return kept, letters

    def _already_written(self, index: int, samples: list[dict]) -> bool:
        """Complete, and made of these samples (a cheap check that it is not left over from other options)."""
        if not shard_is_complete(self._output, index, self._prefix):
            return False
        fs, root = remote.resolve(self._output)
        stats = read_stats(fs, root, layout.shard_stem(index, self._prefix))
        return (stats.get("count"), stats.get("first_key"), stats.get("last_key")) == (
            len(samples), samples[0]["__key__"], samples[-1]["__key__"])

    def process(self, grouped: tuple[int, Iterable[dict]]) -> Iterator[Any]:
        index, samples = grouped
        samples, collisions = self._split_key_collisions(
            sorted(samples, key=lambda s: (s["__key__"], s["json"]["source"])))
        yield from collisions
        if self._already_written(index, samples):
            counter("already_complete").inc(len(samples))
        else:
            write_shard(self._output, index, samples, self._prefix)
            counter("written").inc(len(samples))
        if self._dataset_parts:
            corpus_parts.write_part(self._output, corpus_parts.dataset_part_name(index), ",\n".join(
                json.dumps(released_entry(s["json"]), ensure_ascii=False) for s in samples))
        yield index


class WriteDeadLetterFile(beam.PTransform):
    """Dead-letter dicts -> ``deadletter.jsonl``, through hashed bucket parts (see :mod:`pipelines.corpus_parts`)."""

    def __init__(self, output: str, name: str = DEAD_LETTER_NAME):
        super().__init__()
        self._output, self._name = output, name

    def expand(self, letters: beam.PCollection) -> beam.PCollection:
        return (letters
                | "LetterLines" >> beam.Map(corpus_parts.letter_line)
                | "BucketLetters" >> beam.Map(lambda line: (corpus_parts.dead_letter_bucket(line), line))
                | "GroupLetterBuckets" >> beam.GroupByKey()
                | "WriteLetterParts" >> beam.Map(corpus_parts.write_dead_letter_bucket, self._output)
                | "CollectLetterBuckets" >> beam.combiners.ToList()
                | "AssembleDeadLetters" >> beam.Map(corpus_parts.assemble_dead_letters, self._output, self._name))


def publish_text(output: str, name: str, text: str) -> str:
    fs, root = remote.resolve(output)
    fs.makedirs(root, exist_ok=True)
    path = remote.join(fs, root, name)
    remote.publish_bytes(fs, text.encode("utf-8"), path)
    return path


def report_counts(letter: Mapping[str, str]) -> tuple[str, str]:
    """What the filter report counts a dead letter under: (stage, kind of reason)."""
    return letter["stage"], corpus_filters.reason_kind(letter["reason"])


def write_filter_report(counts: Iterable[tuple[tuple[str, str], int]], output: str,
                        config: corpus_filters.FilterConfig) -> str:
    """Counts per reason of the images left out (filters: every reason listed, zeros included), from
    ``((stage, reason category), count)`` pairs."""
    filtered: dict[str, int] = {}
    dead: dict[str, int] = {}
    for (stage, reason), count in counts:
        table = filtered if stage == "filter" else dead
        table[reason] = table.get(reason, 0) + count
    report = {
        "thresholds": {"max_unknown": config.max_unknown, "gender_vote": config.gender_vote,
                       "min_images": config.min_images, "max_images": config.max_images, "seed": config.seed},
        "dead_lettered": dict(sorted(dead.items())),
        "filtered": {reason: filtered.get(reason, 0) for reason in corpus_filters.REASONS},
    }
    return publish_text(output, FILTER_REPORT_NAME, json.dumps(report, indent=2) + "\n")


def finish_manifest(shard_indices: Iterable[int], output: str, prefix: str) -> str | None:
    """Write manifest.json once every shard is done; None (and no file) when the corpus is empty.

    It lists exactly this run's shards (0..n-1 of the assignment), never other complete shards lying in
    the folder; ValueError when one of them is missing or the indices have a gap.
    """
    indices = sorted(shard_indices)
    if not indices:
        return None
    if indices != list(range(len(indices))):
        raise ValueError(f"shard indices {indices[0]}..{indices[-1]} are not 0..{len(indices) - 1} without gaps")
    write_manifest(output, prefix, shard_count=len(indices))
    return output


def print_written_outputs(output: str, names: Iterable[str]) -> None:
    """Print ``output: <path>`` for each of ``names`` the job wrote (a dry run, or an empty corpus, writes fewer)."""
    fs, root = remote.resolve(output)
    for name in names:
        if fs.exists(remote.join(fs, root, name)):
            print(f"output: {output.rstrip('/')}/{name}")
