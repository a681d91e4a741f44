"""RunInference glue for ``--predictor mllm``: the --mllm_* model asked for each image's attributes
(:mod:`spac.generation.attributes`) in place of the trained predictor.

Examples and inferences are those of :class:`pipelines.synthesis.model_handler.SpacPredictorHandler` (the corpus
JPEG in, a Prediction-shaped answer out), so the job attaches, filters and captions them the same way. The model
RunInference holds is the asker: a server's client, or a model loaded once per worker process (once per worker
machine with ``--share_model``). Counters: ``mllm_attributes_off_schema`` (groups whose answer was not one of
the schema's values, made unknown) and ``mllm_attributes_failed_<kind>`` (images with no answer at all).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from pipelines.synthesis.transforms import counter
from spac.generation.attributes import AttributeAsker, open_asker
from spac.generation.backends import Backend

METRICS_NAMESPACE = "RunInference_spac_attribute_model"  # RunInference's own metrics for this model


class AttributeModelHandler(ModelHandler[bytes, PredictionResult, AttributeAsker]):
    """Batches of ``backend.batch_size`` images; every group below ``min_confidence`` is unknown (a model in
    process; a server's values have confidence 1.0)."""

    def __init__(
        self,
        backend: Backend,
        min_confidence: float = 0.0,
        *,
        share_model: bool = False,
        model_copies: int | None = None,
    ) -> None:
        super().__init__(
            min_batch_size=backend.batch_size,
            max_batch_size=backend.batch_size,
            large_model=share_model,
            model_copies=model_copies,
        )
        self._backend = backend
        self._min_confidence = min_confidence

    def load_model(self) -> AttributeAsker:
        return open_asker(self._backend, self._min_confidence)

    def run_inference(
        self, batch: Sequence[bytes], model: AttributeAsker, inference_args: dict[str, Any] | None = None
    ) -> Iterable[PredictionResult]:
        answers = model.ask(list(batch))
        for answer in answers:
            if answer.failure is not None:
                counter(f"mllm_attributes_failed_{answer.failure}").inc()
            elif answer.off_schema:
                counter("mllm_attributes_off_schema").inc(len(answer.off_schema))
        return [PredictionResult(example, answer) for example, answer in zip(batch, answers)]

    def get_num_bytes(self, batch: Sequence[bytes]) -> int:
        return sum(len(data) for data in batch)

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE
