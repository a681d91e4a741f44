"""RunInference glue for the SPAC attribute predictor: load once per worker, predict stacked batches.

Examples are the corpus JPEGs (bytes, small to move between steps); each batch is decoded and
preprocessed with the loaded predictor's own transform (its image size and normalisation), stacked and
zero-padded to ``batch_size``. CPU kernels pick their blocking by batch size, so one image's logits differ
in the last bits between a batch of 7 and one of 32; with one fixed shape an image's prediction does not
depend on how the runner happened to batch it, which keeps the corpus byte-identical across runs.

Two sizes, two jobs: ``batch_size`` is the one shape the model sees; ``max_batch_size`` (default
``batch_size``) caps what Beam's batching hands over in one call, and a larger batch is cut into
``batch_size`` chunks, each padded the same way. ``min_batch_size`` (default ``batch_size``) is Beam's
lower bound: Beam's batching otherwise starts at one element and grows by timing, and every small batch
costs a full padded forward (at 1,000 images and batch 32, 39 forwards instead of 32).

Model sharing (Beam's semantics, ``ModelHandler(large_model=..., model_copies=...)``): by default every SDK
process of a worker (one per vCPU on Dataflow) loads its own model. ``share_model`` loads one copy per
worker machine in a separate process that all of them call; ``model_copies=N`` loads exactly N such shared
copies (it implies sharing). The model object RunInference holds is then a proxy, so one call per batch
crosses the process boundary: the encoded bytes go in, the predictions come out (:class:`LoadedPredictor`).

On CUDA the forward runs under autocast (bf16 on compute capability 8.0 and newer, e.g. L4 and A100; fp16
before, e.g. T4) with the model and each batch in channels_last memory format. On the CPU neither is used,
so CPU predictions are exactly what they were.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from PIL import Image

from spac.predictor.model import AttributePredictor, load_predictor

METRICS_NAMESPACE = "RunInference_spac_predictor"  # where Beam puts RunInference's own metrics for this model


@dataclass(frozen=True)
class Acceleration:
    """How the forward runs on a device: an autocast dtype (None: full float32) and the memory format."""

    autocast_dtype: torch.dtype | None = None
    channels_last: bool = False


def acceleration_for(device: torch.device | str, capability: tuple[int, int] | None = None) -> Acceleration:
    """None of it on the CPU (byte-identical CPU results); on CUDA autocast and channels_last.

    ``capability``: the GPU's compute capability (default: asked of ``device``); bf16 from 8.0 on, where
    the tensor cores run it natively, fp16 before (a T4 has no bf16 units).
    """
    device = torch.device(device)
    if device.type != "cuda":
        return Acceleration()
    major, _ = capability if capability is not None else torch.cuda.get_device_capability(device)
    return Acceleration(torch.bfloat16 if major >= 8 else torch.float16, channels_last=True)


class LoadedPredictor:
    """The model RunInference holds: the predictor with the handler's fixed batch shape and acceleration.

    With a shared model this object lives in the model's process and the workers call it through a proxy,
    so everything a batch needs happens in one call of :meth:`predict_encoded`.
    """

    def __init__(
        self,
        predictor: AttributePredictor,
        batch_size: int,
        with_embeddings: bool = False,
        acceleration: Acceleration = Acceleration(),
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._predictor = predictor
        self._batch_size = batch_size
        self._with_embeddings = with_embeddings
        self._acceleration = acceleration
        if acceleration.channels_last:
            predictor.to(memory_format=torch.channels_last)

    def predict_encoded(self, batch: Sequence[bytes]) -> list[Any]:
        """One prediction per encoded image, in order; the model always sees ``[batch_size, 3, H, W]``."""
        predictions: list[Any] = []
        for start in range(0, len(batch), self._batch_size):
            predictions += self._predict_chunk(batch[start : start + self._batch_size])
        return predictions

    def _predict_chunk(self, chunk: Sequence[bytes]) -> list[Any]:
        images = [Image.open(io.BytesIO(data)) for data in chunk]
        stacked = self._predictor.preprocess_batch(images)
        for image in images:
            image.close()
        return self.predict_preprocessed(stacked)

    def predict_preprocessed(self, stacked: torch.Tensor) -> list[Any]:
        """Predictions for at most ``batch_size`` preprocessed images ``[n, 3, H, W]``: zero-padded to
        ``batch_size``, in this handler's memory format and autocast."""
        count = stacked.shape[0]
        if count > self._batch_size:
            raise ValueError(f"got {count} images for a batch of {self._batch_size}")
        padded = stacked.new_zeros((self._batch_size, *stacked.shape[1:]))
        padded[:count] = stacked
        acceleration = self._acceleration
        if acceleration.channels_last:
            padded = padded.contiguous(memory_format=torch.channels_last)  # kept by predict_tensors' .to(device)
        keywords = {"with_embeddings": True} if self._with_embeddings else {}
        autocast = (
            torch.autocast(device_type="cuda", dtype=acceleration.autocast_dtype)
            if acceleration.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            predictions = self._predictor.predict_tensors(padded, **keywords)
        return list(predictions[:count])


class SpacPredictorHandler(ModelHandler[bytes, PredictionResult, LoadedPredictor]):
    """Examples are encoded images (bytes); inferences are ``spac.predictor.model.Prediction``.

    The first four parameters keep their positions; the rest are keywords: ``max_batch_size`` (default
    ``batch_size``, at least ``batch_size``) and ``min_batch_size`` (default ``batch_size``) for Beam's
    batching, ``share_model`` and ``model_copies`` for Beam's model sharing (see the module text),
    ``with_embeddings`` asks the predictor for its image embeddings too.
    """

    def __init__(
        self,
        predictor_path: str | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        torch_threads: int | None = None,
        *,
        max_batch_size: int | None = None,
        min_batch_size: int | None = None,
        share_model: bool = False,
        model_copies: int | None = None,
        with_embeddings: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        max_batch_size = batch_size if max_batch_size is None else max_batch_size
        min_batch_size = batch_size if min_batch_size is None else min_batch_size
        if max_batch_size < batch_size:
            raise ValueError(
                f"max_batch_size ({max_batch_size}) must be at least batch_size ({batch_size}): "
                "every batch is padded to batch_size"
            )
        if not 1 <= min_batch_size <= max_batch_size:
            raise ValueError(
                f"min_batch_size must be between 1 and max_batch_size ({max_batch_size}), got {min_batch_size}"
            )
        if model_copies is not None and model_copies < 1:
            raise ValueError(f"model_copies must be at least 1, got {model_copies}")
        super().__init__(
            min_batch_size=min_batch_size,
            max_batch_size=max_batch_size,
            large_model=share_model,
            model_copies=model_copies,
        )
        self._predictor_path = predictor_path
        self._device = device
        self._batch_size = batch_size
        self._torch_threads = torch_threads
        self._with_embeddings = with_embeddings

    def wrap(self, predictor: AttributePredictor) -> LoadedPredictor:
        """``predictor`` with this handler's batch shape, embeddings choice and its device's acceleration."""
        return LoadedPredictor(predictor, self._batch_size, self._with_embeddings, acceleration_for(predictor.device))

    def load_model(self) -> LoadedPredictor:
        if self._torch_threads is not None:
            torch.set_num_threads(self._torch_threads)  # process-wide, like torch's own setting
        return self.wrap(load_predictor(self._predictor_path, device=self._device))

    def run_inference(
        self, batch: Sequence[bytes], model: LoadedPredictor, inference_args: dict[str, Any] | None = None
    ) -> Iterable[PredictionResult]:
        predictions = model.predict_encoded(list(batch))  # one call, also through a shared model's proxy
        return [PredictionResult(example, prediction) for example, prediction in zip(batch, predictions)]

    def get_num_bytes(self, batch: Sequence[bytes]) -> int:
        return sum(len(data) for data in batch)

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE
