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
RNG states, and the same remaining batches of the epoch.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlparse

import safetensors.torch
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import shards
from plip import distributed
from plip.checkpoint import (MODEL_FILE, TrainerState, capture_rng_state, load_training_state, restore_rng_state,
                             save_checkpoint)
from plip.command import call_main
from plip.config import create_model, list_models
from plip.eval_data import EVAL_HEIGHT, EVAL_WIDTH, Gallery, QuerySet, eval_set_from_shards, parse_identities
from plip.losses import PLIPLoss
from plip.model import PLIPModel
from plip.schedule import epoch_schedule
from plip.train_data import BatchSpec, count_samples, train_batches
from plip.zero_shot import evaluate, resolve_device
from spac.cli.support import CliError, OneLineArgumentParser, run_main

PROG = "python -m plip.pretrain"
LOSSES = ("ivlc", "tic", "iap")
CHECKPOINT_DIR, METRICS_FILE, ARGS_FILE = "checkpoints", "metrics.jsonl", "args.json"
_CHECKPOINT_NAME = re.compile(r"step-(\d{8})")
# Settings a resumed run must share with the run it continues, or its batches would differ.
_RESUME_KEYS = ("shards", "ids_per_batch", "images_per_id", "shuffle_buffer", "group_buffer", "seed", "workers",
                "world_size", "steps_per_epoch", "total_steps", "preset", "losses")


