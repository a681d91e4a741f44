"""RunInference glue for ``--captioner spac``: each kept image's two style texts written by SPAC's neural captioner.

Examples and inferences are those of :class:`pipelines.synthesis.caption_handler.CaptionHandler`, as for the
caption model's stage (the job's records after the identity filters in; the same records with their texts,
``caption_model`` and the stage's outcome out), so the graph splits off the stage's report the same way. The
model RunInference holds is a :class:`spac.generation.styled.StyledWriter` over the captioner loaded once per
worker process, or once per worker machine with ``--share_model`` (Beam's ``large_model``), as the attribute
predictor is: one call per batch, the corpus JPEGs in and the texts out, through the shared model's proxy too.
The checks run here: :func:`spac.generation.styled.caption_styled` keeps a text that passes them, else the
template caption of its slot. Counters (``spac_requested``, ``spac_kept``, ``spac_rejected_<reason>``,
``spac_fallback``) go to the synthesis job's namespace, with its ``caption`` stage timer.

On CUDA the captioner runs under autocast, as the predictor's forward does (:func:`acceleration_for`: bf16 from
compute capability 8.0, fp16 before); on the CPU it does not, so CPU texts are exactly those of ``spac caption``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from pipelines.synthesis.caption_handler import CaptionHandler, Writer
from pipelines.synthesis.job import NeuralCaptioner
from pipelines.synthesis.model_handler import acceleration_for
from spac.captioning.captioner import Captioner
from spac.generation.styled import StyledCaptioner, StyledWriter, caption_styled
from spac.neural_captioner.files import LoadedCaptioner, load_captioner

METRICS_NAMESPACE = "RunInference_spac_neural_captioner"  # RunInference's own metrics for this model


class Autocast:
    """A loaded captioner whose texts are written under autocast to ``dtype`` on its device."""

    def __init__(self, captioner: LoadedCaptioner, dtype: torch.dtype) -> None:
        self._captioner, self._dtype = captioner, dtype
        self.style_names = captioner.style_names

    def caption_images(self, images: Sequence[Image.Image], style: int, **decoding: Any) -> list[str]:
        with torch.autocast(device_type=self._captioner.model.device.type, dtype=self._dtype):
            return self._captioner.caption_images(images, style, **decoding)


def accelerated(captioner: LoadedCaptioner) -> StyledCaptioner:
    """``captioner`` under its device's autocast (the module doc), or as it is on the CPU."""
    dtype = acceleration_for(captioner.model.device).autocast_dtype
    return captioner if dtype is None else Autocast(captioner, dtype)


class NeuralCaptionerHandler(CaptionHandler[StyledWriter, NeuralCaptioner]):
    """The neural captioner's stage over :class:`CaptionHandler`'s batches, the captioner loaded on ``device``;
    the other arguments are :class:`CaptionHandler`'s."""

    metrics_namespace = METRICS_NAMESPACE

    def __init__(self, model: NeuralCaptioner, device: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(model, *args, **kwargs)
        self._device = device

    def load_model(self) -> StyledWriter:
        captioner = accelerated(load_captioner(self._model.path, device=self._device))
        return StyledWriter(captioner, self._model.decoding, self._model.batch_size)

    def writer(self, captioner: Captioner, model: StyledWriter) -> Writer:
        return lambda items: caption_styled(items, model, self._model.checks)

    def model_name(self) -> str:
        return self._model.path
