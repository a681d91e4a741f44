"""`python -m plip.finetune`: fine-tune a PLIP model for text-based person retrieval on CUHK-PEDES, ICFG-PEDES or
RSTPReid with CMPM (identity-level, ``plip.losses.ivlc_loss``) + CMPC (``plip.cmpc``), the paper's downstream baseline.

    python -m plip.finetune --checkpoint runs/rn50/checkpoints/step-00100000 --dataset CUHK-PEDES \\
        --root data/CUHK-PEDES --out runs/ft-cuhk --device cuda
    python -m plip.finetune --checkpoint PLIP_MRN50.pth.tar --preset RN50 --dataset ICFG-PEDES ...
    python -m plip.finetune --checkpoint PLIP_MRN50.pth.tar --dataset RSTPReid --root data/RSTPReid ...

Trains on the ``train`` split (every caption with its image is a pair; batches of several pairs per identity),
evaluates text-to-image retrieval on ``--eval-split`` after every ``--eval-every-epochs`` epochs and at the end.
Writes ``RUN_DIR/metrics.jsonl`` (train and eval lines), ``RUN_DIR/args.json``, ``RUN_DIR/best/`` (highest
R@1) and ``RUN_DIR/last/`` (adds optimizer, trainer state and the CMPC classifier), both in plip.checkpoint's
directory format, which ``python -m plip.zero_shot --checkpoint`` reads. ``last/`` is rewritten after every
evaluation (and every ``--checkpoint-every`` steps); ``--resume`` continues from it exactly: weights, optimizer,
schedule, classifier, position in the epoch's batch plan, best R@1, the partial logging window and RNG states.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from common.cli import CliError, OneLineArgumentParser, non_negative_float, non_negative_int, positive_int, run_main
from common.training import autocast, capture_rng_state, optimizer_step, restore_rng_state
from plip.checkpoint import (
    MODEL_FILE,
    TRAINER_STATE_FILE,
    CheckpointError,
    TrainerState,
    check_like,
    load_checkpoint_model,
    load_training_state,
    load_weights,
    reading,
    recover_checkpoint,
    save_checkpoint,
)
from plip.cmpc import IdentityClassifier
from plip.factory import create_model, list_models
from plip.losses import ivlc_loss
from plip.model import PLIPModel
from plip.programs.eval_data import DATASET_JSON, DATASET_NAMES, load_eval_split
from plip.programs.finetune_data import TrainPairs, epoch_loader, epoch_plan, load_train_entries, train_pairs
from plip.programs.schedule import epoch_schedule
from plip.programs.settings import flag_record, from_flags
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

PROG = "python -m plip.finetune"
METRICS_FILE, ARGS_FILE, BEST_DIR, LAST_DIR = "metrics.jsonl", "args.json", "best", "last"
CLASSIFIER_FILE = "classifier.safetensors"
# Flags that change the data, the batches or the model: a resumed run must keep them.
RESUME_FLAGS = (
    "dataset",
    "root",
    "batch_size",
    "pairs_per_id",
    "seed",
    "checkpoint",
    "preset",
    "tokenizer",
    "text_trainable_layers",
)


def _parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(
        prog=PROG,
        description=f"Fine-tune PLIP on {DATASET_NAMES} with CMPM + CMPC and "
        "evaluate text-to-image retrieval after every epoch.",
    )
    start = p.add_argument_group("starting model (one of --checkpoint or --preset)")
    start.add_argument(
        "--checkpoint",
        type=Path,
        help="our checkpoint directory (model.safetensors + config.json) "
        "or a released-format file such as PLIP_MRN50.pth.tar",
    )
    start.add_argument(
        "--preset",
        choices=list_models(),
        help="with a released-format --checkpoint: its "
        "architecture (default RN50); without --checkpoint: train this preset from its initial weights",
    )
    start.add_argument(
        "--tokenizer",
        help="released-format files only: local tokenizer folder (default: the "
        "bundled bert-base-uncased WordPiece vocabulary)",
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--dataset", required=True, choices=tuple(DATASET_JSON), help=f"{DATASET_NAMES}: the dataset under --root"
    )
    data.add_argument(
        "--root",
        required=True,
        type=Path,
        help=f"dataset folder holding "
        f"{' / '.join(DATASET_JSON.values())} (or the <NAME>-train/-test/-valid.json of "
        "plip.dataset_split) and imgs/",
    )
    data.add_argument("--out", required=True, type=Path, help="run folder: metrics.jsonl, args.json, best/, last/")
    data.add_argument(
        "--eval-split",
        default="test",
        choices=("test", "valid"),
        help="split evaluated after each epoch and used to pick best/ (default test)",
    )
    data.add_argument(
        "--pairs-per-id",
        type=positive_int,
        default=4,
        help="(image, caption) pairs of one identity in a batch; --batch-size must be a multiple (default 4)",
    )
    data.add_argument(
        "--workers", type=non_negative_int, default=0, help="DataLoader processes loading images (default 0)"
    )
    opt = add_optimisation_flags(
        p, epochs=30, lr=1e-4, text_lr_scale=1.0, warmup_epochs=0, milestones="", text_trainable_layers=-1
    )
    opt.add_argument("--batch-size", type=positive_int, default=32, help="pairs per batch (default 32)")
    opt.add_argument(
        "--cmpc-weight",
        type=non_negative_float,
        default=1.0,
        help="weight of CMPC beside CMPM; 0 = CMPM only (default 1)",
    )
    run = add_run_flags(p, precisions=("fp32", "bf16"), seed_help="seed of the classifier, batch order and flips")
    run.add_argument(
        "--eval-every-epochs",
        type=non_negative_int,
        default=1,
        help="epochs between evaluations; 0 = only at the end (default 1)",
    )
    run.add_argument(
        "--eval-batch-size",
        type=positive_int,
        default=64,
        help="images / captions per forward when evaluating (default 64)",
    )
    run.add_argument(
        "--checkpoint-every",
        type=positive_int,
        metavar="N",
        help="also rewrite RUN_DIR/last/ every "
        "this many steps, so an interrupted run loses less (default: only after each evaluation)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last/ checkpoint "
        "(a fresh start if there is none); --dataset, --root, --batch-size, --pairs-per-id, --seed, "
        "--checkpoint, --preset, --tokenizer and --text-trainable-layers must be the run's; --epochs "
        "and --max-steps may grow; the learning rate comes from the saved optimizer and schedule",
    )
    return p


@dataclass(frozen=True)
class FinetuneSettings:
    """The program's flags, checked: what the run reads instead of the parsed Namespace."""

    checkpoint: Path | None
    preset: str | None
    tokenizer: str | None
    dataset: str
    root: Path
    out: Path
    eval_split: str
    pairs_per_id: int
    workers: int
    optimisation: Optimisation
    batch_size: int
    cmpc_weight: float
    run: RunSettings
    eval_every_epochs: int
    eval_batch_size: int
    checkpoint_every: int | None
    resume: bool
    flags: dict[str, Any]  # as given, for args.json and the settings a resumed run must keep

    @classmethod
    def from_flags(cls, args: argparse.Namespace) -> FinetuneSettings:
        """The settings of parsed flags; what argparse cannot check flag by flag is a CliError."""
        if args.batch_size % args.pairs_per_id:
            raise CliError(f"--batch-size {args.batch_size} must be a multiple of --pairs-per-id {args.pairs_per_id}")
        if args.checkpoint is None and args.preset is None:
            raise CliError("give --checkpoint (ours or released-format) or --preset (train from initial weights)")
        if not args.root.is_dir():
            raise CliError(f"--root {args.root}: not a folder")
        check_out_dir(args.out, [BEST_DIR, LAST_DIR])
        return from_flags(
            cls,
            args,
            optimisation=Optimisation.from_flags(args),
            run=RunSettings.from_flags(args),
            flags=flag_record(args),
        )


