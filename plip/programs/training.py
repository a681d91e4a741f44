"""What pre-training and fine-tuning share: their common flags and the settings they make, the optimizer and
text-layer freezing, the metrics log and its loss window, and the checks of a ``--resume``."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from common.cli import (
    CliError,
    add_quiet_flag,
    device,
    non_negative_float,
    positive_float,
    positive_int,
    silence_libraries,
)
from common.training import check_same_settings, resolve_precision
from plip.checkpoint import MODEL_FILE
from plip.model import PLIPModel
from plip.programs.settings import from_flags

# --- flags -----------------------------------------------------------------------------------------


def parse_milestones(text: str) -> tuple[float, ...]:
    """argparse ``type=`` of ``--milestones``: comma-separated, increasing positive epochs (fractions allowed;
    empty = none)."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated epochs, got {text!r}") from None
    if any(v <= 0 for v in values) or list(values) != sorted(set(values)):
        raise argparse.ArgumentTypeError(f"must be increasing positive epochs, got {text!r}")
    return values


def add_optimisation_flags(
    parser: argparse.ArgumentParser,
    *,
    epochs: int,
    lr: float,
    text_lr_scale: float,
    warmup_epochs: float,
    milestones: str,
    text_trainable_layers: int,
) -> argparse._ArgumentGroup:
    """The optimisation group with the defaults of one program; returns it for the program's own flags."""
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=positive_int, default=epochs, help=f"training epochs (default {epochs})")
    opt.add_argument(
        "--max-steps", type=positive_int, help="stop after this many steps in all (default: epochs x steps per epoch)"
    )
    opt.add_argument("--lr", type=positive_float, default=lr, help=f"AdamW learning rate (default {lr:g})")
    opt.add_argument(
        "--text-lr-scale",
        type=non_negative_float,
        default=text_lr_scale,
        help=f"text-encoder rate = lr x this (default {text_lr_scale:g})",
    )
    opt.add_argument("--weight-decay", type=non_negative_float, default=0.01, help="AdamW weight decay (default 0.01)")
    opt.add_argument(
        "--warmup-epochs",
        type=non_negative_float,
        default=warmup_epochs,
        help=f"linear warm-up length (default {warmup_epochs:g})",
    )
    opt.add_argument(
        "--milestones",
        type=parse_milestones,
        default=milestones,
        help="comma-separated epochs "
        "where the rate is multiplied by --gamma, fractions allowed (default "
        f"{milestones or 'none: a constant rate'})",
    )
    opt.add_argument("--gamma", type=positive_float, default=0.1, help="step-decay factor (default 0.1)")
    opt.add_argument(
        "--clip-grad", type=non_negative_float, default=5.0, help="gradient-norm clipping, 0 = off (default 5)"
    )
    opt.add_argument(
        "--text-trainable-layers",
        type=int,
        default=text_trainable_layers,
        help="top text-encoder "
        f"layers that train; the rest and the embeddings stay frozen; -1 = all (default "
        f"{text_trainable_layers})",
    )
    return opt


def add_run_flags(
    parser: argparse.ArgumentParser, *, precisions: Sequence[str], seed_help: str
) -> argparse._ArgumentGroup:
    """The run group (device, precision, threads, seed, logging, --quiet); returns it for the program's own."""
    run = parser.add_argument_group("run")
    run.add_argument(
        "--device", type=device, default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when available)"
    )
    run.add_argument(
        "--precision",
        default="auto",
        choices=("auto", *precisions),
        help="autocast precision"
        + ("; fp16 adds a gradient scaler" if "fp16" in precisions else "")
        + " (default: bf16 on CUDA, fp32 on CPU)",
    )
    run.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    run.add_argument("--seed", type=int, default=0, help=f"{seed_help} (default 0)")
    run.add_argument(
        "--log-every", type=positive_int, default=10, help="steps between train lines in metrics.jsonl (default 10)"
    )
    add_quiet_flag(run)
    return run


@dataclass(frozen=True)
class Optimisation:
    """The optimisation group's flags (:func:`add_optimisation_flags`)."""

    epochs: int
    max_steps: int | None
    lr: float
    text_lr_scale: float
    weight_decay: float
    warmup_epochs: float
    milestones: tuple[float, ...]
    gamma: float
    clip_grad: float
    text_trainable_layers: int

    @classmethod
    def from_flags(cls, args: argparse.Namespace) -> Optimisation:
        return from_flags(cls, args)


@dataclass(frozen=True)
class RunSettings:
    """The run group's flags (:func:`add_run_flags`), ``--precision`` resolved for the device (auto = bf16 on
    CUDA, fp32 on a CPU)."""

    device: torch.device
    precision: str
    threads: int | None
    seed: int
    log_every: int
    quiet: bool

    @classmethod
    def from_flags(cls, args: argparse.Namespace) -> RunSettings:
        return from_flags(cls, args, precision=resolve_precision(args.precision, args.device))


