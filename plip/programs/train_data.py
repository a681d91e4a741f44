"""Training batches streamed from corpus shards: identity-aware grouping, train transform, text choice.

Stages, per rank and DataLoader worker: ``shards.open_corpus`` (undecoded, seeded shuffle buffer,
repeated pass after pass so every rank gets its fixed number of batches) -> records parsed ->
:func:`group_by_identity` (P identities x K images per batch, bounded buffer) -> :func:`collate`
(decode, resize, random flip, normalise with ``plip.transforms.train_transform``; one random text per sample;
tokens and IAP masks of its attribute phrases: the record's stored ``attribute_spans``, else spaCy's).

Every random choice of batch ``i`` of epoch ``e`` on rank ``r`` comes from its own generator seeded by
``(seed, e, r, i)``, and the sample order from seeds of ``(seed, e, pass)``: a batch is the
same whatever happened before it, so a resumed run recreates the stream and skips the consumed
batches (skipped batches are grouped but never decoded).

Records and images are decoded by the corpus reader (``shards.reader.decode_record`` / ``sample_image``: the
project's one image decode policy), so a damaged one is a one-line InputError naming its shard and key.
A damaged sample (unreadable or invalid record or image, or a damaged shard) goes to the stream's webdataset-style
handler (``BatchSpec.skip_bad_samples``): by default it stops training with a one-line error naming the
sample; skipping drops it before grouping (a batch keeps its P x K samples, which costs one extra image
decode per sample) and each batch carries ``skipped_samples``, the samples its worker dropped since its
previous batch, so the count reaches the training process from DataLoader workers too.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from transformers import PreTrainedTokenizerBase

import shards
from common.digests import stable_int
from common.errors import InputError
from plip.masking import Span, mask_batch
from plip.transforms import train_transform
from shards import reader
from shards.reader import Handler, SkipAndCount, reraise
from shards.sample import record_texts

Sample = dict[str, Any]  # {"key": str, "url": str (its shard), "record": dict, "jpg": bytes}


# --- grouping ------------------------------------------------------------------------------------


def _take_distinct(ready: list[tuple[int, list[Sample]]], count: int) -> list[int] | None:
    """Positions of the oldest ``count`` full buckets with distinct identities, or None if too few."""
    chosen, seen = [], set()
    for position, (identity, _) in enumerate(ready):
        if identity not in seen:
            chosen.append(position)
            seen.add(identity)
            if len(chosen) == count:
                return chosen
    return None


def group_by_identity(
    samples: Iterable[Sample],
    ids_per_batch: int,
    images_per_id: int,
    max_buffer: int,
    stats: dict[str, int] | None = None,
) -> Iterator[list[Sample]]:
    """Batches of ``ids_per_batch`` distinct identities x ``images_per_id`` samples, identity after identity.

    An identity's samples wait in a bucket until it holds K; full buckets wait until P distinct identities
    are ready. When more than ``max_buffer`` samples wait, the oldest unfinished bucket is dropped (an
    identity too rare in the stream to fill one; full buckets go only when none is left);
    ``stats["dropped"]`` counts the samples lost that way. Leftovers at the end of the stream are dropped.
    """
    if ids_per_batch < 1 or images_per_id < 1:
        raise ValueError(f"need at least 1 identity x 1 image per batch, got {ids_per_batch} x {images_per_id}")
    if max_buffer < ids_per_batch * images_per_id:
        raise InputError(f"grouping buffer {max_buffer} is smaller than one batch ({ids_per_batch * images_per_id})")
    stats = stats if stats is not None else {}
    stats.setdefault("dropped", 0)
    pending: dict[int, list[Sample]] = {}  # identity -> unfinished bucket; dict order = oldest first
    ready: list[tuple[int, list[Sample]]] = []
    buffered = 0
    for sample in samples:
        identity = sample["record"]["id"]
        pending.setdefault(identity, []).append(sample)
        buffered += 1
        if len(pending[identity]) == images_per_id:
            ready.append((identity, pending.pop(identity)))
            chosen = _take_distinct(ready, ids_per_batch)
            if chosen is not None:
                yield [s for position in chosen for s in ready[position][1]]
                ready = [entry for position, entry in enumerate(ready) if position not in chosen]
                buffered -= ids_per_batch * images_per_id
        while buffered > max_buffer:
            dropped = pending.pop(next(iter(pending))) if pending else ready.pop(0)[1]
            buffered -= len(dropped)
            stats["dropped"] += len(dropped)


# --- per-sample transforms -----------------------------------------------------------------------


def pick_text(record: dict[str, Any], rng: random.Random) -> tuple[str, list[Span] | None]:
    """One random text of the record and its stored attribute spans (None when the record has none)."""
    texts = record_texts(record)
    if not texts:
        raise InputError(f"sample {record.get('key')!r} has no caption")
    index = rng.randrange(len(texts))  # draws what rng.choice(texts) did: batches stay as they were
    stored = record.get("attribute_spans")  # one list per text, in record_texts' order
    return texts[index], (None if stored is None else [tuple(span) for span in stored[index]])


# --- batches -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchSpec:
    """Everything that decides the training batches besides the epoch and the start position."""

    source: str | Sequence[str]
    tokenizer: PreTrainedTokenizerBase
    ids_per_batch: int
    images_per_id: int
    steps_per_epoch: int
    total_steps: int  # for the IAP masking progress
    image_size: tuple[int, int] = (256, 128)
    max_length: int = 64
    shuffle: int = 1000
    group_buffer: int = 5000
    seed: int = 0
    rank: int = 0
    masking: bool = True  # build mlm_input_ids / mlm_labels for IAP
    skip_bad_samples: bool = False  # skip and count damaged samples instead of stopping


def _raw(sample: Sample) -> dict[str, Any]:
    """The reader's view of a sample (``__key__``, ``__url__``, members), for its decoders' messages."""
    return {"__key__": sample["key"], "jpg": sample["jpg"], **({"__url__": sample["url"]} if sample.get("url") else {})}


def image_of(sample: Sample) -> Image.Image:
    """The sample's image as RGB, decoded now by the corpus reader (the project's image decode policy); a
    one-line InputError naming shard and key when its jpg is damaged."""
    return reader.sample_image(_raw(sample))


def collate(samples: list[Sample], spec: BatchSpec, rng: random.Random, progress: float) -> dict[str, torch.Tensor]:
    """Decoded, transformed images + one tokenized text per sample (+ IAP masks at ``progress``)."""
    images = torch.stack([train_transform(image_of(s), spec.image_size, rng.random() < 0.5) for s in samples])
    picked = [pick_text(s["record"], rng) for s in samples]
    texts = [text for text, _ in picked]
    if spec.masking:
        tokens = mask_batch(
            texts, spec.tokenizer, progress, rng, spans=[spans for _, spans in picked], max_length=spec.max_length
        )
    else:
        encoded = spec.tokenizer(
            texts, padding="max_length", truncation=True, max_length=spec.max_length, return_tensors="pt"
        )
        tokens = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    identity_ids = torch.tensor([s["record"]["id"] for s in samples], dtype=torch.long)
    return {"images": images, "identity_ids": identity_ids, **tokens}


def _parsed(raw: Iterable[dict[str, Any]], handler: Handler, check_images: bool) -> Iterator[Sample]:
    """Raw samples with their record parsed (and their image test-decoded when ``check_images``); a damaged
    one goes to ``handler`` (webdataset's convention: it raises, or returns True to skip, False to stop)."""
    for raw_sample in raw:
        try:
            sample = {
                "key": raw_sample["__key__"],
                "url": raw_sample.get("__url__"),
                "record": reader.decode_record(raw_sample),
                "jpg": raw_sample["jpg"],
            }
            if check_images:
                image_of(sample)
        except InputError as exc:
            if handler(exc):
                continue
            return
        yield sample


def _endless_samples(spec: BatchSpec, epoch: int, worker: int, handler: Handler) -> Iterator[Sample]:
    """This rank's and worker's shards, pass after pass, each pass in a new seeded order."""
    for repeat in itertools.count():
        # One seed for every rank and worker: each permutes the shard list alike, so their splits stay disjoint.
        pipeline = shards.open_corpus(
            spec.source,
            shuffle=spec.shuffle,
            shard_shuffle=True,
            decode=False,
            seed=stable_int(spec.seed, "stream", epoch, repeat),
            handler=handler,
        )
        count = 0
        for sample in _parsed(pipeline, handler, check_images=spec.skip_bad_samples):
            count += 1
            yield sample
        if count == 0:
            raise InputError(
                f"rank {spec.rank} DataLoader worker {worker} received no samples: the corpus needs "
                "at least as many shards as ranks x workers"
            )


class IdentityBatches(IterableDataset):
    """One epoch of training batches from ``start`` on: ``steps_per_epoch - start`` dicts of tensors.

    Each dict also carries ``batch_index`` and ``skipped_samples``. With N DataLoader workers, worker w makes
    the batches whose index is w modulo N from its own shards; :func:`in_order` restores the order.
    """

    def __init__(self, spec: BatchSpec, epoch: int, start: int = 0) -> None:
        super().__init__()
        if not 0 <= start <= spec.steps_per_epoch:
            raise ValueError(f"start batch {start} outside the epoch of {spec.steps_per_epoch} batches")
        self.spec, self.epoch, self.start = spec, epoch, start

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        spec = self.spec
        # The counter lives in this (worker) process: each batch carries its share of the count.
        counter = SkipAndCount() if spec.skip_bad_samples else None
        groups = group_by_identity(
            _endless_samples(spec, self.epoch, worker, counter or reraise),
            spec.ids_per_batch,
            spec.images_per_id,
            spec.group_buffer,
        )
        counted = 0
        for index, samples in zip(range(worker, spec.steps_per_epoch, workers), groups):
            skipped = (counter.skipped if counter else 0) - counted
            counted += skipped
            if index < self.start:  # consumed before a resume: its skips are in the checkpoint's count
                continue
            rng = random.Random(stable_int(spec.seed, "batch", self.epoch, spec.rank, index))
            progress = (self.epoch * spec.steps_per_epoch + index) / max(spec.total_steps, 1)
            yield {**collate(samples, spec, rng, progress), "batch_index": index, "skipped_samples": skipped}


def in_order(batches: Iterable[dict[str, Any]], start: int) -> Iterator[dict[str, Any]]:
    """Re-sequence batches that arrive slightly out of order (round-robin workers) by ``batch_index``."""
    waiting: dict[int, dict[str, Any]] = {}
    expected = start
    for batch in batches:
        waiting[batch["batch_index"]] = batch
        while expected in waiting:
            yield waiting.pop(expected)
            expected += 1
    if waiting:
        raise ValueError(f"batches {sorted(waiting)} arrived but batch {expected} never did")


def train_batches(
    spec: BatchSpec, epoch: int, start: int = 0, workers: int = 0, pin_memory: bool = False
) -> Iterator[dict[str, Any]]:
    """The batches ``start, start+1, ...`` of ``epoch``, in order; ``workers`` DataLoader processes decode."""
    dataset = IdentityBatches(spec, epoch, start)
    if workers == 0:
        return iter(dataset)
    # An explicit generator keeps the DataLoader from drawing its base seed from torch's global RNG,
    # which dropout also uses: a resumed run must not see a different global RNG stream.
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(stable_int(spec.seed, "loader", epoch)),
    )
    return in_order(loader, start)


def count_samples(source: str | Sequence[str], handler: Handler = reraise) -> int:
    """Samples in the corpus: the folder's manifest total, else one pass over the shards' records (a damaged
    shard goes to ``handler``)."""
    if isinstance(source, str):
        manifest = _manifest_of(source)
        if manifest is not None:
            return int(manifest["totals"]["samples"])
    pipeline = shards.open_corpus(source, decode=False, split_by_node=False, split_by_worker=False, handler=handler)
    return sum(1 for _ in pipeline)


def _manifest_of(source: str) -> dict[str, Any] | None:
    if "{" in source or source.endswith(".tar"):
        return None
    try:
        return shards.read_manifest(source)
    except (OSError, InputError):
        return None
