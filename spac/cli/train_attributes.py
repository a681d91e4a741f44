"""`spac train-attributes`: train an attribute predictor on rendered people, attribute datasets, mined labels or a mix.

Wires the ``--data`` sources (spac.predictor.data_sources: rendered people from spac.render, PA-100K / PETA / RAP
readers, mined-caption labels) into the method's trainer (spac.predictor.training): the masked loss (a group or
a colour a source does not say is not trained), optional class balancing, label-preserving augmentation,
validation with early stopping, checkpoints and an exact ``--resume``, CUDA with autocast. Without ``--data``
it trains on rendered people the way the bundled demo predictor was trained (each training image a fresh
identity of ``--seed``, mirror flips only, no balancing).

Writes OUT/config.json + OUT/model.safetensors (the predictor), OUT/eval.json (per-group accuracy of the saved
weights on each source's held-out examples: rendered evaluation identities, a dataset's validation split) and,
with validation, OUT/history.json. Reproducible: the same flags and thread count give the same weights,
whatever ``--workers``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import ConcatDataset

from common.cli import (
    CliError,
    OneLineArgumentParser,
    add_quiet_flag,
    device,
    image_size,
    non_negative_int,
    positive_float,
    positive_int,
    silence_libraries,
)
from common.training import PRECISIONS, resolve_precision
from spac.attributes import Schema, load_schema
from spac.predictor.augmentation import MODES
from spac.predictor.data_sources import DataSpec, Source, add_data_flags, format_table, open_source, spread
from spac.predictor.model import BACKBONE_PRESETS, PredictorConfig, build_predictor, load_predictor
from spac.predictor.training import TrainingSettings, balance_weights, evaluate, train
from spac.render.training_source import MAX_SEED

BALANCE_POWERS = {"none": None, "sqrt": 0.5, "inverse": 1.0}
CHECKPOINT_DIR = "checkpoint"


def _int_list(text: str) -> list[int]:
    """--depths / --hidden-sizes: comma-separated positive integers."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _training_seed(text: str) -> int:
    """--seed: 0 <= seed < MAX_SEED, so that no training identity reaches the held-out ones."""
    value = non_negative_int(text)
    if value >= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be below {MAX_SEED}, got {value}")
    return value


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(
        prog="spac train-attributes",
        description=(
            "Train an attribute predictor on rendered people (spac.render), PA-100K, PETA, RAP, labels mined from "
            "human captions, or a mix, then report per-group accuracy on each source's held-out examples. Writes "
            "OUT/config.json, OUT/model.safetensors, OUT/eval.json (and OUT/history.json with --eval-every, "
            "OUT/checkpoint/ with --checkpoint-every)."
        ),
    )
    p.add_argument("--out", required=True, type=Path, help="output directory for the trained predictor")
    add_data_flags(p)
    p.add_argument(
        "--steps",
        type=positive_int,
        default=3000,
        help="optimizer steps, each one batch; a dataset is read in as many epochs as that takes (default: 3000)",
    )
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per step (default: 32)")
    p.add_argument(
        "--lr", type=positive_float, default=2e-3, help="peak AdamW learning rate, cosine-decayed (default: 2e-3)"
    )
    p.add_argument(
        "--seed",
        type=_training_seed,
        default=0,
        help=f"seed of the rendered training identities, the "
        f"batch order, the augmentation and the initial weights, 0 <= seed < {MAX_SEED} (default: 0)",
    )
    p.add_argument(
        "--backbone",
        default="tiny",
        help=f"a ResNet preset ({', '.join(BACKBONE_PRESETS)}) or a "
        "transformers ResNet to start from: a from_pretrained hub name such as microsoft/resnet-50 (needs "
        "the hub) or a local folder saved with save_pretrained (works offline); a local folder's "
        "preprocessor_config.json mean/std become the predictor's normalisation (default: tiny)",
    )
    p.add_argument("--depths", type=_int_list, help="override the preset's blocks per stage, e.g. 1,1,1,1")
    p.add_argument(
        "--hidden-sizes", type=_int_list, help="override the preset's channels per stage, e.g. 32,64,128,256"
    )
    p.add_argument(
        "--image-size",
        type=image_size,
        default=(256, 128),
        metavar="HxW",
        help="input height x width of the predictor (default: 256x128, the corpus size)",
    )
    p.add_argument(
        "--augment",
        choices=("auto", *MODES),
        default="auto",
        help="training augmentation that keeps "
        "colours true (no colour jitter): full = random crop/scale, flip, small rotation, blur; flip = "
        "mirror only; auto = full when a dataset is in the mix, flip for rendered people only (default)",
    )
    p.add_argument(
        "--balance",
        choices=("auto", *BALANCE_POWERS),
        default="auto",
        help="class balancing: weight each "
        "example per group by the inverse frequency of its label (inverse) or its square root (sqrt), "
        "normalised to mean 1, capped at 10; rendered people get weight 1; auto = sqrt when a dataset is "
        "in the mix, none for rendered people only (default)",
    )
    p.add_argument(
        "--eval-every",
        type=non_negative_int,
        default=0,
        help="score the validation examples every N "
        "steps and at the end, keeping the best weights (lowest validation loss); 0 = never (default: 0)",
    )
    p.add_argument(
        "--patience",
        type=non_negative_int,
        default=0,
        help="early stopping: stop after N scorings "
        "without a lower validation loss; needs --eval-every; 0 = never stop early (default: 0)",
    )
    p.add_argument(
        "--val-limit",
        type=non_negative_int,
        default=1000,
        help="validation examples per source, spread "
        "over its validation split (rendered: that many validation identities); 0 = all (default: 1000)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=non_negative_int,
        default=0,
        help="write OUT/checkpoint/train_state.pt "
        "every N steps and at the end (weights, optimizer, schedule, step, RNG) (default: 0 = never)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT/checkpoint/ exactly where it stopped "
        "(same flags required; starts fresh when there is no checkpoint)",
    )
    p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        help="DataLoader processes reading or rendering images (default: 0 = in the training process)",
    )
    p.add_argument(
        "--eval-identities",
        type=non_negative_int,
        default=200,
        help="held-out rendered identities the "
        "final report scores when rendered people are in the mix; 0 = none (default: 200)",
    )
    p.add_argument(
        "--weights-dtype",
        choices=("float16", "float32"),
        default="float16",
        help="dtype the weights are stored in; loading casts back to float32 (default: float16)",
    )
    p.add_argument(
        "--device",
        type=device,
        default="cpu",
        help="torch device to train on: cpu, cuda, cuda:N or auto (default: cpu)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", *PRECISIONS),
        default="auto",
        help="autocast precision: bf16 or "
        "fp16 (CUDA only; adds a gradient scaler) mixed precision, or fp32; auto = bf16 on CUDA, fp32 on "
        "a CPU (default)",
    )
    add_quiet_flag(p)
    return p


