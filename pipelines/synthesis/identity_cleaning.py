"""The identity-cleaning stage of the synthesis job: drop foreign images of an identity, merge split identities.

``CleanIdentities(config)`` takes per-image record dicts that carry ``embedding`` (float16 bytes,
``spac.corpus.identity_cleaning.embedding_bytes``) and returns a tagged tuple: ``images`` (kept records, without
``embedding``, ``identity`` rewritten to the canonical name when merged) and ``dead_letter`` (dropped
outliers). The method is ``spac.corpus.identity_cleaning``; this module is the graph, and no element grows with
the corpus:

1. ``GroupByKey`` per identity (an element is one identity's images) -> outliers out, the centre of the
   kept images computed;
2. each centre goes to ``lsh_tables`` buckets ``(dim, table, signature)`` -> ``GroupByKey`` per bucket -> the
   pairs of the bucket at or above ``merge_similarity`` (edges, deduplicated);
3. connected components by :data:`LABEL_ROUNDS` rounds of min-label propagation over the edges (each
   round one ``GroupByKey`` of the messages to a node: its own label and its neighbours' labels);
4. ``CoGroupByKey`` of each identity's kept records, dead letters and canonical name -> the output.

Every DoFn sorts what it receives, so the output does not depend on bundle order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np

from pipelines.shared.dead_letters import DEAD_LETTER, dead_letter
from pipelines.synthesis.transforms import counter
from shards.layout import STAGE_CLEAN
from spac.corpus.identity_cleaning import (
    CleaningConfig,
    embedding_from_bytes,
    lsh_planes,
    lsh_signatures,
    prepare_embeddings,
    score_bucket,
    split_outliers,
)

IMAGES = "images"
_CENTRES = "centres"
# Centres travel to every LSH table's bucket, so they travel small: float16 (cosines change by ~1e-3).
_CENTRE_DTYPE = np.dtype("<f2")
# Min-label propagation moves a label one edge per round. Merges come from tracklets of one person, so a
# component is a star or a short chain: 3 rounds resolve every component of diameter <= 3 exactly. In a
# longer chain a node ends with the smallest name within 3 edges, so the component is merged into a few
# groups instead of one (never with an identity outside it). The ``cleaned_merge_unconverged`` counter
# counts the nodes whose label still changed in the last round: 0 proves that every component resolved.
LABEL_ROUNDS = 3


def _strip(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "embedding"}


def outlier_reason(similarity: float, threshold: float) -> str:
    return f"identity cleaning: cosine {similarity:.2f} to identity centre below {threshold:.2f}"


class SplitIdentity(beam.DoFn):
    """(identity, records) -> kept records and dead letters keyed by identity, and the identity's centre
    (tag ``centres``: ``(identity, float16 bytes)``). A record whose embedding is missing or unreadable is
    dead-lettered on its own."""

    def __init__(self, config: CleaningConfig):
        self._config = config

    def process(self, grouped: tuple[str, Iterable[dict]]) -> Iterator[Any]:
        identity, records = grouped
        ordered = sorted(records, key=lambda r: r["key"])
        usable, vectors = [], []
        for record in ordered:
            try:
                vector = embedding_from_bytes(record.get("embedding", b""), vectors[0].size if vectors else None)
            except ValueError as exc:
                counter("cleaned_unreadable_embeddings").inc()
                yield identity, ("dead", dead_letter(record["source"], STAGE_CLEAN, f"unreadable embedding: {exc}"))
                continue
            usable.append(record)
            vectors.append(vector)
        if not usable:
            return
        embeddings = prepare_embeddings(np.stack(vectors), self._config.remove_common_mode)
        verdict = split_outliers(embeddings, self._config)
        for index in verdict.dropped:
            counter("cleaned_outliers").inc()
            reason = outlier_reason(float(verdict.similarities[index]), self._config.outlier_similarity)
            yield identity, ("dead", dead_letter(usable[index]["source"], STAGE_CLEAN, reason))
        for index in verdict.kept:
            yield identity, ("kept", _strip(usable[index]))
        yield beam.pvalue.TaggedOutput(_CENTRES, (identity, verdict.centre.astype(_CENTRE_DTYPE).tobytes()))


class ToBuckets(beam.DoFn):
    """(identity, centre) -> one ``((dim, table, signature), (identity, centre))`` per LSH table (the
    dimension keeps centres of different sizes apart)."""

    def __init__(self, config: CleaningConfig):
        self._config = config
        self._planes: dict[int, np.ndarray] = {}

    def process(self, item: tuple[str, bytes]) -> Iterator[tuple[tuple[int, int, int], tuple[str, bytes]]]:
        identity, data = item
        centre = np.frombuffer(data, dtype=_CENTRE_DTYPE).astype(np.float32)
        planes = self._planes.get(centre.size)
        if planes is None:
            # float64 once per worker, not once per centre (lsh_signatures computes in float64)
            planes = self._planes[centre.size] = lsh_planes(centre.size, self._config).astype(np.float64)
        for table, signature in lsh_signatures(centre, planes, self._config):
            yield (centre.size, table, signature), (identity, data)


def bucket_edges(bucket: tuple[Any, Iterable[tuple[str, bytes]]], threshold: float) -> Iterator[tuple[str, str]]:
    """The edges ``(a, b)``, ``a < b``, among one bucket's centres at or above ``threshold``."""
    _, members = bucket
    ordered = sorted(members)
    if len(ordered) < 2:
        return
    names = [name for name, _ in ordered]
    centres = np.stack([np.frombuffer(data, dtype=_CENTRE_DTYPE) for _, data in ordered]).astype(np.float32)
    for a, b, _ in score_bucket(names, centres, threshold):
        yield a, b


