"""The synthesis job's steps as small DoFns and functions; the SPAC logic they call lives in ``spac`` and ``shards``.

Records travel as plain dicts: ``key``, ``identity``, ``file_path``, ``source``, ``jpg`` (the corpus
JPEG) and, once predicted, ``attributes`` (``{group: {"value", "confidence"}}``), then the captions and
their ``attribute_spans``.
Every image that leaves the job early becomes a dead-letter dict ``{"path", "stage", "reason"}``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.ml.inference.base import PredictionResult

from common.errors import error_line
from pipelines.shared import metrics
from pipelines.shared.dead_letters import DEAD_LETTER, dead_letter, json_safe_path
from pipelines.shared.images import read_image_file
from pipelines.shared.spans import caption_spans
from pipelines.synthesis.inputs import ImageRef, is_beside_identities, ref_from_path
from pipelines.synthesis.job import Sentences, job_captioner
from shards.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageRejected, decode_image
from shards.layout import STAGE_DECODE, STAGE_FILTER, STAGE_READ
from shards.sample import GROUPS, IMAGE_SIZE, encode_image
from spac.captioning import captioner
from spac.corpus import filters as corpus_filters
from spac.corpus.identity_cleaning import embedding_bytes

NAMESPACE = "synthesize"  # the synthesis job's counters
SIZES = "sizes"
IMAGES = "images_aside"  # (identity, ((key, source), corpus JPEG)): see FilterImage
CONFIDENCE_DECIMALS = 4


def counter(name: str) -> beam.metrics.metric.Metrics.DelegatingCounter:
    return metrics.counter(NAMESPACE, name)


def stage_timer(stage: str) -> contextlib.AbstractContextManager[None]:
    """:func:`pipelines.shared.metrics.stage_timer` in this job's namespace, read back by
    :mod:`pipelines.synthesis.stage_rates`."""
    return metrics.stage_timer(NAMESPACE, stage)


class ToImageRefs(beam.DoFn):
    """A matched file -> its ImageRef; files beside the identity folders are skipped, others dead-lettered.

    ``ref_of(root, path)`` reads the layout (default: the folder layout; e.g.
    ``pipelines.synthesis.inputs.luperson_nl_ref``)."""

    def __init__(self, root: str, ref_of: Callable[[str, str], ImageRef | str] = ref_from_path):
        self._root = root
        self._ref_of = ref_of

    def process(self, matched: Any) -> Iterator[Any]:
        path = matched.path  # a FileMetadata: its path never travels on its own before this check
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:  # os.listdir's surrogateescape: the name is not UTF-8 on disk
            counter("read").inc()
            counter("dead_lettered").inc()
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTER,
                dead_letter(
                    json_safe_path(path), STAGE_READ, "file name is not valid UTF-8 (rename the file to keep it)"
                ),
            )
            return
        if is_beside_identities(self._root, path):
            counter("ignored_beside_identities").inc()
            return
        ref = self._ref_of(self._root, path)
        if isinstance(ref, str):
            counter("read").inc()
            counter("dead_lettered").inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(path, STAGE_READ, ref))
        else:
            yield ref


class DecodeImage(beam.DoFn):
    """Read and decode one image under the shared decode policy (:mod:`shards.images`), re-encode it as the
    corpus JPEG (fixed size); refused and unreadable files go to the dead letter with the reason."""

    def __init__(self, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES):
        self._max_pixels = max_pixels
        self._max_bytes = max_bytes

    def process(self, ref: ImageRef) -> Iterator[Any]:
        counter("read").inc()
        with stage_timer("decode"):
            decoded = self._decode(ref)
        yield decoded

    def _decode(self, ref: ImageRef) -> Any:
        try:
            # a webdataset sample carries its bytes; a file is read under the decode policy (a FIFO never opened)
            data = ref.data if ref.data is not None else read_image_file(ref.source, self._max_bytes)
            jpg = encode_image(
                decode_image(data, min_size=IMAGE_SIZE, max_pixels=self._max_pixels, max_bytes=self._max_bytes)
            )
        except (ImageRejected, OSError) as exc:  # OSError: the file could not be read at all
            counter("dead_lettered").inc()
            reason = str(exc) if isinstance(exc, ImageRejected) else f"unreadable file: {error_line(exc)}"
            return beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(ref.source, STAGE_DECODE, reason))
        counter("decoded").inc()
        return {"key": ref.key, "identity": ref.identity, "file_path": ref.file_path, "source": ref.source, "jpg": jpg}


def keyed_for_inference(record: dict) -> tuple[dict, bytes]:
    """(record, its corpus JPEG): the predictor sees exactly the image the sample will carry."""
    return record, record["jpg"]


def attach_prediction(keyed: tuple[dict, PredictionResult]) -> dict:
    """Store the predicted attributes in the record as ``{group: {"value", "confidence"}}``."""
    record, result = keyed
    prediction = result.inference
    attributes = {
        g: {
            "value": prediction.attributes[g],
            "confidence": round(float(prediction.confidences[g]), CONFIDENCE_DECIMALS),
        }
        for g in GROUPS
    }
    if prediction.embedding is None:
        return {**record, "attributes": attributes}
    # only with --identity_cleaning on; the cleaning stage removes it again, shards never see it
    return {**record, "attributes": attributes, "embedding": embedding_bytes(prediction.embedding)}


def values_of(record: dict) -> dict[str, str]:
    return {group: entry["value"] for group, entry in record["attributes"].items()}


class FilterImage(beam.DoFn):
    """The per-image corpus filter (too many unknown groups, upper and lower both unknown)."""

    def __init__(self, max_unknown: int):
        self._max_unknown = max_unknown

    def process(self, record: dict) -> Iterator[Any]:
        with stage_timer("filter"):
            reason = corpus_filters.image_rejection(values_of(record), self._max_unknown)
        if reason is None:
            yield record
            return
        counter(f"filtered_{reason}").inc()
        yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(record["source"], STAGE_FILTER, reason))


def set_image_aside(record: dict) -> Iterator[Any]:
    """The record without its corpus JPEG, and on :data:`IMAGES` ``(identity, ((key, source), jpg))``.

    The bytes, ~20x the rest of a record, then skip the grouping by identity and the identity filters and
    meet their record again where samples are placed (:func:`pipelines.synthesis.ordering.place_samples`):
    on DirectRunner each shuffle copies every byte it carries. Applied after identity cleaning, which may
    move a record to another identity; not when the captioner reads the image.
    """
    yield beam.pvalue.TaggedOutput(IMAGES, (record["identity"], ((record["key"], record["source"]), record["jpg"])))
    yield {field: value for field, value in record.items() if field != "jpg"}


class FilterIdentity(beam.DoFn):
    """The identity filters (gender vote, minimum count, deterministic cap) on one identity's images.

    Besides the kept records it yields ``(identity, kept count)`` on the :data:`SIZES` output, which the
    shard ordering (:mod:`pipelines.synthesis.ordering`) numbers identities and places images from.
    """

    def __init__(self, config: corpus_filters.FilterConfig):
        self._config = config

    def process(self, grouped: tuple[str, Iterable[dict]]) -> Iterator[Any]:
        identity, records = grouped
        by_key: dict[str, dict] = {}
        for record in sorted(records, key=lambda r: (r["key"], r["source"])):
            taken = by_key.setdefault(record["key"], record)
            if taken is not record:  # two files of one identity with one key (a 64-bit digest collision)
                counter("dropped_key_collision").inc()
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTER,
                    dead_letter(record["source"], "write", f"key {record['key']} already taken by {taken['source']}"),
                )
        verdict = corpus_filters.filter_identity({k: values_of(r) for k, r in by_key.items()}, self._config)
        for key in sorted(verdict.dropped):
            reason = verdict.dropped[key]
            counter(f"filtered_{reason}").inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(by_key[key]["source"], STAGE_FILTER, reason))
        for key in sorted(verdict.kept):
            record = by_key[key]
            voted = verdict.kept[key]
            attributes = {
                g: entry if entry["value"] == voted[g] else {**entry, "value": voted[g]}
                for g, entry in record["attributes"].items()
            }
            yield {**record, "attributes": attributes}
        if verdict.kept:
            yield beam.pvalue.TaggedOutput(SIZES, (identity, len(verdict.kept)))


def add_captions(
    record: dict, seed: int, styles: Sequence[str] | None, with_captioner: captioner.Captioner | None = None
) -> dict:
    """Two style captions (``captions``/``styles``), one library sentence (``prompt_caption``), by
    ``with_captioner`` (default: spac's, with the bundled library), and their ``attribute_spans``."""
    caption = with_captioner if with_captioner is not None else captioner.caption
    with stage_timer("caption"):
        texts = caption(values_of(record), record["key"], seed=seed, styles=list(styles) if styles else None)
    styled = [t for t in texts if t.style != "template"]
    template = [t for t in texts if t.style == "template"][:1]
    with stage_timer("spans"):  # the captioner's own spans; spaCy only for texts it cannot vouch for
        spans, by_spacy = caption_spans(styled + template)
    if by_spacy:
        counter("spans_by_spacy").inc(by_spacy)
    return {
        **record,
        "captions": [t.text for t in styled],
        "styles": [t.style for t in styled],
        "prompt_caption": [t.text for t in template],
        "attribute_spans": spans,
    }


class AddCaptions(beam.DoFn):
    """:func:`add_captions` with a ``--sentences`` library: the job's captioner (:func:`job_captioner`) is built
    once per worker from the library text the job read at launch."""

    def __init__(self, seed: int, styles: Sequence[str] | None, sentences: Sentences):
        self._seed, self._styles, self._sentences = seed, styles, sentences
        self._captioner: captioner.Captioner | None = None

    def setup(self) -> None:
        self._captioner = job_captioner(self._sentences)

    def process(self, record: dict) -> Iterator[dict]:
        yield add_captions(record, self._seed, self._styles, self._captioner)
