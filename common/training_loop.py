"""The resumable step loop of spac's two trainers (the attribute predictor's and the neural captioner's), each
giving it its dataset, its batch step and its validation score.

**Batch s is a pure function of (seed, s)** (:class:`EpochBatches`: epoch e visits the examples in a permutation
seeded by (seed, e)); AdamW with a linear warm-up then cosine decay (:func:`warmup_cosine`); the resume state
(weights, optimizer, schedule, gradient scaler, step, random generators, validation and early-stopping state) is
written atomically every ``checkpoint_every`` steps and at the end, and a resume with other settings is refused
(``common.training.check_same_settings``). So a resumed run continues exactly as the uninterrupted run would have.
With a validation score and ``eval_every``, the run is scored that often (and at the end) and the weights of the
lowest validation loss are kept; ``patience`` stops after that many scorings without a lower one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from common.digests import stable_int
from common.errors import InputError, error_line
from common.training import capture_rng_state, check_precision, check_same_settings, grad_scaler, restore_rng_state

STATE_FILE = "train_state.pt"
# Every loop setting that counts something, and its least value.
_MINIMUMS = (
    ("steps", 1),
    ("batch_size", 1),
    ("workers", 0),
    ("seed", 0),
    ("eval_every", 0),
    ("patience", 0),
    ("checkpoint_every", 0),
)


class LoopSettings(Protocol):
    """What the loop reads of a trainer's settings."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    workers: int  # DataLoader processes preparing the examples; 0 = in the training process
    seed: int
    shuffle: bool
    eval_every: int
    patience: int
    checkpoint_every: int
    precision: str


def check_loop_settings(
    settings: LoopSettings, minimums: Iterable[tuple[str, int]] = (), non_negative: Iterable[str] = ()
) -> None:
    """InputError for the first setting out of range: the loop's counts and ``minimums`` (name, least value), a
    positive ``lr``, ``weight_decay`` and the ``non_negative`` numbers finite and >= 0, a known precision (the
    device is checked when training starts), and early stopping only with validation."""
    for name, low in (*_MINIMUMS, *minimums):
        if getattr(settings, name) < low:
            raise InputError(f"{name} must be at least {low}, got {getattr(settings, name)}")
    if not (settings.lr > 0 and math.isfinite(settings.lr)):
        raise InputError(f"lr must be a positive number, got {settings.lr}")
    for name in ("weight_decay", *non_negative):
        value = getattr(settings, name)
        if not (value >= 0 and math.isfinite(value)):
            raise InputError(f"{name} must be a number >= 0, got {value}")
    check_precision(settings.precision)
    if settings.patience and not settings.eval_every:
        raise InputError("patience (early stopping) needs eval_every > 0")


class EpochBatches(Sampler):
    """Batches of (epoch, index) for steps ``start_step`` .. ``steps - 1``: epoch after epoch over ``size``
    examples, each epoch in a permutation seeded by (seed, epoch), or in order without ``shuffle``."""

    def __init__(
        self, size: int, batch_size: int, steps: int, seed: int, shuffle: bool = True, start_step: int = 0
    ) -> None:
        if size < 1:
            raise InputError("no training examples")
        self.size, self.batch_size, self.steps, self.seed = size, batch_size, steps, seed
        self.shuffle, self.start_step = shuffle, start_step
        self._epoch, self._order = -1, None

    def _index(self, position: int) -> tuple[int, int]:
        epoch, offset = divmod(position, self.size)
        if not self.shuffle:
            return epoch, offset
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(stable_int(self.seed, epoch, "order"))
            self._epoch, self._order = epoch, torch.randperm(self.size, generator=generator).tolist()
        return epoch, self._order[offset]

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.steps):
            yield [self._index(p) for p in range(step * self.batch_size, (step + 1) * self.batch_size)]


