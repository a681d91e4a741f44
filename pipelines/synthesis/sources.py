"""The read side of the synthesis job: every input kind (:mod:`pipelines.synthesis.inputs`) -> image refs + dead
letters, and ``--limit``.

- folder / glob: ``MatchFiles`` -> :class:`pipelines.synthesis.transforms.ToImageRefs`;
- manifest: the file read in one step (its rows were checked at launch for a local one);
- LUPerson-NL: ``MatchFiles`` -> ``ToImageRefs`` with :func:`pipelines.synthesis.inputs.luperson_nl_ref`;
- webdataset: the shard list (braces expanded, globs matched) -> ``Reshuffle`` so shards spread over
  workers -> :class:`ReadShard`, one shard per work item, streamed through Beam's FileSystems (gs://
  works); each sample's image bytes travel in its ref (``ImageRef.data``).

``--limit N`` keeps the N images with the smallest corpus keys, whatever the listing order: a global
``Top.Smallest(N)`` over the keys alone (an accumulator of N strings, bounded by the flag, not the corpus),
whose largest key is a one-string side input that every ref is compared with.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from common.errors import error_line
from pipelines.shared.dead_letters import DEAD_LETTER, dead_letter
from pipelines.synthesis import transforms
from pipelines.synthesis.inputs import (
    IdentityPatternTimedOut,
    ImageRef,
    InputSpec,
    ShardSample,
    luperson_nl_ref,
    read_image_list,
    ref_from_path,
    shard_paths,
    shard_samples,
    wanted_members,
    webdataset_ref,
)
from pipelines.synthesis.transforms import counter
from shards.images import DEFAULT_MAX_BYTES
from shards.layout import STAGE_READ


class ReadShard(beam.DoFn):
    """One webdataset shard -> an ImageRef per sample; a sample without an image member (or with one over
    ``max_bytes``) or whose identity cannot be told is a dead letter ``<shard>#<key>``; a shard that cannot
    be opened or read to its end is one dead letter (the samples read before the damage are kept)."""

    def __init__(self, spec: InputSpec, max_bytes: int = DEFAULT_MAX_BYTES):
        self._spec = spec
        self._max_bytes = max_bytes
        self._warned = False

    @staticmethod
    def _dead(path: str, reason: str) -> beam.pvalue.TaggedOutput:
        counter("read").inc()
        counter("dead_lettered").inc()
        return beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(path, STAGE_READ, reason))

    def _ref(self, shard: str, sample: ShardSample) -> ImageRef | str:
        try:
            return webdataset_ref(shard, sample, self._spec)
        except IdentityPatternTimedOut as exc:  # counted, and said once per worker: many make the job crawl
            counter("identity_pattern_timeouts").inc()
            if not self._warned:
                self._warned = True
                logging.warning(
                    "%s: that sample is dead-lettered; the counter identity_pattern_timeouts counts "
                    "them (a pattern that times out on most keys makes the job crawl: fix the pattern)",
                    exc,
                )
            return str(exc)

    def process(self, shard: str) -> Iterator[Any]:
        counter("shards_read").inc()
        wanted = wanted_members(self._spec)
        try:
            stream = FileSystems.open(shard, compression_type=CompressionTypes.UNCOMPRESSED)
        except Exception as exc:  # any filesystem's "cannot open" (missing file, no access)
            yield self._dead(shard, f"cannot open the shard ({error_line(exc)})")
            return
        last = None
        try:
            with stream:
                for sample in shard_samples(stream, wanted, self._max_bytes):
                    last = sample.key
                    ref = self._ref(shard, sample)
                    yield self._dead(f"{shard}#{sample.key}", ref) if isinstance(ref, str) else ref
        except Exception as exc:  # whatever a damaged stream raises (tarfile, zlib, the filesystem)
            where = f"after sample {last!r}" if last is not None else "at its start"
            yield self._dead(shard, f"unreadable tar {where} ({error_line(exc)})")


def _largest(keys: list[str]) -> str | None:
    return keys[-1] if keys else None


class _WithinLimit(beam.DoFn):
    def process(self, ref: ImageRef, last_key: str | None) -> Iterator[ImageRef]:
        if last_key is not None and ref.key <= last_key:
            yield ref
        else:
            counter("beyond_limit").inc()


def limit_refs(refs: beam.PCollection, limit: int) -> beam.PCollection:
    """The refs with the ``limit`` smallest keys (more only when keys repeat: collisions are dealt with later)."""
    last_key = (
        refs
        | "LimitKeys" >> beam.Map(lambda ref: ref.key)
        | "SmallestKeys" >> beam.combiners.Top.Smallest(limit)
        | "LastKeyWithinLimit" >> beam.Map(_largest)
    )
    return refs | "WithinLimit" >> beam.ParDo(_WithinLimit(), beam.pvalue.AsSingleton(last_key))


def _matched(pipeline: beam.Pipeline, spec: InputSpec, ref_of: Any) -> tuple[beam.PCollection, beam.PCollection]:
    matched = (
        pipeline
        | "MatchFiles" >> fileio.MatchFiles(spec.pattern)
        | "ToImageRefs" >> beam.ParDo(transforms.ToImageRefs(spec.root, ref_of)).with_outputs(DEAD_LETTER, main="refs")
    )
    return matched.refs, matched[DEAD_LETTER]


def read_refs(
    pipeline: beam.Pipeline, spec: InputSpec, limit: int | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[beam.PCollection, beam.PCollection]:
    """(image refs, dead letters of what could not become one) for any input kind; ``limit``: only the
    refs with the N smallest keys. ``max_bytes`` bounds a webdataset member read into memory (pass
    ``--max_file_bytes``; the decode step applies it to every image again)."""
    if spec.format == "webdataset":
        read = (
            pipeline
            | "ShardPattern" >> beam.Create([spec.pattern])
            | "ListShards" >> beam.FlatMap(shard_paths)
            | "DistributeShards" >> beam.Reshuffle()
            | "ReadShards" >> beam.ParDo(ReadShard(spec, max_bytes)).with_outputs(DEAD_LETTER, main="refs")
        )
        refs, letters = read.refs, read[DEAD_LETTER]
    elif spec.format == "luperson_nl":
        refs, letters = _matched(pipeline, spec, luperson_nl_ref)
    elif spec.manifest is not None:
        refs = (
            pipeline | "ManifestPath" >> beam.Create([spec.manifest]) | "ReadManifest" >> beam.FlatMap(read_image_list)
        )
        letters = pipeline | "NoLayoutErrors" >> beam.Create([])
    else:
        refs, letters = _matched(pipeline, spec, ref_from_path)
    return (limit_refs(refs, limit) if limit is not None else refs), letters
