"""`python -m plip.pretrain`: PLIP pre-training on corpus shards (IVLC + TIC + IAP), resumable, DDP-ready.

    python -m plip.pretrain --shards data/SYNTH-PEDES --out runs/rn50 --preset RN50-MiniLM
    torchrun --nproc_per_node 4 -m plip.pretrain --shards 'gs://b/synthpedes-{000000..000479}.tar' \\
        --out runs/rn50 --device cuda --ids-per-batch 32 --images-per-id 4 --resume

Each step draws a batch of P identities x K images (IVLC needs several images per identity), one random
text per image, and minimises L = L_ivlc + 0.02 L_tic + 0.1 L_iap with AdamW, a linear warm-up and
step decay; the text encoder learns at a tenth of the rate with only its top layers trainable.
Writes ``RUN_DIR/metrics.jsonl`` (one JSON line per logged step or evaluation), ``RUN_DIR/args.json``
and ``RUN_DIR/checkpoints/step-XXXXXXXX/`` (plip.checkpoint's directory format). ``--resume``
continues exactly where the checkpoint left off: same weights, optimizer, schedule, gradient scaler,
RNG states, and the same remaining batches of the epoch. ``--on-bad-sample skip`` skips damaged corpus
samples instead of stopping, and the train lines of metrics.jsonl count them (``skipped_samples``, all ranks,
since the start of the run).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import shards
from common.cli import (
    CliError,
    OneLineArgumentParser,
    json_object,
    name_list,
    non_negative_float,
    non_negative_int,
    positive_int,
    run_main,
)
from common.errors import InputError
from common.training import autocast, capture_rng_state, grad_scaler, optimizer_step, restore_rng_state
from plip.checkpoint import (
    MODEL_FILE,
    TRAINER_STATE_FILE,
    CheckpointError,
    TrainerState,
    check_like,
    is_complete,
    load_training_state,
    load_weights,
    reading,
    save_checkpoint,
)
from plip.factory import create_model, list_models
from plip.losses import PLIPLoss
from plip.model import PLIPModel
from plip.programs import distributed
from plip.programs.eval_data import eval_set_from_shards, parse_identities
from plip.programs.schedule import epoch_schedule
from plip.programs.settings import flag_record, from_flags
from plip.programs.train_data import BatchSpec, count_samples, train_batches
from plip.programs.training import (
    LossWindow,
    MetricsLog,
    Optimisation,
    RunSettings,
    add_optimisation_flags,
    add_run_flags,
    build_optimizer,
    check_out_dir,
    check_resume_settings,
    checkpoint_to_resume,
    freeze_text_layers,
    learning_rates,
    start_run,
)
from plip.retrieval import Gallery, QuerySet, evaluate
from plip.transforms import check_eval_size

PROG = "python -m plip.pretrain"
LOSSES = ("ivlc", "tic", "iap")
CHECKPOINT_DIR, METRICS_FILE, ARGS_FILE = "checkpoints", "metrics.jsonl", "args.json"
_CHECKPOINT_NAME = re.compile(r"step-(\d{8})")
_DELETING = ".deleting"


def _parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(prog=PROG, description="Pre-train PLIP on SYNTH-PEDES-style corpus shards.")
    data = p.add_argument_group("data")
    data.add_argument(
        "--shards",
        required=True,
        help="corpus folder, shard file, brace pattern "
        "('dir/synthpedes-{000000..000009}.tar') or URL (gs://, s3://, http://): streamed, never copied",
    )
    data.add_argument("--out", required=True, type=Path, help="run folder: metrics.jsonl, args.json, checkpoints/")
    data.add_argument("--ids-per-batch", type=positive_int, default=16, help="P: identities per batch (default 16)")
    data.add_argument(
        "--images-per-id", type=positive_int, default=4, help="K: images per identity; batch = P x K (default 4)"
    )
    data.add_argument(
        "--shuffle-buffer", type=non_negative_int, default=1000, help="sample shuffle buffer, 0 = off (default 1000)"
    )
    data.add_argument(
        "--group-buffer",
        type=positive_int,
        default=5000,
        help="samples waiting for their "
        "identity's batch at most; beyond it the oldest unfinished identity is dropped (default 5000)",
    )
    data.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        help="DataLoader processes decoding images "
        "per rank; each reads its own shards, so shards >= ranks x workers (default 0: in the main "
        "process)",
    )
    data.add_argument(
        "--steps-per-epoch",
        type=positive_int,
        help="batches per epoch and rank (default: corpus "
        "samples / (P x K x ranks); every rank runs exactly this many, repeating its shards when "
        "needed)",
    )
    data.add_argument(
        "--on-bad-sample",
        choices=("raise", "skip"),
        default="raise",
        help="a damaged sample or "
        "shard: raise = stop with a one-line error naming it; skip = leave it out and count it in "
        "metrics.jsonl's skipped_samples, at the cost of one extra image decode per sample "
        "(default raise)",
    )
    model = p.add_argument_group("model")
    model.add_argument(
        "--preset", default="RN50-MiniLM", choices=list_models(), help="model preset (default RN50-MiniLM)"
    )
    model.add_argument("--text-model", help="text encoder: local folder or cached name (default: the preset's)")
    model.add_argument(
        "--model-overrides",
        type=json_object,
        default={},
        metavar="JSON",
        help='preset fields to replace, e.g. \'{"vision": {"width": 32}}\'',
    )
    loss = p.add_argument_group("losses")
    loss.add_argument(
        "--losses",
        type=name_list(LOSSES, "loss"),
        default="ivlc,tic,iap",
        help="comma-separated tasks to train (default all three)",
    )
    loss.add_argument(
        "--tic-weight", type=non_negative_float, default=0.02, help="weight of the colorization loss (default 0.02)"
    )
    loss.add_argument(
        "--iap-weight", type=non_negative_float, default=0.1, help="weight of the attribute loss (default 0.1)"
    )
    add_optimisation_flags(
        p, epochs=70, lr=0.002, text_lr_scale=0.1, warmup_epochs=10, milestones="30,50", text_trainable_layers=4
    )
    run = add_run_flags(
        p, precisions=("fp32", "bf16", "fp16"), seed_help="seed of weights, data order and augmentation"
    )
    run.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=1000,
        help="steps between checkpoints; one is also written at the end (default 1000)",
    )
    run.add_argument("--keep-checkpoints", type=positive_int, default=3, help="newest checkpoints kept (default 3)")
    run.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="CHECKPOINT",
        help="continue from a "
        "checkpoint folder; alone: the newest in RUN_DIR/checkpoints (a fresh start if there is none)",
    )
    ev = p.add_argument_group("zero-shot evaluation")
    ev.add_argument("--eval-shards", help="shards of held-out identities for text-to-image retrieval")
    ev.add_argument("--eval-identities", help="identities of --eval-shards to use, 'A-B' or 'A,B' (default: all)")
    ev.add_argument(
        "--eval-every", type=non_negative_int, default=0, help="steps between evaluations; 0 = only at the end"
    )
    ev.add_argument(
        "--eval-batch-size", type=positive_int, default=64, help="images / captions per forward (default 64)"
    )
    return p


@dataclass(frozen=True)
class ModelChoice:
    """The model flags: the preset, its overrides and text model, and the losses trained (a loss left out of
    ``--losses`` builds no head)."""

    preset: str
    text_model: str | None
    model_overrides: dict[str, Any]
    losses: tuple[str, ...]
    tic_weight: float
    iap_weight: float


@dataclass(frozen=True)
class PretrainSettings:
    """The program's flags, checked: what the run reads instead of the parsed Namespace."""

    shards: str
    out: Path
    ids_per_batch: int
    images_per_id: int
    shuffle_buffer: int
    group_buffer: int
    workers: int
    steps_per_epoch: int | None
    on_bad_sample: str
    model: ModelChoice
    optimisation: Optimisation
    run: RunSettings
    checkpoint_every: int
    keep_checkpoints: int
    resume: str | None
    eval_shards: str | None
    eval_identities: str | None
    eval_every: int
    eval_batch_size: int
    flags: dict[str, Any]  # as given, for args.json

    @classmethod
    def from_flags(cls, args: argparse.Namespace) -> PretrainSettings:
        """The settings of parsed flags; what argparse cannot check flag by flag is a CliError."""
        if args.eval_identities and not args.eval_shards:
            raise CliError("--eval-identities needs --eval-shards")
        check_out_dir(args.out, [CHECKPOINT_DIR])
        return from_flags(
            cls,
            args,
            model=from_flags(ModelChoice, args),
            optimisation=Optimisation.from_flags(args),
            run=RunSettings.from_flags(args),
            flags=flag_record(args),
        )


