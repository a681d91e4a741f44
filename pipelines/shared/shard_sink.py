"""The corpus sink both jobs write through: one DoFn per shard (skipping complete ones), ``manifest.json`` from
the shard numbers (a small element, whatever the corpus size), and the small corpus-wide files, each atomic.

The shard writer can also write its shard's part of ``synthpedes_dataset.json`` (released SYNTH-PEDES
format), assembled from the parts by :mod:`pipelines.shared.corpus_parts`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import apache_beam as beam

from pipelines.shared import corpus_parts
from pipelines.shared.dead_letters import DEAD_LETTER, dead_letter
from pipelines.shared.metrics import counter
from shards import layout, remote
from shards.manifest import read_stats, write_manifest
from shards.sample import released_attributes
from shards.writer import shard_is_complete, write_shard


def released_entry(record: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of the released ``synthpedes_dataset.json``."""
    return {
        "id": record["id"],
        "file_path": record["file_path"],
        "attributes": [released_attributes(record)],
        "captions": list(record["captions"]),
        "prompt_caption": list(record["prompt_caption"]),
    }


class WriteShard(beam.DoFn):
    """Write one shard unless it is already complete; yield its index. Its counters (``written``,
    ``already_complete``, ``dropped_key_collision``) go to the job's ``namespace``.

    With ``dataset_parts`` it also (re)writes the shard's part of ``synthpedes_dataset.json``, complete
    shard or not, so a resumed run assembles the whole file.
    """

    def __init__(self, output: str, prefix: str, namespace: str, dataset_parts: bool = True):
        self._output = output
        self._prefix = prefix
        self._namespace = namespace
        self._dataset_parts = dataset_parts

    def _split_key_collisions(self, samples: list[dict]) -> tuple[list[dict], list[Any]]:
        """(samples to write, dead letters): of files sharing a key, the first by source path is kept and the
        others are dead-lettered, never written over it (keys are sha256-based: a 64-bit digest collision)."""
        kept: list[dict] = []
        letters: list[Any] = []
        for sample in samples:  # sorted by (key, source)
            if kept and kept[-1]["__key__"] == sample["__key__"]:
                counter(self._namespace, "dropped_key_collision").inc()
                letters.append(
                    beam.pvalue.TaggedOutput(
                        DEAD_LETTER,
                        dead_letter(
                            sample["json"]["source"],
                            layout.STAGE_WRITE,
                            f"key {sample['__key__']} already taken by {kept[-1]['json']['source']}",
                        ),
                    )
                )
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
            len(samples),
            samples[0]["__key__"],
            samples[-1]["__key__"],
        )

    def process(self, grouped: tuple[int, Iterable[dict]]) -> Iterator[Any]:
        index, samples = grouped
        samples, collisions = self._split_key_collisions(
            sorted(samples, key=lambda s: (s["__key__"], s["json"]["source"]))
        )
        yield from collisions
        if self._already_written(index, samples):
            counter(self._namespace, "already_complete").inc(len(samples))
        else:
            write_shard(self._output, index, samples, self._prefix)
            counter(self._namespace, "written").inc(len(samples))
        if self._dataset_parts:
            corpus_parts.write_part(
                self._output,
                corpus_parts.dataset_part_name(index),
                ",\n".join(json.dumps(released_entry(s["json"]), ensure_ascii=False) for s in samples),
            )
        yield index


def publish_text(output: str, name: str, text: str) -> str:
    fs, root = remote.resolve(output)
    fs.makedirs(root, exist_ok=True)
    path = remote.join(fs, root, name)
    remote.publish_bytes(fs, text.encode("utf-8"), path)
    return path


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
