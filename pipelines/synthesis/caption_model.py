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
reads. The neural captioner's stage (``--captioner spac``, :mod:`pipelines.synthesis.neural_captioner`) is the
same handler (:class:`pipelines.synthesis.caption_handler.CaptionHandler`: its items, its records, its stage
timer) with another model, so its records and report take the same path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam

from pipelines.synthesis.caption_handler import REPORT_FIELD, CaptionHandler, Writer
from pipelines.synthesis.job import CaptionModel
from spac.captioning.captioner import Captioner
from spac.generation.requests import TextGenerator
from spac.generation.stage import GenerationSettings, generate_checked

METRICS_NAMESPACE = "RunInference_spac_caption_model"  # RunInference's own metrics for this model
STAGE_COUNTS = "stage_counts"  # SplitStageReport's output of (counter name, value)
REJECTED = "rejected"  # SplitStageReport's output of (reason, (key, style, text)): rejected texts, not failures


class CaptionModelHandler(CaptionHandler[TextGenerator, CaptionModel]):
    """The caption model's stage over :class:`CaptionHandler`'s batches: the model RunInference holds is the
    stage's text generator (``model.backend``), its texts checked by :func:`generate_checked`."""

    metrics_namespace = METRICS_NAMESPACE
    _settings: GenerationSettings | None = None  # built with the template captioner, on a worker's first batch

    def load_model(self) -> TextGenerator:
        return self._model.backend.open()

    def writer(self, captioner: Captioner, model: TextGenerator) -> Writer:
        if self._settings is None:
            self._settings = self._model.settings(captioner, self._seed, self._styles)
        settings = self._settings
        return lambda items: generate_checked(items, model, settings)

    def model_name(self) -> str:
        return self._model.backend.model


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