def _shard_urls(source: str, needed: int) -> list[str]:
    """The shard URLs; local ones must exist, and every rank x worker needs one of its own."""
    try:
        urls = shards.shard_urls(source)
    except InputError as exc:
        raise CliError(f"--shards: {exc}") from None
    for url in urls:
        parsed = urlparse(url)
        if parsed.scheme in ("", "file") and not Path(parsed.path if parsed.scheme else url).is_file():
            raise CliError(f"--shards: no such shard file: {url}")
    if len(urls) < needed:
        raise CliError(
            f"--shards: {len(urls)} shard(s) for {needed} reader(s) (ranks x workers): "
            "every reader needs at least one shard"
        )
    return urls


# --- model ---------------------------------------------------------------------------------------


def build_model(choice: ModelChoice) -> PLIPModel:
    """The preset with the flags' overrides; a loss left out of ``--losses`` builds no head."""
    overrides = dict(choice.model_overrides)
    weights = {
        "tic": choice.tic_weight if "tic" in choice.losses else 0.0,
        "iap": choice.iap_weight if "iap" in choice.losses else 0.0,
    }
    for task, weight in weights.items():
        overrides[task] = {**overrides.get(task, {}), "weight": weight}
    overrides["ivlc_weight"] = 1.0 if "ivlc" in choice.losses else 0.0
    if choice.text_model:
        overrides["text"] = {**overrides.get("text", {}), "name_or_path": choice.text_model, "pretrained": True}
    return create_model(choice.preset, **overrides)