# --- model -----------------------------------------------------------------------------------------


def load_start_model(
    checkpoint: Path | None, preset: str | None, tokenizer: str | None, device: torch.device
) -> PLIPModel:
    """The model to fine-tune, without the pre-training heads (TIC / IAP), in training mode on ``device``."""
    if checkpoint is not None:
        model = load_checkpoint_model(checkpoint, device, preset or "RN50", tokenizer)
    else:
        model = create_model(preset, tic={"weight": 0}, iap={"weight": 0}).to(device)
    model.tic_head, model.iap_head = None, None
    model.config.tic.weight, model.config.iap.weight = 0.0, 0.0  # saved configs then build no heads either
    check_eval_size(model.config.vision.image_size)
    return model.train()


@dataclass
class FineTuning:
    """What the loop updates."""

    model: PLIPModel
    classifier: IdentityClassifier
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    device: torch.device
    precision: str
    clip_grad: float
    cmpc_weight: float


def train_step(tuning: FineTuning, batch: dict[str, Any]) -> dict[str, float]:
    """One optimiser update on a batch of ``images`` / ``captions`` / ``labels``; returns the loss terms."""
    model, device = tuning.model, tuning.device
    tokens = {k: v.to(device) for k, v in model.tokenize(batch["captions"]).items()}
    labels = batch["labels"].to(device)
    with autocast(device, tuning.precision):
        image_features = model.encode_image(batch["images"].to(device, non_blocking=True))
        text_features = model.encode_text(tokens["input_ids"], tokens["attention_mask"])
    # Losses in fp32: softmax / KL and the classifier are sensitive to half precision.
    image_features, text_features = image_features.float(), text_features.float()
    cmpm = ivlc_loss(image_features, text_features, labels, model.config.ivlc_target_norm)
    cmpc = tuning.cmpc_weight * tuning.classifier(image_features, text_features, labels)
    total = cmpm + cmpc
    optimizer_step(total, tuning.optimizer, clip_grad=tuning.clip_grad)  # no fp16: no loss scaling
    tuning.scheduler.step()
    return {"loss": float(total.detach()), "cmpm_loss": float(cmpm.detach()), "cmpc_loss": float(cmpc.detach())}


