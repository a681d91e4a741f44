"""Training and evaluating an attribute predictor on labelled examples.

An example is ``(image, labels)``: a PIL image of one person and either its full attributes (a dict group ->
phrase, as a rendered person has: ``unknown`` is then the class "not visible") or partial labels (group ->
:class:`~spac.predictor.labels.GroupLabel`: what a dataset or a caption said, "item known, colour not said"
included). Examples come as a sequence (one or several joined with ``torch.utils.data.ConcatDataset``).

**Loss.** Per group, the negative log of the probability the model gives to the values the label allows
(the sum of their softmax shares): for a full label that is the cross-entropy of its one value; for
"t-shirt or polo shirt, colour not said" it is the probability of those items, and the colour head and the
joint bias are detached for that example (:func:`training_logits`): the item heads learn, the colour heads
do not. A group the label does not constrain (masked) adds nothing; each group's term is the (weighted) mean
over the examples that label it, and the groups' terms are summed.

**Class balancing** (:func:`balance_weights`): an example's weight in a group is the inverse frequency, to
the power ``power`` (0.5 = its square root, 1 = plain inverse frequency), of what its label says in that group
among the training labels, normalised to mean 1 over the labelled examples and capped at ``cap``. Rare values
(a suitcase, boots) then count more without one example dominating.

**Reproducible and resumable.** Batch ``s`` is a pure function of (seed, s): epoch ``e`` visits the examples in
a permutation seeded by (seed, e) (or in order, ``shuffle=False``), and an example's augmentation is seeded by
(seed, epoch, index). So the same examples, settings, torch seed and thread count give the same weights
whatever the worker count, and a run resumed from a checkpoint (weights, optimizer, schedule, gradient scaler,
step, torch RNG, early-stopping state) continues exactly as the uninterrupted run would have: the loop is
``common.training_loop``'s, which the neural captioner's trainer runs too.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from common.digests import stable_int
from common.errors import InputError
from common.imaging import normalised_tensor
from common.training import autocast, optimizer_step
from common.training_loop import check_loop_settings, loop_fingerprint, loop_record, run_loop
from spac.attributes import UNKNOWN, Schema
from spac.predictor.augmentation import MODES, Augmentation
from spac.predictor.labels import MASKED, NO_COLOUR, GroupLabel, allowed, exact_labels
from spac.predictor.metrics import group_accuracy
from spac.predictor.model import AttributePredictor, Prediction, PredictorConfig

Example = tuple[Image.Image, Mapping[str, Any]]


def as_labels(labels: Mapping[str, Any], schema: Schema) -> dict[str, GroupLabel]:
    """Partial labels as they are; a full attribute dict (group -> phrase) as exact labels."""
    if all(isinstance(v, GroupLabel) for v in labels.values()):
        return {g: labels.get(g, MASKED) for g in schema.group_names}
    return exact_labels(labels, schema)


@dataclass(frozen=True)
class _GroupLayout:
    name: str
    offset: int
    items: dict[str, int]  # item -> slot (0 = unknown)
    colours: dict[str, int]  # colour -> slot (last = none)
    label_item: torch.Tensor  # [labels] slot of each label's item
    label_colour: torch.Tensor  # [labels] slot of each label's colour
    candidate: torch.Tensor  # [labels] bool: a value a predictor is trained to predict

    @property
    def width(self) -> int:
        return len(self.items) + len(self.colours)


class LabelLayout:
    """Partial labels as one bool tensor per example: per group an item mask then a colour mask (all ones =
    not said); :meth:`allowed` turns a batch of them into the allowed labels of each group's head."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.groups: list[_GroupLayout] = []
        offset = 0
        for group in schema.groups:
            items = {UNKNOWN: 0, **{item.name: i + 1 for i, item in enumerate(group.items)}}
            colour_names = sorted({v.colour for v in group.values if v.colour is not None})
            colours = {**{c: i for i, c in enumerate(colour_names)}, NO_COLOUR: len(colour_names)}
            label_item = [0] + [items[v.item] for v in group.values]
            label_colour = [colours[NO_COLOUR]] + [colours[v.colour or NO_COLOUR] for v in group.values]
            candidate = [True] + [v.specific for v in group.values]
            layout = _GroupLayout(
                group.name,
                offset,
                items,
                colours,
                torch.tensor(label_item),
                torch.tensor(label_colour),
                torch.tensor(candidate),
            )
            self.groups.append(layout)
            offset += layout.width
        self.width = offset
        self._encoded: dict[tuple[str, GroupLabel], torch.Tensor] = {}

    def _encode_group(self, layout: _GroupLayout, label: GroupLabel) -> torch.Tensor:
        key = (layout.name, label)
        if key not in self._encoded:
            group = self.schema.group(layout.name)
            if not label.masked and not allowed(group, label):
                raise InputError(f"a {layout.name} label allows no value: {label}")
            mask = torch.zeros(layout.width, dtype=torch.bool)
            for names, slots, start in (
                (label.items, layout.items, 0),
                (label.colours, layout.colours, len(layout.items)),
            ):
                if names is None:
                    mask[start : start + len(slots)] = True
                    continue
                for name in names:
                    if name not in slots:
                        raise InputError(f"{name!r} is no item or colour of group {layout.name!r}")
                    mask[start + slots[name]] = True
            self._encoded[key] = mask
        return self._encoded[key]

    def encode(self, labels: Mapping[str, Any]) -> torch.Tensor:
        """One example's labels (partial, or a full attribute dict) as a bool tensor of :attr:`width`."""
        partial = as_labels(labels, self.schema)
        return torch.cat([self._encode_group(g, partial[g.name]) for g in self.groups])

    def allowed(self, targets: torch.Tensor) -> list[torch.Tensor]:
        """Per group (schema order), ``[N, labels]`` bool: the labels each example's targets allow."""
        result = []
        for g in self.groups:
            items = targets[:, g.offset : g.offset + len(g.items)]
            colours = targets[:, g.offset + len(g.items) : g.offset + g.width]
            device = targets.device
            result.append(
                items[:, g.label_item.to(device)] & colours[:, g.label_colour.to(device)] & g.candidate.to(device)
            )
        return result

    def open_factors(self, targets: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per group: (item not said, colour not said), each ``[N]`` bool (a mask of all ones)."""
        return [
            (
                targets[:, g.offset : g.offset + len(g.items)].all(dim=1),
                targets[:, g.offset + len(g.items) : g.offset + g.width].all(dim=1),
            )
            for g in self.groups
        ]

    def terms(self, logits: Mapping[str, torch.Tensor], targets: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """Per group: (negative log-likelihood of the allowed labels, labelled?, prediction allowed?), each [N]."""
        found = []
        for g, mask in zip(self.groups, self.allowed(targets)):
            z = logits[g.name].float()
            labelled = (mask != g.candidate.to(mask.device)).any(dim=1)
            nll = torch.logsumexp(z, dim=1) - torch.logsumexp(z.masked_fill(~mask, float("-inf")), dim=1)
            correct = mask.gather(1, z.argmax(dim=1, keepdim=True)).squeeze(1)
            found.append((nll.masked_fill(~labelled, 0.0), labelled, correct & labelled))
        return found


def attribute_loss(
    logits: Mapping[str, torch.Tensor], targets: torch.Tensor, layout: LabelLayout, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Sum over groups of the (weighted) mean, over the examples that label the group, of -log P(allowed)."""
    total = torch.zeros((), device=targets.device)
    for i, (nll, labelled, _) in enumerate(layout.terms(logits, targets)):
        w = labelled.float() if weights is None else labelled.float() * weights[:, i]
        total = total + (nll * w).sum() / w.sum().clamp_min(1e-12)
    return total


def balance_weights(
    labels: Sequence[Mapping[str, Any]], schema: Schema, power: float = 0.5, cap: float = 10.0
) -> torch.Tensor:
    """``[N, groups]`` weights: inverse frequency of each example's label per group, to ``power``, mean 1 over
    the labelled examples, at most ``cap`` (1 where the group is masked)."""
    if not (0 <= power <= 2 and cap >= 1):
        raise InputError(f"balance power must be in [0, 2] and cap >= 1, got {power} and {cap}")
    partial = [as_labels(row, schema) for row in labels]
    weights = torch.ones(len(partial), len(schema.groups))
    for column, group in enumerate(schema.group_names):
        said = [row[group] for row in partial]
        counts = Counter(label for label in said if not label.masked)
        if not counts:
            continue
        labelled = sum(counts.values())
        raw = {label: (labelled / (len(counts) * n)) ** power for label, n in counts.items()}
        mean = sum(raw[label] * n for label, n in counts.items()) / labelled
        for row, label in enumerate(said):
            if not label.masked:
                weights[row, column] = min(cap, raw[label] / mean)
    return weights


class LabelledImages(Dataset):
    """Examples as (normalised pixels, label targets, balance weights) in the predictor's input format.

    Indexed by ``(epoch, index)`` (or a plain index: epoch 0); the augmentation of an example is seeded by
    (seed, epoch, index), so it does not depend on which worker prepares it.
    """

    def __init__(
        self,
        examples: Sequence[Example],
        layout: LabelLayout,
        config: PredictorConfig,
        augmentation: Augmentation | None = None,
        seed: int = 0,
        weights: torch.Tensor | None = None,
    ) -> None:
        if weights is not None and weights.shape != (len(examples), len(layout.groups)):
            raise ValueError(
                f"expected weights of shape [{len(examples)}, {len(layout.groups)}], got {list(weights.shape)}"
            )
        self.examples, self.layout, self.config = examples, layout, config
        self.augmentation, self.seed, self.weights = augmentation, seed, weights

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        image, labels = self.examples[index]
        if self.augmentation is not None:
            image = self.augmentation(image, random.Random(stable_int(self.seed, epoch, index, "augment")))
        pixels = normalised_tensor(image, self.config.image_size, mean=self.config.mean, std=self.config.std)
        weights = self.weights[index] if self.weights is not None else torch.ones(len(self.layout.groups))
        return pixels, self.layout.encode(labels), weights


@dataclass(frozen=True)
class TrainingSettings:
    """How to train: AdamW with a linear warm-up then cosine decay of ``lr`` over ``steps``.

    ``augment``: none / flip / full (spac.predictor.augmentation). ``eval_every`` > 0 scores the validation examples
    every so many steps (and at the end) and keeps the best weights; ``patience`` > 0 stops after that many scorings
    without a lower validation loss. ``checkpoint_every`` > 0 writes the resume state that often (and at the end).
    ``precision``: fp32, or bf16 / fp16 autocast (fp16 with a gradient scaler; CUDA only).
    """

    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    workers: int = 0  # DataLoader processes preparing the examples; 0 = in the training process
    seed: int = 0
    shuffle: bool = True
    augment: str = "flip"
    eval_every: int = 0
    patience: int = 0
    checkpoint_every: int = 0
    precision: str = "fp32"

    def __post_init__(self) -> None:
        check_loop_settings(self)
        if self.augment not in MODES:
            raise InputError(f"augment must be one of {', '.join(MODES)}, got {self.augment!r}")

    @property
    def images(self) -> int:
        return self.steps * self.batch_size


def _capture(store: dict[str, torch.Tensor], name: str, _module: nn.Module, args: tuple) -> None:
    store[name] = args[0]


def training_logits(
    model: AttributePredictor, pixels: torch.Tensor, targets: torch.Tensor, layout: LabelLayout
) -> dict[str, torch.Tensor]:
    """The heads' logits (item + colour + joint bias, as spac.predictor.model.FactorisedGroupHead adds them) with a
    factor a label leaves open detached: where the colour is not said, neither the colour head nor the joint bias
    learns from the example (nor does the item head where the item is not said), so a PA-100K sleeve label
    trains item heads only and never tilts a colour preference."""
    features: dict[str, torch.Tensor] = {}
    hooks = [
        head.register_forward_pre_hook(functools.partial(_capture, features, name))
        for name, head in model.heads.items()
    ]
    try:
        model(pixels)
    finally:
        for hook in hooks:
            hook.remove()
    logits = {}
    for g, (item_open, colour_open) in zip(layout.groups, layout.open_factors(targets)):
        head, f = model.heads[g.name], features[g.name]
        item = head.item(f)
        item = torch.where(item_open[:, None], item.detach(), item)
        bias = torch.where((item_open | colour_open)[:, None], head.bias.detach(), head.bias)
        joint = item[:, head.label_item] + bias
        if head.colour is not None:
            colour = head.colour(f)
            colour = torch.cat(
                [torch.where(colour_open[:, None], colour.detach(), colour), f.new_zeros(f.shape[0], 1)], dim=1
            )
            joint = joint + colour[:, head.label_colour]
        logits[g.name] = joint
    return logits


def train_step(
    model: AttributePredictor,
    optimizer: torch.optim.Optimizer,
    pixels: torch.Tensor,
    targets: torch.Tensor,
    layout: LabelLayout,
    weights: torch.Tensor | None = None,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """One optimizer step on one batch (through ``scaler``, fp16's loss scaler); returns the batch's loss."""
    model.train()
    with autocast(pixels.device, precision):
        logits = training_logits(model, pixels, targets, layout)
    loss = attribute_loss(logits, targets, layout, weights)  # in float32, outside autocast
    optimizer_step(loss, optimizer, scaler)
    return float(loss.detach())


def validation_scores(
    model: AttributePredictor, dataset: LabelledImages, batch_size: int = 64, workers: int = 0, precision: str = "fp32"
) -> dict[str, Any]:
    """Masked loss (unweighted) and per-group accuracy on the labelled groups of a validation set."""
    layout = dataset.layout
    sums = torch.zeros(len(layout.groups), 3, dtype=torch.float64)  # nll, labelled, correct
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    with torch.inference_mode():
        for pixels, targets, _ in loader:
            with autocast(model.device, precision):
                logits = model(pixels.to(model.device))
            for i, (nll, labelled, correct) in enumerate(layout.terms(logits, targets.to(model.device))):
                sums[i] += torch.stack([nll.sum(), labelled.sum(), correct.sum()]).double().cpu()
    groups = {g.name: round(float(s[2] / s[1]), 6) for g, s in zip(layout.groups, sums) if s[1] > 0}
    loss = float(sum(s[0] / s[1] for s in sums if s[1] > 0))
    return {
        "loss": round(loss, 6),
        "groups": groups,
        "mean_accuracy": round(sum(groups.values()) / len(groups), 6) if groups else None,
    }


def train(
    model: AttributePredictor,
    examples: Sequence[Example],
    settings: TrainingSettings,
    *,
    validation: Sequence[Example] | None = None,
    weights: torch.Tensor | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Train ``model`` in place for ``settings.steps`` batches of ``examples`` (their groups weighted by
    ``weights``, :func:`balance_weights`, when given) through ``common.training_loop.run_loop``, which scores
    ``validation``, keeps its best weights, stops early, and writes and resumes the state in ``checkpoint_dir``.
    Returns the record a saved predictor keeps in ``config.training``, with the validation history.
    """
    device = model.device
    layout = LabelLayout(model.schema)
    augmentation = Augmentation(settings.augment) if settings.augment != "none" else None
    dataset = LabelledImages(examples, layout, model.config, augmentation, settings.seed, weights)
    checking = (
        LabelledImages(validation, layout, model.config) if validation is not None and settings.eval_every else None
    )

    def train_batch(
        batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
    ) -> float:
        pixels, targets, batch_weights = batch
        return train_step(
            model,
            optimizer,
            pixels.to(device, non_blocking=True),
            targets.to(device, non_blocking=True),
            layout,
            batch_weights.to(device) if weights is not None else None,
            settings.precision,
            scaler,
        )

    def score() -> dict[str, Any]:
        return validation_scores(model, checking, settings.batch_size, settings.workers, settings.precision)

    result = run_loop(
        model,
        dataset,
        settings,
        loop_fingerprint(settings, len(examples), len(validation or ()), balanced=weights is not None),
        train_batch,
        score if checking is not None else None,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=progress,
    )
    return loop_record(result, settings, "images", augment=settings.augment)


# ---- prediction and evaluation ----------------------------------------------------------------------------


class _Preprocessed(Dataset):
    def __init__(self, examples: Sequence[Example], config: PredictorConfig) -> None:
        self.examples, self.config = examples, config

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Mapping[str, Any]]:
        image, labels = self.examples[index]
        return normalised_tensor(image, self.config.image_size, mean=self.config.mean, std=self.config.std), labels


def _stack(batch: list[tuple[torch.Tensor, Mapping[str, Any]]]) -> tuple[torch.Tensor, list[Mapping[str, Any]]]:
    return torch.stack([pixels for pixels, _ in batch]), [labels for _, labels in batch]


def predict_examples(
    model: AttributePredictor,
    examples: Iterable[Example] | Sequence[Example],
    batch_size: int = 32,
    workers: int = 0,
    progress: bool = False,
) -> tuple[list[Prediction], list[Mapping[str, Any]]]:
    """The model's predictions for every example, in order, and the examples' labels (images never all in memory)."""
    if not isinstance(examples, Sequence):
        examples = list(examples)
    loader = DataLoader(
        _Preprocessed(examples, model.config), batch_size=batch_size, num_workers=workers, collate_fn=_stack
    )
    predictions: list[Prediction] = []
    truths: list[Mapping[str, Any]] = []
    for pixels, labels in tqdm(loader, desc="predicting", unit="batch", disable=not progress):
        predictions += model.predict_tensors(pixels)
        truths += labels
    return predictions, truths


def evaluate(
    model: AttributePredictor,
    examples: Iterable[Example],
    batch_size: int = 32,
    workers: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Per-group accuracy on the groups each example labels, with the best constant prediction's accuracy for
    scale (spac.predictor.metrics.group_accuracy)."""
    predictions, truths = predict_examples(model, examples, batch_size, workers, progress)
    if not truths:
        raise InputError("no examples to evaluate on")
    schema = model.schema
    return group_accuracy(schema, [p.attributes for p in predictions], [as_labels(t, schema) for t in truths])
