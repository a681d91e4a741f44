"""RunInference glue for the caption-model stage (``--captioner mllm``): texts written by a vision-language model.

Examples are the job's records after the identity filters (their corpus JPEG and attributes); inferences are
the same records with their texts (``captions``, ``styles``, ``prompt_caption``, ``attribute_spans``), written
by :func:`spac.generation.stage.generate_checked` over a batch: asked, checked, asked again once, else SPAC's
template caption. The model RunInference holds is the stage's text generator: an OpenAI-compatible server's
client, or a model loaded once per worker process, or once per worker machine with ``--share_model`` (Beam's
``large_model``), as the attribute predictor is (:mod:`pipelines.synthesis.model_handler`).

The stage's counters (``mllm_requested``, ``mllm_kept``, ``mllm_rejected_<reason>``, ``mllm_failed_<kind>``,
``mllm_fallback``, ``mllm_unfilled``) go to the synthesis job's namespace, with its ``caption`` stage timer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from apache_beam.ml.inference.base import ModelHandler

from pipelines.synthesis.job import CaptionModel, Sentences, job_captioner
from pipelines.synthesis.stage_rates import IMAGES_PREFIX, MICROS_PREFIX
from pipelines.synthesis.transforms import counter
from spac.captioning.captioner import Captioner
from spac.generation.grounding import GivenAttributes
from spac.generation.requests import TextGenerator
from spac.generation.stage import GenerationSettings, caption_item, generate_checked

METRICS_NAMESPACE = "RunInference_spac_caption_model"  # RunInference's own metrics for this model
STAGE = "caption"  # the stage timer of the template captioner too: the job prints one caption rate either way


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
            self._stage = captioner, self._model.settings(captioner, self._seed)
        return self._stage

    def run_inference(
        self, batch: Sequence[dict], model: TextGenerator, inference_args: dict[str, Any] | None = None
    ) -> list[dict]:
        captioner, settings = self._captioner_and_settings()
        start = time.perf_counter_ns()
        items = [
            caption_item(
                r["key"], r["jpg"], GivenAttributes.from_record(r["attributes"]), captioner, self._seed, self._styles
            )
            for r in batch
        ]
        outcomes = generate_checked(items, model, settings)
        counter(MICROS_PREFIX + STAGE).inc((time.perf_counter_ns() - start) // 1000)
        counter(IMAGES_PREFIX + STAGE).inc(len(batch))
        for outcome in outcomes:
            for name, value in outcome.counters.items():
                counter(name).inc(value)
        return [{**record, **outcome.record_fields()} for record, outcome in zip(batch, outcomes)]

    def get_num_bytes(self, batch: Sequence[dict]) -> int:
        return sum(len(record["jpg"]) for record in batch)

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE
