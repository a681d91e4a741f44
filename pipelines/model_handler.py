"""RunInference glue for the SPAC attribute predictor: load once per worker, predict stacked batches.

Every batch is zero-padded to ``batch_size`` before the forward pass. CPU kernels pick their blocking by
batch size, so one image's logits differ in the last bits between a batch of 7 and one of 32; with one
fixed shape an image's prediction no longer depends on how the runner happened to batch it, which keeps
the corpus byte-identical across runners and runs.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import torch
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from spac.predictor import AttributePredictor, load_predictor


class SpacPredictorHandler(ModelHandler[torch.Tensor, PredictionResult, AttributePredictor]):
    """Examples are preprocessed image tensors ``[3, H, W]``; inferences are ``spac.predictor.Prediction``."""

    def __init__(self, predictor_path: str | None = None, device: str = "cpu", batch_size: int = 32,
                 torch_threads: int | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        super().__init__(min_batch_size=1, max_batch_size=batch_size)
        self._predictor_path = predictor_path
        self._device = device
        self._batch_size = batch_size
        self._torch_threads = torch_threads

    def load_model(self) -> AttributePredictor:
        if self._torch_threads is not None:
            torch.set_num_threads(self._torch_threads)  # process-wide: also the preprocessing step's tensors
        return load_predictor(self._predictor_path, device=self._device)

    def run_inference(self, batch: Sequence[torch.Tensor], model: AttributePredictor,
                      inference_args: Optional[dict[str, Any]] = None) -> Iterable[PredictionResult]:
        stacked = torch.stack(list(batch))
        padded = stacked.new_zeros((max(self._batch_size, len(batch)), *stacked.shape[1:]))
        padded[:len(batch)] = stacked
        predictions = model.predict_tensors(padded)[:len(batch)]
        return [PredictionResult(example, prediction) for example, prediction in zip(batch, predictions)]

    def get_num_bytes(self, batch: Sequence[torch.Tensor]) -> int:
        return sum(t.element_size() * t.nelement() for t in batch)

    def get_metrics_namespace(self) -> str:
        return "RunInference_spac_predictor"
