"""RunInference glue for the SPAC attribute predictor: load once per worker, predict stacked batches.

Examples are the corpus JPEGs (bytes, small to move between steps); each batch is decoded and
preprocessed with the loaded predictor's own transform (its image size and normalisation), stacked and
zero-padded to ``batch_size``. CPU kernels pick their blocking by batch size, so one image's logits differ
in the last bits between a batch of 7 and one of 32; with one fixed shape an image's prediction does not
depend on how the runner happened to batch it, which keeps the corpus byte-identical across runs.
"""
from __future__ import annotations

import io
from typing import Any, Iterable, Optional, Sequence

import torch
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from PIL import Image

from spac.predictor import AttributePredictor, load_predictor


class SpacPredictorHandler(ModelHandler[bytes, PredictionResult, AttributePredictor]):
    """Examples are encoded images (bytes); inferences are ``spac.predictor.Prediction``."""

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
            torch.set_num_threads(self._torch_threads)  # process-wide, like torch's own setting
        return load_predictor(self._predictor_path, device=self._device)

    def run_inference(self, batch: Sequence[bytes], model: AttributePredictor,
                      inference_args: Optional[dict[str, Any]] = None) -> Iterable[PredictionResult]:
        tensors = []
        for data in batch:
            with Image.open(io.BytesIO(data)) as image:
                tensors.append(model.preprocess(image))
        stacked = torch.stack(tensors)
        padded = stacked.new_zeros((max(self._batch_size, len(batch)), *stacked.shape[1:]))
        padded[:len(batch)] = stacked
        predictions = model.predict_tensors(padded)[:len(batch)]
        return [PredictionResult(example, prediction) for example, prediction in zip(batch, predictions)]

    def get_num_bytes(self, batch: Sequence[bytes]) -> int:
        return sum(len(data) for data in batch)

    def get_metrics_namespace(self) -> str:
        return "RunInference_spac_predictor"
