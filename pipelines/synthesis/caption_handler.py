"""What the synthesis job's two caption-model stages share: their RunInference handler's frame and records.

Both stages (``--captioner mllm``, :mod:`pipelines.synthesis.caption_model`; ``--captioner spac``,
:mod:`pipelines.synthesis.neural_captioner`) take the job's records after the identity filters (their corpus JPEG
and attributes) in fixed batches of the stage's ``batch_size``, give each the captions the template stage writes
for it to fall back on (:func:`caption_items`), have the model write and check its texts, and hand back the same
records with their texts, the model's name and the outcome (:func:`records_with_texts`), counting the outcomes'
counters and the batch's time on the ``caption`` stage timer. :class:`CaptionHandler` is that frame; a stage says
how its model writes a batch (:meth:`CaptionHandler.writer`) and what names it in a record
(:meth:`CaptionHandler.model_name`).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from apache_beam.ml.inference.base import ModelHandler

from pipelines.synthesis.job import Sentences, job_captioner
from pipelines.synthesis.stage_rates import IMAGES_PREFIX, MICROS_PREFIX
from pipelines.synthesis.transforms import counter
from spac.captioning.captioner import Captioner
from spac.generation.grounding import GivenAttributes
from spac.generation.stage import CaptionItem, CaptionOutcome, caption_item

STAGE = "caption"  # the stage timer of the template captioner too: the job prints one caption rate either way
REPORT_FIELD = "caption_model_outcome"  # (counters, rejections) of a record's outcome, never written to a shard

Writer = Callable[[list[CaptionItem]], Sequence[CaptionOutcome]]  # a batch's items -> their outcomes, in order


class StageSettings(Protocol):
    """The job's settings of a caption stage (:class:`~pipelines.synthesis.job.CaptionModel`,
    :class:`~pipelines.synthesis.job.NeuralCaptioner`): what the handler needs of them."""

    @property
    def batch_size(self) -> int: ...


ModelT = TypeVar("ModelT")  # what RunInference holds: the stage's text generator or writer
SettingsT = TypeVar("SettingsT", bound=StageSettings)


class CaptionHandler(ModelHandler[dict, dict, ModelT], Generic[ModelT, SettingsT], abc.ABC):
    """Batches of ``model.batch_size`` records; ``sentences``, ``seed`` and ``styles`` are the job's, so a text
    the model does not get right falls back to the caption the template stage writes for that slot. With
    ``share_model`` or ``model_copies``, Beam's ``large_model`` sharing (one model per worker machine)."""

    metrics_namespace: ClassVar[str]  # RunInference's own metrics for the stage's model

    def __init__(
        self,
        model: SettingsT,
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
        self._captioner: Captioner | None = None  # the template captioner, built on a worker's first batch

    @abc.abstractmethod
    def writer(self, captioner: Captioner, model: ModelT) -> Writer:
        """How ``model`` writes and checks a batch's texts (``captioner``: the job's template captioner)."""

    @abc.abstractmethod
    def model_name(self) -> str:
        """What names the model in each record's ``caption_model``."""

    def run_inference(
        self, batch: Sequence[dict], model: ModelT, inference_args: dict[str, Any] | None = None
    ) -> list[dict]:
        if self._captioner is None:
            self._captioner = job_captioner(self._sentences)
        write = self.writer(self._captioner, model)  # before the stage timer starts, as the template captioner
        start = time.perf_counter_ns()
        outcomes = write(caption_items(batch, self._captioner, self._seed, self._styles))
        return records_with_texts(batch, outcomes, self.model_name(), start)

    def get_num_bytes(self, batch: Sequence[dict]) -> int:
        return sum(len(record["jpg"]) for record in batch)

    def get_metrics_namespace(self) -> str:
        return self.metrics_namespace


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
    """The records with their outcomes' texts, the model's name and (for
    :class:`~pipelines.synthesis.caption_model.SplitStageReport`) the outcome; counts the outcomes' counters and
    the batch's time since ``start_ns`` on the stage timer."""
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