# --- checkpoints and evaluation --------------------------------------------------------------------


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """The run's checkpoints, oldest first (``step-XXXXXXXX`` folders: never one still being written, which
    ``plip.checkpoint.save_checkpoint`` keeps under another name until it is complete)."""
    folder = run_dir / CHECKPOINT_DIR
    found = (
        [p for p in folder.iterdir() if p.is_dir() and _CHECKPOINT_NAME.fullmatch(p.name)] if folder.is_dir() else []
    )
    return sorted(found)


def _resume_dir(resume: str | None, run_dir: Path) -> Path | None:
    if resume is None:
        return None
    if resume == "latest":  # the newest complete one (a folder left damaged by hand is passed over)
        found = [directory for directory in checkpoint_dirs(run_dir) if is_complete(directory)]
        return checkpoint_to_resume(found[-1] if found else None, named=False)
    return checkpoint_to_resume(Path(resume), named=True)


@dataclass
class Training:
    """What one training process holds."""

    model: PLIPModel
    module: nn.Module  # the model, wrapped in DDP when distributed
    loss: PLIPLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    context: distributed.Context
    device: torch.device
    skipped_samples: int = 0  # damaged samples this rank's batches left out since the start of the run


def save(training: Training, run_dir: Path, step: int, steps_per_epoch: int, kept: dict[str, Any], keep: int) -> None:
    """Checkpoint ``step`` (rank 0 writes; every rank's RNG states and skip count go along) and prune old ones;
    ``kept``: the settings a resumed run must keep."""
    ranks = distributed.gather(training.context, (capture_rng_state(training.device), training.skipped_samples))
    if training.context.is_main:
        rng = [states for states, _ in ranks]
        state = TrainerState(
            step=step,
            epoch=step // steps_per_epoch,
            data_position={"epoch": step // steps_per_epoch, "batches_consumed": step % steps_per_epoch},
            rng=rng[0],
            extra={
                "scheduler": training.scheduler.state_dict(),
                "scaler": training.scaler.state_dict(),
                "rank_rng": rng,
                "rank_skipped_samples": [skipped for _, skipped in ranks],
                "settings": kept,
            },
        )
        save_checkpoint(run_dir / CHECKPOINT_DIR / f"step-{step:08d}", training.model, training.optimizer, state)
        for old in checkpoint_dirs(run_dir)[:-keep]:
            doomed = old.with_name(old.name + _DELETING)  # first renamed: never a half-deleted step folder
            shutil.rmtree(doomed, ignore_errors=True)
            old.rename(doomed)
        for doomed in (run_dir / CHECKPOINT_DIR).glob(f"*{_DELETING}"):  # this time's and any a crash left
            shutil.rmtree(doomed)
    distributed.barrier(training.context)


def restore(training: Training, directory: Path, kept: dict[str, Any]) -> int:
    """Load a checkpoint into ``training``; return its step. A damaged file is a one-line CheckpointError."""
    state = load_training_state(directory, training.optimizer)
    state_file = directory / TRAINER_STATE_FILE
    extra = state.extra
    saved_settings = extra.get("settings", {})
    if not isinstance(saved_settings, dict):
        raise CheckpointError(f"{state_file}: damaged resume state ('settings' must be an object)")
    check_resume_settings(directory, saved_settings, kept)
    load_weights(training.model, directory / MODEL_FILE, training.device)
    rank, ranks = training.context.rank, training.context.world_size
    with reading(state_file, "damaged resume state"):
        check_like(extra["scheduler"], training.scheduler.state_dict(), "scheduler")
        training.scheduler.load_state_dict(extra["scheduler"])
        if extra["scaler"] and training.scaler.is_enabled():
            check_like(extra["scaler"], training.scaler.state_dict(), "scaler")
            training.scaler.load_state_dict(extra["scaler"])
        skipped = extra.get("rank_skipped_samples", [0] * ranks)
        check_like(skipped, [0] * ranks, "rank_skipped_samples")
        training.skipped_samples = skipped[rank]
        rng = extra["rank_rng"]
        if not isinstance(rng, list) or len(rng) != ranks or not isinstance(rng[rank], dict):
            raise ValueError(f"'rank_rng' must hold the RNG states of {ranks} rank(s)")
        restore_rng_state(rng[rank], training.device)
    return state.step


@dataclass(frozen=True)
class EvalSet:
    queries: QuerySet
    gallery: Gallery


class _AllIdentities:
    def __contains__(self, identity: object) -> bool:
        return True


def load_eval_set(settings: PretrainSettings, image_size: tuple[int, int]) -> EvalSet | None:
    if not settings.eval_shards:
        return None
    try:
        check_eval_size(image_size)
    except InputError as exc:
        raise CliError(f"--eval-shards: {exc}") from None
    identities = parse_identities(settings.eval_identities) if settings.eval_identities else _AllIdentities()
    try:
        queries, gallery = eval_set_from_shards(settings.eval_shards, identities)
    except FileNotFoundError as exc:
        raise CliError(f"--eval-shards: {exc.strerror or exc}: {exc.filename}") from None
    return EvalSet(queries, gallery)


# --- the step --------------------------------------------------------------------------------------


def train_step(
    training: Training, batch: dict[str, torch.Tensor], precision: str, clip_grad: float
) -> dict[str, float]:
    """One optimiser update; returns the weighted loss terms and their sum as floats."""
    batch = {name: value.to(training.device, non_blocking=True) for name, value in batch.items()}
    with autocast(training.device, precision):
        outputs = training.module(batch)
    # Losses in fp32: the softmax / KL of IVLC is sensitive to half precision.
    outputs = {k: v.float() if v.is_floating_point() else v for k, v in outputs.items()}
    losses = training.loss(**outputs)
    total = sum(losses.values())
    optimizer_step(
        total,
        training.optimizer,
        training.scaler,
        clip_grad,
        [p for p in training.model.parameters() if p.requires_grad],
    )
    training.scheduler.step()
    return {"loss": float(total.detach()), **{name: float(value.detach()) for name, value in losses.items()}}


# --- the job ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m plip.pretrain``: bad input is one line on stderr and exit code 2."""
    return run_main(PROG, _main, argv)


def _main(argv: Sequence[str] | None) -> int:
    settings = PretrainSettings.from_flags(_parser().parse_args(argv))
    start_run(settings.run)
    context = distributed.setup(settings.run.device)
    try:
        return _train(settings, context)
    finally:
        distributed.teardown(context)


def _train(settings: PretrainSettings, context: distributed.Context) -> int:
    optimisation, run = settings.optimisation, settings.run
    device, precision = run.device, run.precision
    if context.distributed and device.type == "cuda":
        device = torch.device("cuda", context.local_rank)
    skip_bad = settings.on_bad_sample == "skip"
    _shard_urls(settings.shards, context.world_size * max(settings.workers, 1))
    batch_size = settings.ids_per_batch * settings.images_per_id
    steps_per_epoch = settings.steps_per_epoch or max(
        1, count_samples(settings.shards, skip_bad) // (batch_size * context.world_size)
    )
    total_steps = optimisation.epochs * steps_per_epoch
    total_steps = total_steps if optimisation.max_steps is None else min(optimisation.max_steps, total_steps)
    # What a resumed run must share with the run it continues, or its batches would differ.
    kept = {
        "shards": settings.shards,
        "ids_per_batch": settings.ids_per_batch,
        "images_per_id": settings.images_per_id,
        "shuffle_buffer": settings.shuffle_buffer,
        "group_buffer": settings.group_buffer,
        "seed": run.seed,
        "workers": settings.workers,
        "world_size": context.world_size,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "preset": settings.model.preset,
        "losses": list(settings.model.losses),
    }
    resume_dir = _resume_dir(settings.resume, settings.out)

    torch.manual_seed(run.seed)  # the same initial weights on every rank
    model = build_model(settings.model).to(device)
    eval_set = load_eval_set(settings, model.config.vision.image_size) if context.is_main else None
    freeze_text_layers(model, optimisation.text_trainable_layers)
    optimizer = build_optimizer(model, optimisation.lr, optimisation.text_lr_scale, optimisation.weight_decay)
    scheduler = epoch_schedule(
        optimizer, steps_per_epoch, optimisation.warmup_epochs, optimisation.milestones, optimisation.gamma
    )
    scaler = grad_scaler(device, precision)
    module: nn.Module = model
    if context.distributed:
        module = DistributedDataParallel(model, device_ids=[context.local_rank] if device.type == "cuda" else None)
    training = Training(
        model, module, PLIPLoss.from_config(model.config), optimizer, scheduler, scaler, context, device
    )
    torch.manual_seed(run.seed + context.rank)  # dropout differs per rank

    step = restore(training, resume_dir, kept) if resume_dir is not None else 0
    metrics = None
    if context.is_main:
        settings.out.mkdir(parents=True, exist_ok=True)
        (settings.out / ARGS_FILE).write_text(json.dumps({**settings.flags, **kept}, indent=2) + "\n", encoding="utf-8")
        metrics = MetricsLog(settings.out / METRICS_FILE, step if resume_dir is not None else None)
        if not run.quiet:
            print(
                f"{PROG}: {steps_per_epoch} steps/epoch of {batch_size} x {context.world_size} samples, "
                f"{total_steps} steps, device {device}, {precision}"
                + (f", resumed at step {step} from {resume_dir}" if resume_dir is not None else ""),
                file=sys.stderr,
            )

    spec = BatchSpec(
        source=settings.shards,
        tokenizer=model.tokenizer,
        ids_per_batch=settings.ids_per_batch,
        images_per_id=settings.images_per_id,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        image_size=model.config.vision.image_size,
        max_length=model.config.text.max_length,
        shuffle=settings.shuffle_buffer,
        group_buffer=settings.group_buffer,
        seed=run.seed,
        rank=context.rank,
        masking=model.iap_head is not None,
        skip_bad_samples=skip_bad,
    )
    bar = tqdm(total=total_steps, initial=step, unit="step", disable=run.quiet or not context.is_main)
    window = LossWindow()
    model.train()
    while step < total_steps:
        epoch = step // steps_per_epoch
        batches = train_batches(spec, epoch, step % steps_per_epoch, settings.workers, device.type == "cuda")
        for batch in batches:
            del batch["batch_index"]
            training.skipped_samples += batch.pop("skipped_samples")
            rates = learning_rates(optimizer)  # used by this step
            window.add(train_step(training, batch, precision, optimisation.clip_grad))
            step += 1
            bar.update()
            if step % run.log_every == 0 or step == total_steps:
                means = distributed.mean_over_ranks(context, window.means())
                entry = {
                    "kind": "train",
                    "step": step,
                    "epoch": epoch,
                    **means,
                    **rates,
                    "samples_per_s": batch_size * context.world_size * window.steps / window.seconds(),
                }
                if skip_bad:
                    skipped = {"skipped_samples": training.skipped_samples}
                    entry["skipped_samples"] = int(distributed.sum_over_ranks(context, skipped)["skipped_samples"])
                if metrics is not None:
                    metrics.write(entry)
                    bar.set_postfix(loss=f"{means['loss']:.4f}")
                window = LossWindow()
            evaluating = settings.eval_every and step % settings.eval_every == 0
            if settings.eval_shards and (step == total_steps or evaluating):
                if metrics is not None and eval_set is not None:
                    metrics.write(
                        {
                            "kind": "eval",
                            "step": step,
                            **evaluate(model, eval_set.queries, eval_set.gallery, settings.eval_batch_size, device),
                        }
                    )
                distributed.barrier(context)  # the other ranks wait for rank 0's evaluation
            if step % settings.checkpoint_every == 0 or step == total_steps:
                save(training, settings.out, step, steps_per_epoch, kept, settings.keep_checkpoints)
            if step >= total_steps or step % steps_per_epoch == 0:
                break
    bar.close()
    return 0
