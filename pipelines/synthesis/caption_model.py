"""RunInference glue for the caption-model stage (``--captioner mllm``): texts written by a vision-language model.

Examples are the job's records after the identity filters (their corpus JPEG and attributes); inferences are
the same records with their texts (``captions``, ``styles``, ``prompt_caption``, ``attribute_spans``), written
by :func:`spac.generation.stage.generate_checked` over a batch: asked, checked, asked again once, else SPAC's
template caption. The model RunInference holds is the stage's text generator: an OpenAI-compatible server's
client, or a model loaded once per worker process, or once per worker machine with ``--share_model`` (Beam's
``large_model``), as the attribute predictor is (:mod:`pipelines.synthesis.model_handler`).

The stage's counters (``mllm_requested``, ``mllm_kept``, ``mllm_rejected_<reason>``, ``mllm_failed_<kind>``,
``mllm_fallback``, ``mllm_unfilled``) go to the synthesis job's namespace, with its ``caption`` stage timer.
Each record names the model (``caption_model``) and carries, until :class:`SplitStageReport` takes it off, its
outcome's counters and rejections, from which the job writes the stage's report (filter_report.json, see
:func:`pipelines.synthesis.outputs.caption_model_report`): Beam's counters are not in any file ``spac report``
reads. The neural captioner's stage (``--captioner spac``, :mod:`pipelines.synthesis.neural_captioner`) builds
its items and records with the same helpers (:func:`caption_items`, :func:`records_with_texts`), so its records
and report take the same path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler

from pipelines.synthesis.job import CaptionModel, Sentences, job_captioner
from pipelines.synthesis.stage_rates import IMAGES_PREFIX, MICROS_PREFIX
from pipelines.synthesis.transforms import counter
from spac.captioning.captioner import Captioner
from spac.generation.grounding import GivenAttributes
from spac.generation.requests import TextGenerator
from spac.generation.stage import CaptionItem, CaptionOutcome, GenerationSettings, caption_item, generate_checked

METRICS_NAMESPACE = "RunInference_spac_caption_model"  # RunInference's own metrics for this model
STAGE = "caption"  # the stage timer of the template captioner too: the job prints one caption rate either way
REPORT_FIELD = "caption_model_outcome"  # (counters, rejections) of a record's outcome, never written to a shard
STAGE_COUNTS = "stage_counts"  # SplitStageReport's output of (counter name, value)
REJECTED = "rejected"  # SplitStageReport's output of (reason, (key, style, text)): rejected texts, not failures


class CaptionModelHandler(ModelHandler[dict, dict, TextGenerator]):
    """Batches of ``model.batch_size`` records; ``sentences``, ``seed`` and ``styles`` are the job's, so a text
    the model does not get right falls back to the caption the template stage writes for that slot."""

    def __init__(
        self,
        model: CaptionModel,
        sentences: Sentences | None,
        seed: int,
        styles: Sequence[str] | None = None,
        *,
        share_model: bool = False,
        model_copies: int | None = None,
    ) -> None:
        super().__init__(
            min_batch_size=model.batch_size,
            max_batch_size=model.batch_size,
            large_model=share_model,
            model_copies=model_copies,
        )
        self._model = model
        self._sentences = sentences
        self._seed = seed
        self._styles = list(styles) if styles else None
        self._stage: tuple[Captioner, GenerationSettings] | None = None  # built on a worker's first batch

    def load_model(self) -> TextGenerator:
        return self._model.backend.open()

    def _captioner_and_settings(self) -> tuple[Captioner, GenerationSettings]:
        if self._stage is None:
            captioner = job_captioner(self._sentences)
            self._stage = captioner, self._model.settings(captioner, self._seed, self._styles)
        return self._stage

    def run_inference(
        self, batch: Sequence[dict], model: TextGenerator, inference_args: dict[str, Any] | None = None
    ) -> list[dict]:
        captioner, settings = self._captioner_and_settings()
        start = time.perf_counter_ns()
        outcomes = generate_checked(caption_items(batch, captioner, self._seed, self._styles), model, settings)
        return records_with_texts(batch, outcomes, self._model.backend.model, start)

    def get_num_bytes(self, batch: Sequence[dict]) -> int:
        return sum(len(record["jpg"]) for record in batch)

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE


def caption_items(
    batch: Sequence[dict], captioner: Captioner, seed: int, styles: Sequence[str] | None
) -> list[CaptionItem]:
    """The stage's items of a batch of records: each record's JPEG and attributes, with the captions the
    template stage writes for it (``seed``, ``styles``) to fall back on."""
    return [
        caption_item(r["key"], r["jpg"], GivenAttributes.from_record(r["attributes"]), captioner, seed, styles)
        for r in batch
    ]


def records_with_texts(
    batch: Sequence[dict], outcomes: Sequence[CaptionOutcome], model: str, start_ns: int
) -> list[dict]:
    """The records with their outcomes' texts, the model's name and (for :class:`SplitStageReport`) the
    outcome; counts the outcomes' counters and the batch's time since ``start_ns`` on the stage timer."""
    counter(MICROS_PREFIX + STAGE).inc((time.perf_counter_ns() - start_ns) // 1000)
    counter(IMAGES_PREFIX + STAGE).inc(len(batch))
    for outcome in outcomes:
        for name, value in outcome.counters.items():
            counter(name).inc(value)
    return [
        {
            **record,
            **outcome.record_fields(),
            "caption_model": model,
            REPORT_FIELD: (dict(outcome.counters), outcome.rejections),
        }
        for record, outcome in zip(batch, outcomes)
    ]


class SplitStageReport(beam.DoFn):
    """The record without its outcome (main output); the outcome's counters to :data:`STAGE_COUNTS` and its
    rejected texts (a failed request has none) to :data:`REJECTED`, for the stage's report."""

    def process(self, record: dict) -> Iterator[Any]:
        counters, rejections = record[REPORT_FIELD]
        yield {name: value for name, value in record.items() if name != REPORT_FIELD}
        for name, value in counters.items():
            yield beam.pvalue.TaggedOutput(STAGE_COUNTS, (name, value))
        for rejection in rejections:
            if rejection.text is not None:
                yield beam.pvalue.TaggedOutput(
                    REJECTED, (rejection.reason, (record["key"], rejection.style, rejection.text))
                )