def _pretrained_normalisation(name: str) -> dict[str, tuple[float, float, float]]:
    """mean/std of a local pretrained folder's preprocessor_config.json (ImageNet statistics for most ResNets)."""
    config = Path(name) / "preprocessor_config.json"
    if not config.is_file():
        return {}
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
        mean, std = tuple(float(v) for v in data["image_mean"]), tuple(float(v) for v in data["image_std"])
    except (ValueError, KeyError, TypeError):
        raise CliError(f"{config}: no usable image_mean / image_std") from None
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise CliError(f"{config}: image_mean and image_std must be three numbers each (std > 0)")
    return {"mean": mean, "std": std}


def _predictor_config(args: argparse.Namespace, schema: Schema) -> PredictorConfig:
    extra: dict[str, Any] = {"image_size": args.image_size}
    if args.backbone in BACKBONE_PRESETS:
        backbone, pretrained = dict(BACKBONE_PRESETS[args.backbone]), None
    else:
        if args.depths or args.hidden_sizes:
            raise CliError("--depths/--hidden-sizes only apply to a preset backbone, not a pretrained one")
        backbone, pretrained = {}, args.backbone
        extra.update(_pretrained_normalisation(args.backbone))
    if args.depths:
        backbone["depths"] = args.depths
    if args.hidden_sizes:
        backbone["hidden_sizes"] = args.hidden_sizes
    if pretrained is None and len(backbone["depths"]) != len(backbone["hidden_sizes"]):
        raise CliError(
            f"--depths has {len(backbone['depths'])} stages but --hidden-sizes has {len(backbone['hidden_sizes'])}"
        )
    return PredictorConfig.for_schema(schema, backbone, pretrained, **extra)