def _parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(prog=PROG, description="Pre-train PLIP on SYNTH-PEDES-style corpus shards.")
    data = p.add_argument_group("data")
    data.add_argument("--shards", required=True, help="corpus folder, shard file, brace pattern "
                      "('dir/synthpedes-{000000..000009}.tar') or URL (gs://, s3://, http://): streamed, never copied")
    data.add_argument("--out", required=True, type=Path, help="run folder: metrics.jsonl, args.json, checkpoints/")
    data.add_argument("--ids-per-batch", type=int, default=16, help="P: identities per batch (default 16)")
    data.add_argument("--images-per-id", type=int, default=4, help="K: images per identity; batch = P x K (default 4)")
    data.add_argument("--shuffle-buffer", type=int, default=1000, help="sample shuffle buffer, 0 = off (default 1000)")
    data.add_argument("--group-buffer", type=int, default=5000, help="samples waiting for their identity's "
                      "batch at most; beyond it the oldest unfinished identity is dropped (default 5000)")
    data.add_argument("--workers", type=int, default=0, help="DataLoader processes decoding images per rank; each "
                      "reads its own shards, so shards >= ranks x workers (default 0: in the main process)")
    data.add_argument("--steps-per-epoch", type=int, help="batches per epoch and rank (default: corpus samples / "
                      "(P x K x ranks); every rank runs exactly this many, repeating its shards when needed)")
    model = p.add_argument_group("model")
    model.add_argument("--preset", default="RN50-MiniLM", help=f"model preset: {', '.join(list_models())} "
                       "(default RN50-MiniLM)")
    model.add_argument("--text-model", help="text encoder: local folder or cached name (default: the preset's)")
    model.add_argument("--model-overrides", type=json.loads, default={}, metavar="JSON",
                       help='preset fields to replace, e.g. \'{"vision": {"width": 32}}\'')
    model.add_argument("--text-trainable-layers", type=int, default=4, help="top text-encoder layers that train; "
                       "the rest and the embeddings stay frozen; -1 = all (default 4)")
    loss = p.add_argument_group("losses")
    loss.add_argument("--losses", default="ivlc,tic,iap", help="comma-separated tasks to train (default all three)")
    loss.add_argument("--tic-weight", type=float, default=0.02, help="weight of the colorization loss (default 0.02)")
    loss.add_argument("--iap-weight", type=float, default=0.1, help="weight of the attribute loss (default 0.1)")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--lr", type=float, default=0.002, help="AdamW learning rate (default 0.002)")
    opt.add_argument("--text-lr-scale", type=float, default=0.1, help="text-encoder rate = lr x this (default 0.1)")
    opt.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (default 0.01)")
    opt.add_argument("--warmup-epochs", type=float, default=10, help="linear warm-up length (default 10)")
    opt.add_argument("--milestones", default="30,50", help="epochs where the rate is multiplied by --gamma "
                     "(default 30,50; fractions allowed)")
    opt.add_argument("--gamma", type=float, default=0.1, help="step-decay factor (default 0.1)")
    opt.add_argument("--clip-grad", type=float, default=5.0, help="gradient-norm clipping, 0 = off (default 5)")
    opt.add_argument("--epochs", type=int, default=70, help="training epochs (default 70)")
    opt.add_argument("--max-steps", type=int, help="stop after this many steps in all (default: epochs x steps)")
    run = p.add_argument_group("run")
    run.add_argument("--device", default="auto", help="cpu, cuda or auto (default: cuda when available)")
    run.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                     help="autocast precision; fp16 adds a gradient scaler (default: bf16 on CUDA, fp32 on CPU)")
    run.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    run.add_argument("--seed", type=int, default=0, help="seed of weights, data order and augmentation (default 0)")
    run.add_argument("--log-every", type=int, default=10, help="steps between metrics.jsonl lines (default 10)")
    run.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints; one is also "
                     "written at the end (default 1000)")
    run.add_argument("--keep-checkpoints", type=int, default=3, help="newest checkpoints kept (default 3)")
    run.add_argument("--resume", nargs="?", const="latest", metavar="CHECKPOINT", help="continue from a "
                     "checkpoint folder; alone: the newest in RUN_DIR/checkpoints (a fresh start if there is none)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    ev = p.add_argument_group("zero-shot evaluation")
    ev.add_argument("--eval-shards", help="shards of held-out identities for text-to-image retrieval")
    ev.add_argument("--eval-identities", help="identities of --eval-shards to use, 'A-B' or 'A,B' (default: all)")
    ev.add_argument("--eval-every", type=int, default=0, help="steps between evaluations; 0 = only at the end")
    ev.add_argument("--eval-batch-size", type=int, default=64, help="images / captions per forward (default 64)")
    return p


# --- checking the flags ----------------------------------------------------------------------------


def _check_flags(args: Any) -> None:
    positive = ("ids_per_batch", "images_per_id", "group_buffer", "epochs", "log_every", "checkpoint_every",
                "keep_checkpoints", "eval_batch_size")
    for name in positive:
        if getattr(args, name) < 1:
            raise CliError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    for name in ("shuffle_buffer", "workers", "eval_every", "clip_grad", "weight_decay", "warmup_epochs"):
        if getattr(args, name) < 0:
            raise CliError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    for name in ("steps_per_epoch", "max_steps", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise CliError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.lr <= 0 or args.text_lr_scale < 0:
        raise CliError("--lr must be positive and --text-lr-scale >= 0")
    if args.preset not in list_models():
        raise CliError(f"--preset {args.preset!r}: choose from {', '.join(list_models())}")
    if not isinstance(args.model_overrides, dict):
        raise CliError("--model-overrides must be a JSON object")
    if args.eval_identities and not args.eval_shards:
        raise CliError("--eval-identities needs --eval-shards")
    args.losses = _losses(args.losses)
    args.milestones = parse_milestones(args.milestones)


def _losses(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in LOSSES]
    if unknown or not names:
        raise CliError(f"--losses: {'unknown loss ' + repr(unknown[0]) if unknown else 'none given'} "
                       f"(choose from {', '.join(LOSSES)})")
    return names


def parse_milestones(text: str) -> tuple[float, ...]:
    """``--milestones``: comma-separated, increasing positive epochs (fractions allowed; empty = none)."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise CliError(f"--milestones must be comma-separated epochs, got {text!r}") from None
    if any(v <= 0 for v in values) or list(values) != sorted(set(values)):
        raise CliError(f"--milestones must be increasing positive epochs, got {text!r}")
    return values


def resolve_precision(name: str, device: str) -> str:
    """``--precision``: auto = bf16 on CUDA, fp32 on a CPU; fp16 only on CUDA."""
    if name == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    if name == "fp16" and not device.startswith("cuda"):
        raise CliError("--precision fp16 needs --device cuda (use bf16 or fp32 on a CPU)")
    return name


def _shard_urls(source: str, needed: int) -> list[str]:
    """The shard URLs; local ones must exist, and every rank x worker needs one of its own."""
    try:
        urls = shards.shard_urls(source)
    except ValueError as exc:
        raise CliError(f"--shards: {exc}") from None
    for url in urls:
        parsed = urlparse(url)
        if parsed.scheme in ("", "file") and not Path(parsed.path if parsed.scheme else url).is_file():
            raise CliError(f"--shards: no such shard file: {url}")
    if len(urls) < needed:
        raise CliError(f"--shards: {len(urls)} shard(s) for {needed} reader(s) (ranks x workers): "
                       "every reader needs at least one shard")
    return urls


# --- model and optimiser ---------------------------------------------------------------------------


def build_model(args: Any) -> PLIPModel:
    overrides = dict(args.model_overrides)
    weights = {"tic": args.tic_weight if "tic" in args.losses else 0.0,
               "iap": args.iap_weight if "iap" in args.losses else 0.0}
    for task, weight in weights.items():
        overrides[task] = {**overrides.get(task, {}), "weight": weight}
    overrides["ivlc_weight"] = 1.0 if "ivlc" in args.losses else 0.0
    if args.text_model:
        overrides["text"] = {**overrides.get("text", {}), "name_or_path": args.text_model, "pretrained": True}
    return create_model(args.preset, **overrides)


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


# --- checkpoints, metrics, evaluation --------------------------------------------------------------


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """The run's checkpoints, oldest first."""
    folder = run_dir / CHECKPOINT_DIR
    found = [p for p in folder.iterdir() if p.is_dir() and _CHECKPOINT_NAME.fullmatch(p.name)] if folder.is_dir() else []
    return sorted(found)


def _resume_dir(args: Any) -> Path | None:
    if args.resume is None:
        return None
    if args.resume == "latest":
        found = checkpoint_dirs(args.out)
        return found[-1] if found else None
    path = Path(args.resume)
    if not (path / MODEL_FILE).is_file():
        raise CliError(f"--resume {path}: not a checkpoint folder (no {MODEL_FILE})")
    return path


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
    device: str


def _rng_states(device: str) -> dict[str, Any]:
    states = {"cpu": capture_rng_state()}
    if device.startswith("cuda"):
        states["cuda"] = torch.cuda.get_rng_state().tolist()
    return states


def save(training: Training, run_dir: Path, step: int, steps_per_epoch: int, settings: dict[str, Any],
         keep: int) -> None:
    """Checkpoint ``step`` (rank 0 writes; every rank's RNG states go along) and prune old ones."""
    rng = distributed.gather(training.context, _rng_states(training.device))
    if training.context.is_main:
        state = TrainerState(
            step=step, epoch=step // steps_per_epoch,
            data_position={"epoch": step // steps_per_epoch, "batches_consumed": step % steps_per_epoch},
            rng=rng[0]["cpu"],
            extra={"scheduler": training.scheduler.state_dict(), "scaler": training.scaler.state_dict(),
                   "rank_rng": rng, "settings": settings},
        )
        save_checkpoint(run_dir / CHECKPOINT_DIR / f"step-{step:08d}", training.model, training.optimizer, state)
        for old in checkpoint_dirs(run_dir)[:-keep]:
            shutil.rmtree(old)
    distributed.barrier(training.context)


def restore(training: Training, directory: Path, settings: dict[str, Any]) -> int:
    """Load a checkpoint into ``training``; return its step."""
    state = load_training_state(directory, training.optimizer)
    saved = state.extra.get("settings", {})
    changed = [key for key in _RESUME_KEYS if key in saved and saved[key] != settings[key]]
    if changed:
        raise CliError(f"--resume {directory}: {changed[0]} was {saved[changed[0]]!r}, now {settings[changed[0]]!r}; "
                       "a resumed run needs the same data and batch settings")
    safetensors.torch.load_model(training.model, str(directory / MODEL_FILE), device=training.device)
    training.scheduler.load_state_dict(state.extra["scheduler"])
    if state.extra["scaler"]:
        training.scaler.load_state_dict(state.extra["scaler"])
    rng = state.extra["rank_rng"][training.context.rank]
    restore_rng_state(rng["cpu"])
    if "cuda" in rng and training.device.startswith("cuda"):
        torch.cuda.set_rng_state(torch.tensor(rng["cuda"], dtype=torch.uint8))
    return state.step


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


@dataclass(frozen=True)
class EvalSet:
    queries: QuerySet
    gallery: Gallery


class _AllIdentities:
    def __contains__(self, identity: object) -> bool:
        return True


def load_eval_set(args: Any, image_size: tuple[int, int]) -> EvalSet | None:
    if not args.eval_shards:
        return None
    if tuple(image_size) != (EVAL_HEIGHT, EVAL_WIDTH):
        raise CliError(f"--eval-shards: zero-shot evaluation feeds {EVAL_HEIGHT}x{EVAL_WIDTH} images (the released "
                       f"transform), the model takes {image_size[0]}x{image_size[1]}")
    identities = parse_identities(args.eval_identities) if args.eval_identities else _AllIdentities()
    try:
        queries, gallery = eval_set_from_shards(args.eval_shards, identities)
    except FileNotFoundError as exc:
        raise CliError(f"--eval-shards: {exc.strerror or exc}: {exc.filename}") from None
    return EvalSet(queries, gallery)


# --- the step --------------------------------------------------------------------------------------


def train_step(training: Training, batch: dict[str, torch.Tensor], precision: str, clip_grad: float) -> dict[str, float]:
    """One optimiser update; returns the weighted loss terms and their sum as floats."""
    batch = {name: value.to(training.device, non_blocking=True) for name, value in batch.items()}
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    device_type = "cuda" if training.device.startswith("cuda") else "cpu"
    with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
        outputs = training.module(batch)
    # Losses in fp32: the softmax / KL of IVLC is sensitive to half precision.
    outputs = {k: v.float() if v.is_floating_point() else v for k, v in outputs.items()}
    losses = training.loss(**outputs)
    total = sum(losses.values())
    training.optimizer.zero_grad(set_to_none=True)
    training.scaler.scale(total).backward()
    if clip_grad > 0:
        training.scaler.unscale_(training.optimizer)
        nn.utils.clip_grad_norm_([p for p in training.model.parameters() if p.requires_grad], clip_grad)
    training.scaler.step(training.optimizer)
    training.scaler.update()
    training.scheduler.step()
    return {"loss": float(total.detach()), **{name: float(value.detach()) for name, value in losses.items()}}


# --- the job ---------------------------------------------------------------------------------------


def main(args: Any) -> int:
    _check_flags(args)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    if args.threads:
        torch.set_num_threads(args.threads)
    context = distributed.setup(device)
    try:
        return _train(args, device, precision, context)
    finally:
        distributed.teardown(context)


def _train(args: Any, device: str, precision: str, context: distributed.Context) -> int:
    if context.distributed and device.startswith("cuda"):
        device = f"cuda:{context.local_rank}"
    _shard_urls(args.shards, context.world_size * max(args.workers, 1))
    batch_size = args.ids_per_batch * args.images_per_id
    steps_per_epoch = args.steps_per_epoch or max(1, count_samples(args.shards) // (batch_size * context.world_size))
    total_steps = args.epochs * steps_per_epoch if args.max_steps is None else min(args.max_steps,
                                                                                   args.epochs * steps_per_epoch)
    settings = {"shards": args.shards, "ids_per_batch": args.ids_per_batch, "images_per_id": args.images_per_id,
                "shuffle_buffer": args.shuffle_buffer, "group_buffer": args.group_buffer, "seed": args.seed,
                "workers": args.workers, "world_size": context.world_size, "steps_per_epoch": steps_per_epoch,
                "total_steps": total_steps, "preset": args.preset, "losses": list(args.losses)}
    resume_dir = _resume_dir(args)

    torch.manual_seed(args.seed)  # the same initial weights on every rank
    model = build_model(args).to(device)
    eval_set = load_eval_set(args, model.config.vision.image_size) if context.is_main else None
    freeze_text_layers(model, args.text_trainable_layers)
    optimizer = build_optimizer(model, args.lr, args.text_lr_scale, args.weight_decay)
    scheduler = epoch_schedule(optimizer, steps_per_epoch, args.warmup_epochs, args.milestones, args.gamma)
    scaler = torch.amp.GradScaler("cuda" if device.startswith("cuda") else "cpu", enabled=precision == "fp16")
    module: nn.Module = model
    if context.distributed:
        module = DistributedDataParallel(model, device_ids=[context.local_rank] if device.startswith("cuda") else None)
    training = Training(model, module, PLIPLoss.from_config(model.config), optimizer, scheduler, scaler, context,
                        device)
    torch.manual_seed(args.seed + context.rank)  # dropout differs per rank

    step = restore(training, resume_dir, settings) if resume_dir is not None else 0
    metrics = None
    if context.is_main:
        args.out.mkdir(parents=True, exist_ok=True)
        record = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        (args.out / ARGS_FILE).write_text(json.dumps({**record, **settings}, indent=2) + "\n", encoding="utf-8")
        metrics = MetricsLog(args.out / METRICS_FILE, step if resume_dir is not None else None)
        if not args.quiet:
            print(f"{PROG}: {steps_per_epoch} steps/epoch of {batch_size} x {context.world_size} samples, "
                  f"{total_steps} steps, device {device}, {precision}"
                  + (f", resumed at step {step} from {resume_dir}" if resume_dir is not None else ""), file=sys.stderr)

    spec = BatchSpec(source=args.shards, tokenizer=model.tokenizer, ids_per_batch=args.ids_per_batch,
                     images_per_id=args.images_per_id, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                     image_size=model.config.vision.image_size, max_length=model.config.text.max_length,
                     shuffle=args.shuffle_buffer, group_buffer=args.group_buffer, seed=args.seed,
                     rank=context.rank, masking=model.iap_head is not None)
    bar = tqdm(total=total_steps, initial=step, unit="step", disable=args.quiet or not context.is_main)
    sums: dict[str, float] = {}
    window_start, window_steps = time.perf_counter(), 0
    model.train()
    while step < total_steps:
        epoch = step // steps_per_epoch
        batches = train_batches(spec, epoch, step % steps_per_epoch, args.workers, device.startswith("cuda"))
        for batch in batches:
            del batch["batch_index"]
            rates = {f"lr_{group['name']}": group["lr"] for group in optimizer.param_groups}  # used by this step
            for name, value in train_step(training, batch, precision, args.clip_grad).items():
                sums[name] = sums.get(name, 0.0) + value
            step, window_steps = step + 1, window_steps + 1
            bar.update()
            if step % args.log_every == 0 or step == total_steps:
                elapsed = time.perf_counter() - window_start
                means = distributed.mean_over_ranks(context, {k: v / window_steps for k, v in sums.items()})
                entry = {"kind": "train", "step": step, "epoch": epoch, **means,
                         **rates,
                         "samples_per_s": batch_size * context.world_size * window_steps / elapsed}
                if metrics is not None:
                    metrics.write(entry)
                    bar.set_postfix(loss=f"{means['loss']:.4f}")
                sums, window_start, window_steps = {}, time.perf_counter(), 0
            if args.eval_shards and (step == total_steps or (args.eval_every and step % args.eval_every == 0)):
                if metrics is not None and eval_set is not None:
                    metrics.write({"kind": "eval", "step": step,
                                   **evaluate(model, eval_set.queries, eval_set.gallery, args.eval_batch_size, device)})
                distributed.barrier(context)  # the other ranks wait for rank 0's evaluation
            if step % args.checkpoint_every == 0 or step == total_steps:
                save(training, args.out, step, steps_per_epoch, settings, args.keep_checkpoints)
            if step >= total_steps or step % steps_per_epoch == 0:
                break
    bar.close()
    return 0


def cli_main(argv: Sequence[str] | None = None) -> int:
    return call_main(main, _parser().parse_args(argv))

if __name__ == "__main__":
    sys.exit(run_main(PROG, cli_main))