def save_run_checkpoint(directory: Path, tuning: FineTuning, state: TrainerState, with_training_state: bool) -> None:
    """Our checkpoint format with ``state``; the optimizer and the CMPC classifier too when asked."""
    save_checkpoint(
        directory,
        tuning.model,
        tuning.optimizer if with_training_state else None,
        state,
        extra_weights={CLASSIFIER_FILE: tuning.classifier} if with_training_state else None,
    )


# --- where training stands, saved in last/ and restored by --resume ---------------------------------


@dataclass
class Progress:
    """The loop's position: ``batch`` batches of epoch ``epoch``'s plan are done."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    best_r1: float | None = None
    eval_step: int | None = None  # step of the latest evaluation, so a resumed run does not repeat it

    def epochs_done(self, plan_length: int) -> int:
        return self.epoch + (self.batch == plan_length)


def save_last(
    out: Path,
    tuning: FineTuning,
    progress: Progress,
    window: LossWindow,
    kept: dict[str, Any],
    epochs_done: int,
    evaluation: dict[str, Any] | None = None,
) -> None:
    """``out/last/``: the model and everything ``--resume`` needs to continue exactly from ``progress``;
    ``kept``: the settings a resumed run must keep."""
    extra: dict[str, Any] = {
        "scheduler": tuning.scheduler.state_dict(),
        "settings": kept,
        "best_r1": progress.best_r1,
        "eval_step": progress.eval_step,
        "window": window.state(),
    }
    if evaluation is not None:
        extra["eval"] = evaluation
    state = TrainerState(
        step=progress.step,
        epoch=epochs_done,
        rng=capture_rng_state(tuning.device),
        extra=extra,
        data_position={"epoch": progress.epoch, "batch": progress.batch},
    )
    save_run_checkpoint(out / LAST_DIR, tuning, state, with_training_state=True)


def _resume_dir(resume: bool, out: Path) -> Path | None:
    if not resume:
        return None
    # A crash between the two renames of a checkpoint swap leaves last/ under last.old: put it back.
    directory = checkpoint_to_resume(recover_checkpoint(out / LAST_DIR), named=False)
    if directory is None:
        print(f"{PROG}: --resume: no {out / LAST_DIR} checkpoint yet, starting fresh", file=sys.stderr)
    return directory


def restore_last(directory: Path, tuning: FineTuning, kept: dict[str, Any]) -> tuple[Progress, LossWindow]:
    """Load ``directory`` (a last/ checkpoint) into ``tuning`` and the RNGs, after checking the settings the run
    must keep; a damaged file is a one-line CheckpointError naming it."""
    saved_settings = load_training_state(directory).extra.get("settings")
    state_file = directory / TRAINER_STATE_FILE
    if saved_settings is not None and not isinstance(saved_settings, dict):
        raise CheckpointError(f"{state_file}: damaged resume state ('settings' must be an object)")
    check_resume_settings(directory, saved_settings, kept)
    state = load_training_state(directory, tuning.optimizer)
    load_weights(tuning.model, directory / MODEL_FILE, tuning.device)
    load_weights(tuning.classifier, directory / CLASSIFIER_FILE, tuning.device)
    with reading(state_file, "damaged resume state"):
        extra = state.extra
        check_like(extra["scheduler"], tuning.scheduler.state_dict(), "scheduler")
        tuning.scheduler.load_state_dict(extra["scheduler"])
        restore_rng_state(state.rng, tuning.device)
        check_like(state.data_position, {"epoch": 0, "batch": 0}, "data_position")
        if min(state.data_position["epoch"], state.data_position["batch"]) < 0:
            raise ValueError(f"data_position {state.data_position} is negative")
        check_like(extra["window"], {"sums": None, "steps": 0, "seconds": 0.0}, "window")
        sums = extra["window"].get("sums") or {}
        if not isinstance(sums, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in sums.values()
        ):
            raise ValueError("window.sums must map loss names to numbers")
        for name in ("best_r1", "eval_step"):
            value = extra[name]
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"{name} must be a number or null, got {type(value).__name__}")
        progress = Progress(
            state.step, state.data_position["epoch"], state.data_position["batch"], extra["best_r1"], extra["eval_step"]
        )
        window = LossWindow(**extra["window"])
    return progress, window


# --- the job ---------------------------------------------------------------------------------------


def _summary(metrics: dict[str, Any]) -> str:
    return f"R@1 {metrics['R@1']:.2f}  R@5 {metrics['R@5']:.2f}  R@10 {metrics['R@10']:.2f}  mAP {metrics['mAP']:.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m plip.finetune``: bad input is one line on stderr and exit code 2."""
    return run_main(PROG, _main, argv)