def _both_directions(edge: tuple[str, str]) -> Iterator[tuple[str, str]]:
    a, b = edge
    yield a, b
    yield b, a


def _start_label(adjacency: tuple[str, Iterable[str]]) -> tuple[str, tuple[str, tuple[str, ...]]]:
    node, neighbours = adjacency
    return node, (node, tuple(sorted(set(neighbours))))


def _send_labels(state: tuple[str, tuple[str, tuple[str, ...]]]) -> Iterator[tuple[str, tuple]]:
    node, (label, neighbours) = state
    yield node, ("self", label, neighbours)
    for neighbour in neighbours:
        yield neighbour, ("label", label, ())


class TakeMinLabel(beam.DoFn):
    """A node's messages -> (node, (min label, neighbours)); the last round counts nodes still changing."""

    def __init__(self, last_round: bool):
        self._last_round = last_round

    def process(self, messages: tuple[str, Iterable[tuple]]) -> Iterator[tuple[str, tuple[str, tuple[str, ...]]]]:
        node, received = messages
        received = list(received)
        own = [m for m in received if m[0] == "self"][0]
        label = min(m[1] for m in received)
        if self._last_round and label != own[1]:
            counter("cleaned_merge_unconverged").inc()
        yield node, (label, own[2])


class JoinCanonical(beam.DoFn):
    """(identity, {"records", "canonical"}) -> the identity's kept records (renamed when merged) and its
    dead letters (tag ``dead_letter``), both in key / path order."""

    def process(self, joined: tuple[str, dict[str, Iterable[Any]]]) -> Iterator[Any]:
        identity, groups = joined
        canonical = sorted(groups["canonical"])
        name = canonical[0] if canonical else identity
        entries = list(groups["records"])
        for letter in sorted((e[1] for e in entries if e[0] == "dead"), key=lambda d: (d["path"], d["reason"])):
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, letter)
        kept = sorted((e[1] for e in entries if e[0] == "kept"), key=lambda r: r["key"])
        if name != identity and kept:
            counter("cleaned_merged_identities").inc()
        for record in kept:
            if name != identity:
                counter("cleaned_merged_images").inc()
                record = {**record, "identity": name}
            yield record


class CleanIdentities(beam.PTransform):
    """Per-image records with ``embedding`` -> tagged outputs ``images`` (main) and ``dead_letter``."""

    def __init__(self, config: CleaningConfig | None = None):
        super().__init__()
        self._config = config if config is not None else CleaningConfig()

    def expand(self, records: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        config = self._config
        split = (
            records
            | "KeyByIdentity" >> beam.Map(lambda record: (record["identity"], record))
            | "GroupByIdentity" >> beam.GroupByKey()
            | "SplitOutliers" >> beam.ParDo(SplitIdentity(config)).with_outputs(_CENTRES, main="records")
        )
        edges = (
            split[_CENTRES]
            | "ToBuckets" >> beam.ParDo(ToBuckets(config))
            | "GroupByBucket" >> beam.GroupByKey()
            | "ScoreBuckets" >> beam.FlatMap(bucket_edges, config.merge_similarity)
        )
        # a pair found in several LSH tables comes once per table: _start_label's set() keeps one
        state = (
            edges
            | "BothDirections" >> beam.FlatMap(_both_directions)
            | "GroupNeighbours" >> beam.GroupByKey()
            | "StartLabels" >> beam.Map(_start_label)
        )
        for round_ in range(LABEL_ROUNDS):
            state = (
                state
                | f"SendLabels{round_}" >> beam.FlatMap(_send_labels)
                | f"GatherLabels{round_}" >> beam.GroupByKey()
                | f"TakeMinLabel{round_}" >> beam.ParDo(TakeMinLabel(round_ == LABEL_ROUNDS - 1))
            )
        canonical = state | "CanonicalNames" >> beam.Map(lambda item: (item[0], item[1][0]))
        return (
            {"records": split.records, "canonical": canonical}
            | "JoinCanonical" >> beam.CoGroupByKey()
            | "Rename" >> beam.ParDo(JoinCanonical()).with_outputs(DEAD_LETTER, main=IMAGES)
        )