def _sources(args: argparse.Namespace, schema: Schema, specs: list[DataSpec]) -> list[Source]:
    kinds = [s.kind for s in specs]
    if len(set(map(str, specs))) != len(specs):
        raise CliError("the same --data source is given twice")
    datasets = [
        open_source(s, schema, images=args.images, val_fraction=args.val_fraction, rap_partition=args.rap_partition)
        for s in specs
        if s.kind != "rendered"
    ]
    real_train = sum(len(d.train) for d in datasets)
    rendered = []
    if "rendered" in kinds:
        spec = specs[kinds.index("rendered")]
        # Alone: one fresh identity per training image (today's training). Mixed: as many as the datasets hold.
        count = args.steps * args.batch_size if not datasets else real_train
        rendered.append(
            open_source(
                spec,
                schema,
                seed=args.seed,
                rendered_count=count,
                evaluation_count=args.eval_identities,
                validation_count=args.val_limit or 1000,
            )
        )
    return rendered + datasets


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        raise CliError(f"--out {args.out} exists and is not a directory")
    if args.patience and not args.eval_every:
        raise CliError("--patience needs --eval-every (how often to score the validation examples)")
    precision = resolve_precision(args.precision, args.device)
    specs = args.data or [DataSpec("rendered")]
    silence_libraries(args.quiet)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    schema = load_schema()
    sources = _sources(args, schema, specs)
    rendered_only = all(s.rendered for s in sources)
    augment = args.augment if args.augment != "auto" else ("flip" if rendered_only else "full")
    balance = args.balance if args.balance != "auto" else ("none" if rendered_only else "sqrt")
    model = build_predictor(_predictor_config(args, schema), schema).to(args.device)

    train_parts = [s.train for s in sources]
    training = train_parts[0] if len(train_parts) == 1 else ConcatDataset(train_parts)
    power = BALANCE_POWERS[balance]
    weights = balance_parts(train_parts, schema, power) if power is not None else None
    validation = None
    if args.eval_every:
        parts = [spread(s.val, args.val_limit) for s in sources]
        validation = parts[0] if len(parts) == 1 else ConcatDataset(parts)
        if not len(validation):
            raise CliError("--eval-every: the sources have no validation examples")
    settings = TrainingSettings(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        workers=args.workers,
        seed=args.seed,
        shuffle=not rendered_only,
        augment=augment,
        eval_every=args.eval_every,
        patience=args.patience,
        checkpoint_every=args.checkpoint_every,
        precision=precision,
    )
    record = train(
        model,
        training,
        settings,
        validation=validation,
        weights=weights,
        checkpoint_dir=args.out / CHECKPOINT_DIR,
        resume=args.resume,
        progress=not args.quiet,
    )
    history = record.pop("history")
    model.config.training = {**record, "balance": balance, "data": [str(s) for s in specs]}
    model.save(args.out, torch.float16 if args.weights_dtype == "float16" else torch.float32)
    if history:
        (args.out / "history.json").write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")

    # Evaluate the weights as saved (possibly float16), i.e. exactly what a user will load.
    saved = load_predictor(args.out, device=args.device)
    reports = {}
    for source in sources:
        held_out = source.test if source.rendered else spread(source.val, args.val_limit)
        if len(held_out):
            reports[source.name] = {
                **evaluate(saved, held_out, args.batch_size, args.workers),
                "split": "evaluation identities" if source.rendered else "val",
                **{k: v for k, v in source.report.items() if not isinstance(v, list) or len(v) < 50},
            }
    (args.out / "eval.json").write_text(
        json.dumps({"sources": reports, "training": model.config.training}, indent=2) + "\n", encoding="utf-8"
    )
    if not args.quiet:
        for name, report in reports.items():
            print(f"{name} ({report['split']}, {report['examples']} images)\n{format_table(report)}")
        print(f"saved the predictor to {args.out} ({record['seconds']:.0f} s, {record['images_per_second']} images/s)")
    return 0


def balance_parts(parts: Sequence, schema: Schema, power: float) -> torch.Tensor:
    """Balance weights of the training parts in order: one inverse-frequency table over every dataset split's
    in-memory labels (spac.predictor.training.balance_weights); weight 1 for rendered people."""
    labelled = [label for part in parts for label in getattr(part, "labels", None) or ()]
    joint = balance_weights(labelled, schema, power) if labelled else torch.ones(0, len(schema.groups))
    rows, used = [], 0
    for part in parts:
        if getattr(part, "labels", None) is None:
            rows.append(torch.ones(len(part), len(schema.groups)))
        else:
            rows.append(joint[used : used + len(part)])
            used += len(part)
    return torch.cat(rows)
