"""Training and evaluating an attribute predictor on labelled examples.

An example is ``(image, attributes)``: a PIL image of one person and the attribute values visible in it
(``unknown`` is a class like any other). Examples come as a sequence, so a DataLoader reads them in
order from any number of worker processes: the same examples, settings, torch seed and thread count give
the same batches and the same weights. Where the examples come from (e.g. ``spac.render.training_source``)
is the caller's business.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from spac.attributes import UNKNOWN, Schema
from spac.digests import stable_int
from spac.imaging import normalised_tensor
from spac.predictor import AttributePredictor, PredictorConfig

Example = tuple[Image.Image, Mapping[str, str]]


def label_indices(attributes: Mapping[str, str], schema: Schema) -> torch.Tensor:
    """Group -> label index (0 = unknown) as one long tensor in schema group order."""
    return torch.tensor([g.labels.index(attributes.get(g.name, UNKNOWN)) for g in schema.groups])


class LabelledImages(Dataset):
    """Examples as (normalised pixels, label indices) in the predictor's input format.

    With ``flip_seed`` about half the images are mirrored (people look the same mirrored: it doubles the
    pose variety), chosen by a hash of (flip_seed, index) so that a rerun mirrors the same ones.
    """

    def __init__(self, examples: Sequence[Example], schema: Schema, config: PredictorConfig,
                 flip_seed: int | None = None) -> None:
        self.examples, self.schema, self.config, self.flip_seed = examples, schema, config, flip_seed

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, attributes = self.examples[index]
        flip = self.flip_seed is not None and stable_int(self.flip_seed, index, "flip") % 2 == 1
        pixels = normalised_tensor(image, self.config.image_size, flip=flip, mean=self.config.mean,
                                   std=self.config.std)
        return pixels, label_indices(attributes, self.schema)


def attribute_loss(logits: Mapping[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    """Sum over groups of the cross-entropy of each group's softmax; targets is [N, groups] in head order."""
    return sum(nn.functional.cross_entropy(group_logits, targets[:, i]) for i, group_logits in enumerate(logits.values()))


def train_step(model: AttributePredictor, optimizer: torch.optim.Optimizer, pixels: torch.Tensor,
               targets: torch.Tensor) -> float:
    """One optimizer step on one batch; returns the batch's loss."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = attribute_loss(model(pixels), targets)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@dataclass(frozen=True)
class TrainingSettings:
    """How long and how fast to train; AdamW with a linear warm-up then cosine decay of ``lr``."""

    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    workers: int = 0  # DataLoader processes preparing the examples; 0 = in the training process

    def __post_init__(self) -> None:
        for name, low in (("steps", 1), ("batch_size", 1), ("workers", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be at least {low}, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay}")

    @property
    def images(self) -> int:
        return self.steps * self.batch_size


def _warmup_cosine(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, steps // 20)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / warmup, 0.5 * (
        1 + math.cos(math.pi * min(s, steps) / steps))))


def train(model: AttributePredictor, examples: Sequence[Example], settings: TrainingSettings, *,
          flip_seed: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Train ``model`` in place on the first ``settings.images`` examples, in order, one batch per step.

    Returns how it was trained (the record a saved predictor keeps in ``config.training``).
    """
    if len(examples) < settings.images:
        raise ValueError(f"{settings.steps} steps of {settings.batch_size} need {settings.images} examples, "
                         f"got {len(examples)}")
    dataset = LabelledImages(examples, model.schema, model.config, flip_seed)
    loader = DataLoader(dataset, batch_size=settings.batch_size, num_workers=settings.workers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = _warmup_cosine(optimizer, settings.steps)
    started = time.perf_counter()
    running = None
    with tqdm(total=settings.steps, desc="training", unit="step", disable=not progress) as bar:
        for pixels, targets in islice(loader, settings.steps):
            loss = train_step(model, optimizer, pixels.to(model.device), targets.to(model.device))
            schedule.step()
            running = loss if running is None else 0.98 * running + 0.02 * loss
            bar.update(1)
            bar.set_postfix(loss=f"{running:.3f}")
    seconds = time.perf_counter() - started
    return {"steps": settings.steps, "batch_size": settings.batch_size, "lr": settings.lr,
            "images": settings.images, "seconds": round(seconds, 1),
            "images_per_second": round(settings.images / seconds, 1)}


def evaluate(model: AttributePredictor, examples: Iterable[Example], batch_size: int = 32) -> dict[str, Any]:
    """Per-group accuracy on the examples, with the majority-class accuracy for scale."""
    group_names = model.schema.group_names
    truths: list[Mapping[str, str]] = []
    correct = Counter()
    stream = iter(examples)
    while batch := list(islice(stream, batch_size)):  # a batch at a time: the images need not fit in memory
        images, attributes = zip(*batch)
        for prediction, truth in zip(model.predict(list(images), batch_size=batch_size), attributes):
            correct.update(g for g in group_names if prediction.attributes[g] == truth.get(g, UNKNOWN))
        truths += attributes
    if not truths:
        raise ValueError("no examples to evaluate on")
    groups = {}
    for g in group_names:
        majority = Counter(t.get(g, UNKNOWN) for t in truths).most_common(1)[0][1]
        groups[g] = {"accuracy": correct[g] / len(truths), "majority_baseline": majority / len(truths)}
    mean = sum(r["accuracy"] for r in groups.values()) / len(groups)
    return {"examples": len(truths), "groups": groups, "mean_accuracy": mean}