def start_run(run: RunSettings) -> None:
    """Apply ``--quiet`` and ``--threads``."""
    silence_libraries(run.quiet)
    if run.threads:
        torch.set_num_threads(run.threads)


# --- model and optimiser ---------------------------------------------------------------------------


def freeze_text_layers(model: PLIPModel, trainable_layers: int) -> None:
    """Freeze the text encoder's embeddings and all but its top ``trainable_layers`` layers (-1: none frozen).

    With mean pooling the BERT pooler is never used, so it is frozen too (DDP wants every trained
    parameter to get a gradient)."""
    bert = model.text_encoder.encoder
    layers = list(bert.encoder.layer)
    if trainable_layers >= 0:
        for module in [bert.embeddings, *layers[: max(len(layers) - trainable_layers, 0)]]:
            module.requires_grad_(False)
    if model.config.text.pooling == "mean" and getattr(bert, "pooler", None) is not None:
        bert.pooler.requires_grad_(False)


def build_optimizer(model: PLIPModel, lr: float, text_lr_scale: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with two groups: the pretrained text encoder at ``lr x text_lr_scale``, everything else at ``lr``."""
    text_ids = {id(p) for p in model.text_encoder.encoder.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if id(p) not in text_ids], "lr": lr, "name": "main"},
        {"params": [p for p in trainable if id(p) in text_ids], "lr": lr * text_lr_scale, "name": "text"},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=weight_decay)


def learning_rates(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """``lr_<group name>`` of every parameter group, as logged in metrics.jsonl."""
    return {f"lr_{group['name']}": group["lr"] for group in optimizer.param_groups}


# --- metrics ---------------------------------------------------------------------------------------


class MetricsLog:
    """``metrics.jsonl``: one JSON object per line; a resumed run first drops lines past its step (and a last
    line cut short when the interrupted run was killed while writing it)."""

    def __init__(self, path: Path, resumed_step: int | None) -> None:
        self.path = path
        if resumed_step is not None and path.is_file():
            entries = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            try:
                json.loads(entries[-1] if entries else "{}")
            except json.JSONDecodeError:
                entries.pop()
            kept = [line for line in entries if json.loads(line)["step"] <= resumed_step]
            path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        elif resumed_step is None:
            path.write_text("", encoding="utf-8")

    def write(self, entry: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")


class LossWindow:
    """Loss sums since the last train line of metrics.jsonl (a checkpoint may carry it across a resume)."""

    def __init__(self, sums: dict[str, float] | None = None, steps: int = 0, seconds: float = 0.0) -> None:
        self.sums, self.steps = dict(sums or {}), steps
        self.start = time.perf_counter() - seconds

    def add(self, losses: dict[str, float]) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.steps += 1

    def means(self) -> dict[str, float]:
        return {name: value / self.steps for name, value in self.sums.items()}

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def state(self) -> dict[str, Any]:
        return {"sums": self.sums, "steps": self.steps, "seconds": self.seconds()}


# --- the run folder and resuming --------------------------------------------------------------------


def check_out_dir(out: Path, folders: Sequence[str] = ()) -> None:
    """CliError unless ``--out`` is a folder or can be made one (no file in the way, nor in place of one of
    its ``folders``), checked before any work is done."""
    for path in (out, *out.parents):
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                where = "" if path == out else f" ({path})"
                raise CliError(f"--out {out}: a file{where} is in the way: the run folder must be a folder")
            break
    for name in folders:
        if (out / name).exists() and not (out / name).is_dir():
            raise CliError(f"--out {out}: {out / name} must be a folder, not a file")


def checkpoint_to_resume(candidate: Path | None, named: bool) -> Path | None:
    """The checkpoint folder ``--resume`` continues from, or None for a fresh start.

    A folder the user ``named`` must be a checkpoint; a default one (the run's newest or last/) may not
    exist yet, which means a fresh start.
    """
    if candidate is not None and (candidate / MODEL_FILE).is_file():
        return candidate
    if named:
        raise CliError(f"--resume {candidate}: not a checkpoint folder (no {MODEL_FILE})")
    return None


def check_resume_settings(directory: Path, saved: Mapping[str, Any] | None, settings: Mapping[str, Any]) -> None:
    """common.training's SettingsChanged naming the settings that differ from the run being resumed (whose
    batches or model they would change); settings the checkpoint predates (or no longer kept) are not compared."""
    if saved is None:
        raise CliError(f"--resume {directory}: holds no resume state (written before --resume existed)")
    both = saved.keys() & settings.keys()
    check_same_settings(
        str(directory),
        {key: saved[key] for key in both},
        {key: settings[key] for key in both},
        "a resumed run needs the same data, batch and model settings",
    )
