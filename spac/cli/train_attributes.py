"""`spac train-attributes`: train an attribute predictor on people rendered on the fly by spac.render.

Wires the renderer's examples (spac.render.training_source) into the method's trainer
(spac.attribute_training): every training image is a fresh identity of ``--seed``; the evaluation
identities are held out from every seed, so the final per-group accuracy table (printed and written to
OUT/eval.json) measures generalisation to unseen people.

Reproducible: the same flags (and thread count) give the same images, the same batches and the same
weights, whatever ``--workers``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import torch

from spac.attribute_training import TrainingSettings, evaluate, train
from spac.attributes import Schema, load_schema
from spac.cli.support import (CliError, OneLineArgumentParser, add_quiet_flag, device, non_negative_int, positive_float,
                              positive_int, silence_libraries)
from spac.predictor import BACKBONE_PRESETS, PredictorConfig, build_predictor, load_predictor
from spac.render.training_source import EVAL_SEED_BASE, MAX_SEED, evaluation_people, training_people


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
    p = OneLineArgumentParser(prog="spac train-attributes", description=(
        "Train an attribute predictor on pedestrians rendered on the fly (spac.render), then report per-group "
        "accuracy on held-out rendered identities. Writes OUT/config.json, OUT/model.safetensors, OUT/eval.json."))
    p.add_argument("--out", required=True, type=Path, help="output directory for the trained predictor")
    p.add_argument("--steps", type=positive_int, default=3000, help="optimizer steps (default: 3000)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per step (default: 32)")
    p.add_argument("--lr", type=positive_float, default=2e-3,
                   help="peak AdamW learning rate, cosine-decayed (default: 2e-3)")
    p.add_argument("--seed", type=_training_seed, default=0, help=f"seed of the training identities, the image "
                   f"flips and the initial weights, 0 <= seed < {MAX_SEED} (default: 0)")
    p.add_argument("--backbone", default="tiny", help=f"a ResNet preset ({', '.join(BACKBONE_PRESETS)}) or a "
                   "transformers from_pretrained name or local path to start from (default: tiny)")
    p.add_argument("--depths", type=_int_list, help="override the preset's blocks per stage, e.g. 1,1,1,1")
    p.add_argument("--hidden-sizes", type=_int_list, help="override the preset's channels per stage, e.g. 32,64,128,256")
    p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--workers", type=non_negative_int, default=0, help="DataLoader processes rendering images "
                   "(default: 0 = in the training process)")
    p.add_argument("--eval-identities", type=non_negative_int, default=200, help="held-out rendered identities to "
                   "evaluate on; 0 = no evaluation (default: 200)")
    p.add_argument("--weights-dtype", choices=("float16", "float32"), default="float16",
                   help="dtype the weights are stored in; loading casts back to float32 (default: float16)")
    p.add_argument("--device", type=device, default="cpu",
                   help="torch device to train on: cpu, cuda, cuda:N or auto (default: cpu)")
    add_quiet_flag(p)
    return p


def _predictor_config(args: argparse.Namespace, schema: Schema) -> PredictorConfig:
    if args.backbone in BACKBONE_PRESETS:
        backbone, pretrained = dict(BACKBONE_PRESETS[args.backbone]), None
    else:
        if args.depths or args.hidden_sizes:
            raise CliError("--depths/--hidden-sizes only apply to a preset backbone, not a pretrained one")
        backbone, pretrained = {}, args.backbone
    if args.depths:
        backbone["depths"] = args.depths
    if args.hidden_sizes:
        backbone["hidden_sizes"] = args.hidden_sizes
    if pretrained is None and len(backbone["depths"]) != len(backbone["hidden_sizes"]):
        raise CliError(f"--depths has {len(backbone['depths'])} stages but --hidden-sizes has "
                       f"{len(backbone['hidden_sizes'])}")
    return PredictorConfig.for_schema(schema, backbone, pretrained)


def format_table(report: dict[str, Any]) -> str:
    lines = [f"{'group':<12} {'accuracy':>9} {'majority':>9}"]
    for g, r in report["groups"].items():
        lines.append(f"{g:<12} {r['accuracy']:>9.3f} {r['majority_baseline']:>9.3f}")
    lines.append(f"{'mean':<12} {report['mean_accuracy']:>9.3f}")
    return "\n".join(lines)


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        raise CliError(f"--out {args.out} exists and is not a directory")
    silence_libraries(args.quiet)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    schema = load_schema()
    model = build_predictor(_predictor_config(args, schema), schema).to(args.device)

    settings = TrainingSettings(steps=args.steps, batch_size=args.batch_size, lr=args.lr, workers=args.workers)
    people = training_people(args.seed, settings.images, schema)
    record = train(model, people, settings, flip_seed=args.seed, progress=not args.quiet)
    model.config.training = {**record, "seed": args.seed}
    model.save(args.out, torch.float16 if args.weights_dtype == "float16" else torch.float32)

    if args.eval_identities:
        # Evaluate the weights as saved (possibly float16), i.e. exactly what a user will load.
        report = evaluate(load_predictor(args.out, device=args.device), evaluation_people(args.eval_identities, schema))
        report.update(first_identity_seed=EVAL_SEED_BASE, training=model.config.training)
        (args.out / "eval.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        if not args.quiet:
            print(format_table(report))
    if not args.quiet:
        print(f"saved the predictor to {args.out} ({record['seconds']:.0f} s, {record['images_per_second']} images/s)")
    return 0