def _main(argv: Sequence[str] | None) -> int:
    settings = FinetuneSettings.from_flags(_parser().parse_args(argv))
    start_run(settings.run)
    optimisation, run = settings.optimisation, settings.run
    device, precision = run.device, run.precision
    kept = {name: settings.flags[name] for name in RESUME_FLAGS}
    resume_dir = _resume_dir(settings.resume, settings.out)
    entries, source = load_train_entries(settings.dataset, settings.root)
    pairs = train_pairs(entries, settings.root / "imgs", source)
    queries, gallery = load_eval_split(settings.dataset, settings.root, settings.eval_split)

    torch.manual_seed(run.seed)
    model = load_start_model(settings.checkpoint, settings.preset, settings.tokenizer, device)
    freeze_text_layers(model, optimisation.text_trainable_layers)
    classifier = IdentityClassifier(len(pairs.identities), model.embed_dim).to(device)
    optimizer = build_optimizer(model, optimisation.lr, optimisation.text_lr_scale, optimisation.weight_decay)
    optimizer.add_param_group({"params": list(classifier.parameters()), "lr": optimisation.lr, "name": "classifier"})
    plans = [
        epoch_plan(pairs.labels, settings.batch_size, settings.pairs_per_id, run.seed, e)
        for e in range(optimisation.epochs)
    ]
    steps_per_epoch = len(plans[0])
    scheduler = epoch_schedule(
        optimizer, steps_per_epoch, optimisation.warmup_epochs, optimisation.milestones, optimisation.gamma
    )
    tuning = FineTuning(
        model, classifier, optimizer, scheduler, device, precision, optimisation.clip_grad, settings.cmpc_weight
    )
    total_steps = sum(len(plan) for plan in plans)
    total_steps = total_steps if optimisation.max_steps is None else min(optimisation.max_steps, total_steps)
    progress, window = restore_last(resume_dir, tuning, kept) if resume_dir else (Progress(), LossWindow())

    settings.out.mkdir(parents=True, exist_ok=True)
    sizes = {
        "train_pairs": len(pairs),
        "train_identities": len(pairs.identities),
        "total_steps": total_steps,
        "eval_queries": len(queries),
        "eval_gallery": len(gallery),
    }
    (settings.out / ARGS_FILE).write_text(json.dumps({**settings.flags, **sizes}, indent=2) + "\n", encoding="utf-8")
    if not run.quiet:
        print(
            f"{PROG}: {len(pairs)} pairs of {len(pairs.identities)} identities, {steps_per_epoch} steps/epoch, "
            f"{total_steps} steps, device {device}, {precision}; {settings.eval_split}: {len(queries)} queries, "
            f"{len(gallery)} images" + (f"; resumed at step {progress.step} from {resume_dir}" if resume_dir else ""),
            file=sys.stderr,
        )
    metrics = MetricsLog(settings.out / METRICS_FILE, progress.step if resume_dir else None)
    _train(settings, tuning, pairs, plans, total_steps, queries, gallery, metrics, progress, window, kept)
    return 0


