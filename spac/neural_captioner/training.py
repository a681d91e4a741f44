"""Training a neural captioner on captioned images: ``(image, text, style index, label id per group or -1)``.

The shared training kit (``common.training``: precision, autocast, the gradient scaler, RNG state, the one
"same settings" check) and the predictor trainer's pieces (``spac.predictor.training``: the batch order
:class:`EpochBatches`, the warm-up + cosine schedule, the atomic resume state) carry over: **batch s is a
pure function of (seed, s)** (epoch e visits the examples in a permutation seeded by (seed, e)), dropout draws
from torch's generator, which a checkpoint saves, and the DataLoader seeds itself from a generator of its own, so
a run resumed from a checkpoint (weights, optimizer, schedule, scaler, step, RNG, early-stopping state) continues
exactly as the uninterrupted run would have. With validation examples and ``eval_every``, the validation loss is
scored that often and the best weights are kept; ``patience`` stops after that many scorings without a lower one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from common.errors import InputError
from common.imaging import normalised_tensor
from common.training import (
    autocast,
    capture_rng_state,
    check_precision,
    check_same_settings,
    grad_scaler,
    optimizer_step,
    restore_rng_state,
)
from spac.attributes import UNKNOWN, Schema
from spac.neural_captioner.model import IGNORED, NeuralCaptioner
from spac.predictor.training import EpochBatches, load_state, save_state, warmup_cosine


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
        for name, low in (
            ("steps", 1),
            ("batch_size", 1),
            ("max_tokens", 2),
            ("workers", 0),
            ("seed", 0),
            ("eval_every", 0),
            ("patience", 0),
            ("checkpoint_every", 0),
        ):
            if getattr(self, name) < low:
                raise InputError(f"{name} must be at least {low}, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "clip_grad"):
            value = getattr(self, name)
            if not (math.isfinite(value) and (value > 0 if name == "lr" else value >= 0)):
                raise InputError(
                    f"{name} must be a {'positive number' if name == 'lr' else 'number >= 0'}, got {value}"
                )
        check_precision(self.precision)  # the device is checked when training starts
        if self.patience and not self.eval_every:
            raise InputError("patience (early stopping) needs eval_every > 0")


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


def _fingerprint(settings: CaptionerTrainingSettings, examples: int, validation: int) -> dict[str, Any]:
    record = asdict(settings)
    record.pop("workers")  # any worker count gives the same batches
    return {**record, "examples": examples, "validation_examples": validation}


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
    """Train ``model`` in place for ``settings.steps`` batches (epochs over the examples as needed).

    With ``validation`` and ``settings.eval_every`` the best-scoring weights are restored at the end. With
    ``checkpoint_dir`` the resume state is written every ``settings.checkpoint_every`` steps and at the end;
    ``resume`` continues from the state found there (a fresh start when there is none). Returns how it was
    trained (for the saved config's ``training``) with the validation history.
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
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = warmup_cosine(optimizer, settings.steps)
    scaler = grad_scaler(device, settings.precision)
    fingerprint = _fingerprint(settings, len(examples), len(validation or ()))
    checkpoints = Path(checkpoint_dir) if checkpoint_dir is not None else None
    tracking: dict[str, Any] = {
        "best_loss": None,
        "best_step": None,
        "best_model": None,
        "bad_scorings": 0,
        "history": [],
        "running": None,
        "seconds": 0.0,
        "stopped": False,
    }
    step = 0
    state = load_state(checkpoints) if resume and checkpoints is not None else None
    if state is not None:
        check_same_settings(
            str(checkpoints), state["fingerprint"], fingerprint, "resume with the same data and settings"
        )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"], device)
        tracking = {key: state[key] for key in tracking}
        step = state["step"]
    start = settings.steps if tracking["stopped"] else step  # an early-stopped run is finished
    sampler = EpochBatches(len(examples), settings.batch_size, settings.steps, settings.seed, settings.shuffle, start)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=settings.workers,
        collate_fn=_Collate(dataset.eos),
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(settings.seed),  # not torch's global one: dropout's stays exact
    )
    started = time.perf_counter() - tracking["seconds"]
    with tqdm(total=settings.steps, initial=step, desc="training", unit="step", disable=not progress) as bar:
        for batch in loader:
            model.train()
            with autocast(device, settings.precision):
                losses = model(**_on(batch, device))
            optimizer_step(losses["loss"], optimizer, scaler, settings.clip_grad)
            schedule.step()
            step += 1
            loss = float(losses["loss"].detach())
            tracking["running"] = loss if tracking["running"] is None else 0.98 * tracking["running"] + 0.02 * loss
            bar.update(1)
            bar.set_postfix(loss=f"{tracking['running']:.3f}")
            if checking is not None and (step % settings.eval_every == 0 or step == settings.steps):
                _score(model, checking, settings, step, tracking)
            last = step == settings.steps or tracking["stopped"]
            if (
                checkpoints is not None
                and settings.checkpoint_every
                and (step % settings.checkpoint_every == 0 or last)
            ):
                tracking["seconds"] = time.perf_counter() - started
                state = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "scaler": scaler.state_dict(),
                    "step": step,
                    "fingerprint": fingerprint,
                    "rng": capture_rng_state(device),
                    **tracking,
                }
                save_state(checkpoints, state)
            if tracking["stopped"]:
                break
    if tracking["best_model"] is not None:
        model.load_state_dict(tracking["best_model"])
    seconds = time.perf_counter() - started
    record = {
        "steps": step,
        "batch_size": settings.batch_size,
        "lr": settings.lr,
        "captions": step * settings.batch_size,
        "seconds": round(seconds, 1),
        "captions_per_second": round(step * settings.batch_size / seconds, 1) if seconds > 0 else 0.0,
        "seed": settings.seed,
        "precision": settings.precision,
    }
    if checking is not None:
        record.update(
            best_step=tracking["best_step"],
            best_validation_loss=tracking["best_loss"],
            stopped_early=tracking["stopped"],
        )
    return {**record, "history": tracking["history"]}


def _score(
    model: NeuralCaptioner,
    checking: CaptionedImages,
    settings: CaptionerTrainingSettings,
    step: int,
    tracking: dict[str, Any],
) -> None:
    scores = validation_loss(model, checking, settings.batch_size, settings.workers, settings.precision)
    tracking["history"].append({"step": step, **scores})
    if tracking["best_loss"] is None or scores["loss"] < tracking["best_loss"]:
        tracking.update(
            best_loss=scores["loss"],
            best_step=step,
            bad_scorings=0,
            best_model={k: v.detach().clone() for k, v in model.state_dict().items()},
        )
    else:
        tracking["bad_scorings"] += 1
        if settings.patience and tracking["bad_scorings"] >= settings.patience:
            tracking["stopped"] = True
