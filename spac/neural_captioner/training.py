"""Training a neural captioner on captioned images: ``(image, text, style index, label id per group or -1)``.

The shared training kit (``common.training``: precision, autocast, the gradient scaler, RNG state, the one
"same settings" check) and the step loop the attribute predictor's trainer runs too (``common.training_loop``:
the batch order, the warm-up + cosine schedule, the atomic resume state, validation) carry over: **batch s is a
pure function of (seed, s)** (epoch e visits the examples in a permutation seeded by (seed, e)), dropout draws
from torch's generator, which a checkpoint saves, and the DataLoader seeds itself from a generator of its own, so
a run resumed from a checkpoint (weights, optimizer, schedule, scaler, step, RNG, early-stopping state) continues
exactly as the uninterrupted run would have. With validation examples and ``eval_every``, the validation loss is
scored that often and the best weights are kept; ``patience`` stops after that many scorings without a lower one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from common.imaging import normalised_tensor
from common.training import autocast, optimizer_step
from common.training_loop import check_loop_settings, loop_fingerprint, loop_record, run_loop
from spac.attributes import UNKNOWN, Schema
from spac.neural_captioner.model import IGNORED, NeuralCaptioner


class CaptionExample(NamedTuple):
    """One training caption: its image, its text, its style (0 or 1) and the image's label id per attribute
    group in schema order (an index into the group's labels; -1 where the label is unknown)."""

    image: Image.Image
    text: str
    style: int
    labels: tuple[int, ...]


def label_ids(attributes: Mapping[str, str], schema: Schema) -> tuple[int, ...]:
    """Attributes (group -> phrase) as label ids in schema order: -1 for ``unknown``, a missing group or a phrase
    outside the schema (what a mined or imported label does not say is not trained)."""
    ids = []
    for group in schema.groups:
        phrase = attributes.get(group.name, UNKNOWN)
        ids.append(group.labels.index(phrase) if phrase != UNKNOWN and phrase in group else IGNORED)
    return tuple(ids)


@dataclass(frozen=True)
class CaptionerTrainingSettings:
    """AdamW with a linear warm-up then cosine decay of ``lr`` over ``steps``; gradients clipped to norm
    ``clip_grad`` (0 = no clipping). A caption is cut to ``max_tokens`` tokens, its end-of-text token included.
    ``precision``: fp32, or bf16 / fp16 autocast (fp16 with a gradient scaler; CUDA only)."""

    steps: int = 3000
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    clip_grad: float = 1.0
    max_tokens: int = 64
    workers: int = 0  # DataLoader processes preparing the examples; 0 = in the training process
    seed: int = 0
    shuffle: bool = True
    eval_every: int = 0
    patience: int = 0
    checkpoint_every: int = 0
    precision: str = "fp32"

    def __post_init__(self) -> None:
        check_loop_settings(self, minimums=(("max_tokens", 2),), non_negative=("clip_grad",))


class CaptionedImages(Dataset):
    """Examples as (pixels, token ids, style, label ids), indexed by ``(epoch, index)`` or a plain index."""

    def __init__(self, examples: Sequence[CaptionExample], model: NeuralCaptioner, max_tokens: int) -> None:
        self.examples, self.config, self.tokenizer, self.max_tokens = (
            examples,
            model.config,
            model.tokenizer,
            max_tokens,
        )
        self.eos = model.eos_token_id

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, list[int], int, tuple[int, ...]]:
        _, index = key if isinstance(key, tuple) else (0, key)
        example = self.examples[index]
        pixels = normalised_tensor(example.image, self.config.image_size, mean=self.config.mean, std=self.config.std)
        ids = self.tokenizer(example.text)["input_ids"][: self.max_tokens - 1] + [self.eos]
        return pixels, ids, example.style, example.labels


class _Collate:
    """Pads the token ids on the right with the end-of-text token (masked out)."""

    def __init__(self, pad: int) -> None:
        self.pad = pad

    def __call__(self, batch: list[tuple[torch.Tensor, list[int], int, tuple[int, ...]]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for _, ids, _, _ in batch)
        return {
            "pixel_values": torch.stack([pixels for pixels, _, _, _ in batch]),
            "input_ids": torch.tensor([ids + [self.pad] * (width - len(ids)) for _, ids, _, _ in batch]),
            "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for _, ids, _, _ in batch]),
            "style_index": torch.tensor([style for _, _, style, _ in batch]),
            "attribute_labels": torch.tensor([labels for _, _, _, labels in batch]),
        }


def _on(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}


def validation_loss(
    model: NeuralCaptioner, dataset: CaptionedImages, batch_size: int = 32, workers: int = 0, precision: str = "fp32"
) -> dict[str, float]:
    """The mean losses (``loss``, ``language``, ``attributes``) over the validation examples, batch by batch."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=_Collate(dataset.eos))
    sums: dict[str, float] = {}
    with torch.inference_mode():
        for batch in loader:
            with autocast(model.device, precision):
                losses = model(**_on(batch, model.device))
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(batch["style_index"])
    return {name: round(total / len(dataset), 6) for name, total in sums.items()}


def train_captioner(
    model: NeuralCaptioner,
    examples: Sequence[CaptionExample] | Iterable[CaptionExample],
    settings: CaptionerTrainingSettings,
    *,
    validation: Sequence[CaptionExample] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Train ``model`` in place on ``examples`` through ``common.training_loop.run_loop`` (``settings.steps``
    batches; ``validation`` scored every ``settings.eval_every`` steps, its best weights kept; the resume state in
    ``checkpoint_dir``, continued with ``resume``). Returns how it was trained (for the saved config's
    ``training``) with the validation history.
    """
    if not isinstance(examples, Sequence):
        examples = list(examples)
    device = model.device
    dataset = CaptionedImages(examples, model, settings.max_tokens)
    checking = (
        CaptionedImages(validation, model, settings.max_tokens)
        if validation is not None and settings.eval_every
        else None
    )

    def train_batch(
        batch: Mapping[str, torch.Tensor], optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler
    ) -> float:
        model.train()
        with autocast(device, settings.precision):
            losses = model(**_on(batch, device))
        optimizer_step(losses["loss"], optimizer, scaler, settings.clip_grad)
        return float(losses["loss"].detach())

    def score() -> dict[str, float]:
        return validation_loss(model, checking, settings.batch_size, settings.workers, settings.precision)

    result = run_loop(
        model,
        dataset,
        settings,
        loop_fingerprint(settings, len(examples), len(validation or ())),
        train_batch,
        score if checking is not None else None,
        collate_fn=_Collate(dataset.eos),
        generator=torch.Generator().manual_seed(settings.seed),  # not torch's global one: dropout's stays exact
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=progress,
    )
    return loop_record(result, settings, "captions")