def _evaluates_now(every_epochs: int, progress: Progress, plan_length: int, total_steps: int) -> bool:
    """Whether the run evaluates at ``progress``: at its end, or at an epoch end every ``every_epochs``
    (--eval-every-epochs)."""
    epoch_end = progress.batch == plan_length and bool(every_epochs) and (progress.epoch + 1) % every_epochs == 0
    return (progress.step >= total_steps or epoch_end) and progress.eval_step != progress.step


def _train(
    settings: FinetuneSettings,
    tuning: FineTuning,
    pairs: TrainPairs,
    plans: list[list[list[int]]],
    total_steps: int,
    queries: QuerySet,
    gallery: Gallery,
    metrics: MetricsLog,
    progress: Progress,
    window: LossWindow,
    kept: dict[str, Any],
) -> None:
    run, every_epochs = settings.run, settings.eval_every_epochs
    bar = tqdm(total=total_steps, initial=progress.step, unit="step", disable=run.quiet)
    image_size = tuple(tuning.model.config.vision.image_size)
    for epoch in range(progress.epoch, len(plans)):
        plan = plans[epoch]
        if epoch != progress.epoch:
            progress.epoch, progress.batch = epoch, 0
        batches = epoch_loader(
            pairs,
            image_size,
            plan,
            run.seed,
            epoch,
            settings.workers,
            pin_memory=tuning.device.type == "cuda",
            start=progress.batch,
        )
        for batch in batches if progress.step < total_steps else []:
            rates = learning_rates(tuning.optimizer)
            window.add(train_step(tuning, batch))
            progress.step, progress.batch = progress.step + 1, progress.batch + 1
            bar.update()
            if progress.step % run.log_every == 0 or progress.step == total_steps:
                means = window.means()
                metrics.write(
                    {
                        "kind": "train",
                        "step": progress.step,
                        "epoch": epoch,
                        **means,
                        **rates,
                        "samples_per_s": settings.batch_size * window.steps / window.seconds(),
                    }
                )
                bar.set_postfix(loss=f"{means['loss']:.4f}")
                window = LossWindow()
            if (
                settings.checkpoint_every
                and progress.step % settings.checkpoint_every == 0
                and not _evaluates_now(every_epochs, progress, len(plan), total_steps)
            ):  # else last/ follows it
                save_last(settings.out, tuning, progress, window, kept, progress.epochs_done(len(plan)))
            if progress.step == total_steps:
                break
        if _evaluates_now(every_epochs, progress, len(plan), total_steps):
            _evaluate_and_save(settings, tuning, progress, window, kept, len(plan), queries, gallery, metrics)
        if progress.step >= total_steps:
            break
    bar.close()


def _evaluate_and_save(
    settings: FinetuneSettings,
    tuning: FineTuning,
    progress: Progress,
    window: LossWindow,
    kept: dict[str, Any],
    plan_length: int,
    queries: QuerySet,
    gallery: Gallery,
    metrics: MetricsLog,
) -> None:
    """Evaluate, log, keep best/ when R@1 improves, and rewrite last/."""
    result = evaluate(tuning.model, queries, gallery, settings.eval_batch_size, tuning.device)
    epochs_done = round(progress.epoch + progress.batch / plan_length, 3)  # fractional when --max-steps cut it
    split = settings.eval_split
    metrics.write({"kind": "eval", "step": progress.step, "epoch": epochs_done, "split": split, **result})
    if not settings.run.quiet:
        tqdm.write(f"epoch {epochs_done:g} step {progress.step}: {split} {_summary(result)}", file=sys.stderr)
    progress.eval_step = progress.step
    if progress.best_r1 is None or result["R@1"] > progress.best_r1:
        progress.best_r1 = result["R@1"]
        best = TrainerState(step=progress.step, epoch=progress.epochs_done(plan_length), extra={"eval": result})
        save_run_checkpoint(settings.out / BEST_DIR, tuning, best, with_training_state=False)
    save_last(settings.out, tuning, progress, window, kept, progress.epochs_done(plan_length), result)