def warmup_cosine(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A linear warm-up over the first 5% of ``steps``, then cosine decay to 0."""
    warmup = max(1, steps // 20)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    )


def save_state(directory: Path, state: Mapping[str, Any]) -> Path:
    """Write the resume state atomically (a killed write leaves the previous one)."""
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / (STATE_FILE + ".partial")
    torch.save(dict(state), partial)
    os.replace(partial, directory / STATE_FILE)
    return directory / STATE_FILE


def load_state(directory: Path) -> dict[str, Any] | None:
    """The resume state in ``directory`` (None when there is none); InputError for an unreadable file."""
    path = directory / STATE_FILE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: one line, not a traceback
        raise InputError(f"{path}: not a readable training state ({error_line(exc)[:120]})") from None


def loop_fingerprint(settings: LoopSettings, examples: int, validation: int, **extra: Any) -> dict[str, Any]:
    """What a resume must keep: the settings (a dataclass) but ``workers`` (any worker count gives the same
    batches), the number of training and validation examples, and ``extra``."""
    record = asdict(settings)
    record.pop("workers")
    return {**record, "examples": examples, "validation_examples": validation, **extra}


class LoopResult(NamedTuple):
    """How far the loop went: steps done, seconds spent (resumed runs included), whether it was scored, and the
    validation and stopping state."""

    steps: int
    seconds: float
    validated: bool
    tracking: dict[str, Any]


def run_loop(
    model: nn.Module,
    dataset: Dataset,
    settings: LoopSettings,
    fingerprint: Mapping[str, Any],
    train_batch: Callable[[Any, torch.optim.Optimizer, torch.amp.GradScaler], float],
    score: Callable[[], Mapping[str, Any]] | None = None,
    *,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    generator: torch.Generator | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> LoopResult:
    """Train ``model`` in place for ``settings.steps`` batches of ``dataset`` (indexed by ``(epoch, index)``),
    ``train_batch(batch, optimizer, scaler)`` stepping on one and returning its loss.

    ``score()`` (validation scores with their ``loss``) runs every ``settings.eval_every`` steps (when > 0) and at
    the end; the best-scoring weights are restored at the end. With ``checkpoint_dir`` the resume state, recording
    ``fingerprint`` (the settings and data a resume must keep), is written every ``settings.checkpoint_every``
    steps and at the end; ``resume`` continues from the state found there (a fresh start when there is none).
    ``generator`` seeds the DataLoader (None: it draws from torch's global generator, which a resume restores
    before that draw, so a model that draws too, as dropout does, wants its own for an exact resume).
    """
    device = next(model.parameters()).device
    score = score if settings.eval_every else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = warmup_cosine(optimizer, settings.steps)
    scaler = grad_scaler(device, settings.precision)
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
        if "rng" not in state:  # written before the generators' state was common.training's
            raise InputError(
                f"{checkpoints / STATE_FILE}: written by an older version of the trainer; train afresh without --resume"
            )
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
    sampler = EpochBatches(len(dataset), settings.batch_size, settings.steps, settings.seed, settings.shuffle, start)
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=settings.workers,
        collate_fn=collate_fn,
        pin_memory=device.type == "cuda",
        generator=generator,
    )
    started = time.perf_counter() - tracking["seconds"]
    with tqdm(total=settings.steps, initial=step, desc="training", unit="step", disable=not progress) as bar:
        for batch in loader:
            loss = train_batch(batch, optimizer, scaler)
            schedule.step()
            step += 1
            tracking["running"] = loss if tracking["running"] is None else 0.98 * tracking["running"] + 0.02 * loss
            bar.update(1)
            bar.set_postfix(loss=f"{tracking['running']:.3f}")
            if score is not None and (step % settings.eval_every == 0 or step == settings.steps):
                _keep_best(model, score(), step, settings.patience, tracking)
                bar.set_postfix(loss=f"{tracking['running']:.3f}", val=f"{tracking['history'][-1]['loss']:.3f}")
            last = step == settings.steps or tracking["stopped"]
            if (
                checkpoints is not None
                and settings.checkpoint_every
                and (step % settings.checkpoint_every == 0 or last)
            ):
                tracking["seconds"] = time.perf_counter() - started
                save_state(
                    checkpoints,
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(),
                        "scaler": scaler.state_dict(),
                        "step": step,
                        "fingerprint": fingerprint,
                        "rng": capture_rng_state(device),
                        **tracking,
                    },
                )
            if tracking["stopped"]:
                break
    if tracking["best_model"] is not None:
        model.load_state_dict(tracking["best_model"])
    return LoopResult(step, time.perf_counter() - started, score is not None, tracking)


def _keep_best(model: nn.Module, scores: Mapping[str, Any], step: int, patience: int, tracking: dict[str, Any]) -> None:
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
        if patience and tracking["bad_scorings"] >= patience:
            tracking["stopped"] = True


def loop_record(result: LoopResult, settings: LoopSettings, unit: str, **extra: Any) -> dict[str, Any]:
    """How the run was trained (for a saved model's ``training`` record): steps, batch size, rate, ``unit`` (the
    examples seen) and their rate, seed, ``extra``, precision; with validation the best step, its loss and
    whether it stopped early; then the validation history."""
    seen = result.steps * settings.batch_size
    record = {
        "steps": result.steps,
        "batch_size": settings.batch_size,
        "lr": settings.lr,
        unit: seen,
        "seconds": round(result.seconds, 1),
        f"{unit}_per_second": round(seen / result.seconds, 1) if result.seconds > 0 else 0.0,
        "seed": settings.seed,
        **extra,
        "precision": settings.precision,
    }
    if result.validated:
        record.update(
            best_step=result.tracking["best_step"],
            best_validation_loss=result.tracking["best_loss"],
            stopped_early=result.tracking["stopped"],
        )
    return {**record, "history": result.tracking["history"]}
