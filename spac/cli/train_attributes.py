"""`spac train-attributes`: train an attribute predictor on people rendered on the fly by spac.render.

Every training image is a fresh identity drawn from ``--seed``'s stream; the evaluation identities come
from a separate seed range that training never touches, so the final per-group accuracy table (printed
and written to OUT/eval.json) measures generalisation to unseen people. Labels are the attributes the
renderer reports as visible (``unknown`` is a class like any other).

Reproducible: the same flags (and thread count) give the same images, the same batches and the same
weights.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Iterator, Sequence

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm import tqdm

from spac import render
from spac.attributes import UNKNOWN, Schema, load_schema
from spac.cli.support import CliError, OneLineArgumentParser, run_main
from spac.predictor import (BACKBONE_PRESETS, AttributePredictor, PredictorConfig, build_predictor, load_predictor,
                           preprocess, resolve_device)

# Identity seeds: training uses seed * TRAIN_STRIDE + k (k < TRAIN_STRIDE); evaluation starts at
# EVAL_SEED_BASE, above every training seed of every allowed --seed.
TRAIN_STRIDE = 2**32
MAX_SEED = 2**24
EVAL_SEED_BASE = MAX_SEED * TRAIN_STRIDE


def render_sample(identity_seed: int, schema: Schema) -> tuple[Image.Image, dict[str, str]]:
    """One rendered person for an identity seed: (image, visible attributes)."""
    # Identity, scene and flip each get their own derived seed: a shared seed would tie the first random
    # draws of the scene (pose, mirroring) to the identity's gender, and the model would learn that instead.
    attributes = render.random_identity(random.Random(render.stable_seed(identity_seed, "identity")), schema)
    return render.render_person(attributes, seed=render.stable_seed(identity_seed, "scene"), size=(128, 256))


def label_indices(attributes: dict[str, str], schema: Schema) -> torch.Tensor:
    """Group -> label index (0 = unknown) as one long tensor in schema group order."""
    return torch.tensor([g.labels.index(attributes.get(g.name, UNKNOWN)) for g in schema.groups])


class RenderedPeople(IterableDataset):
    """An endless stream of (image tensor, label indices) for training identities of one seed."""

    def __init__(self, seed: int, schema: Schema, config: PredictorConfig, flip: bool = True):
        self.seed, self.schema, self.config, self.flip = seed, schema, config, flip

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        worker = get_worker_info()
        index, step = (worker.id, worker.num_workers) if worker else (0, 1)
        while True:
            identity_seed = self.seed * TRAIN_STRIDE + index
            image, visible = render_sample(identity_seed, self.schema)
            pixels = preprocess(image, self.config.image_size, self.config.mean, self.config.std)
            if self.flip and random.Random(render.stable_seed(identity_seed, "flip")).random() < 0.5:
                pixels = pixels.flip(-1)  # people look the same mirrored; doubles the pose variety
            yield pixels, label_indices(visible, self.schema)
            index += step


def attribute_loss(logits: dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    """Sum over groups of the cross-entropy of each group's softmax; targets is [N, groups] in head order."""
    return sum(nn.functional.cross_entropy(group_logits, targets[:, i]) for i, group_logits in enumerate(logits.values()))


def train_step(model: AttributePredictor, optimizer: torch.optim.Optimizer, pixels: torch.Tensor,
               targets: torch.Tensor) -> float:
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = attribute_loss(model(pixels), targets)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def evaluation_samples(identities: int, schema: Schema) -> Iterator[tuple[Image.Image, dict[str, str]]]:
    """Rendered held-out identities (never used in training): (image, visible attributes)."""
    for i in range(identities):
        yield render_sample(EVAL_SEED_BASE + i, schema)


def evaluate(model: AttributePredictor, identities: int, batch_size: int = 32) -> dict:
    """Per-group accuracy on held-out rendered identities, with the majority-class accuracy for scale."""
    schema = model.schema
    images, truths = zip(*evaluation_samples(identities, schema))
    predictions = model.predict(list(images), batch_size=batch_size)
    groups = {}
    for g in schema.group_names:
        truth = [t.get(g, UNKNOWN) for t in truths]
        correct = sum(p.attributes[g] == v for p, v in zip(predictions, truth))
        majority = Counter(truth).most_common(1)[0][1]
        groups[g] = {"accuracy": correct / len(truth), "majority_baseline": majority / len(truth)}
    mean = sum(r["accuracy"] for r in groups.values()) / len(groups)
    return {"identities": identities, "first_identity_seed": EVAL_SEED_BASE, "groups": groups, "mean_accuracy": mean}


def format_table(report: dict) -> str:
    lines = [f"{'group':<12} {'accuracy':>9} {'majority':>9}"]
    for g, r in report["groups"].items():
        lines.append(f"{g:<12} {r['accuracy']:>9.3f} {r['majority_baseline']:>9.3f}")
    lines.append(f"{'mean':<12} {report['mean_accuracy']:>9.3f}")
    return "\n".join(lines)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(prog="spac train-attributes", description=(
        "Train an attribute predictor on pedestrians rendered on the fly (spac.render), then report per-group "
        "accuracy on held-out rendered identities. Writes OUT/config.json, OUT/model.safetensors, OUT/eval.json."))
    p.add_argument("--out", required=True, type=Path, help="output directory for the trained predictor")
    p.add_argument("--steps", type=int, default=3000, help="optimizer steps (default: 3000)")
    p.add_argument("--batch-size", type=int, default=32, help="images per step (default: 32)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate, cosine-decayed (default: 2e-3)")
    p.add_argument("--seed", type=int, default=0, help=f"seed of the training identities and the initial weights, "
                   f"0 <= seed < {MAX_SEED} (default: 0)")
    p.add_argument("--backbone", default="tiny", help=f"a ResNet preset ({', '.join(BACKBONE_PRESETS)}) or a "
                   "transformers from_pretrained name or local path to start from (default: tiny)")
    p.add_argument("--depths", type=_int_list, help="override the preset's blocks per stage, e.g. 1,1,1,1")
    p.add_argument("--hidden-sizes", type=_int_list, help="override the preset's channels per stage, e.g. 32,64,128,256")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader processes rendering images (default: 0 = in "
                   "the training process)")
    p.add_argument("--eval-identities", type=int, default=200, help="held-out rendered identities to evaluate on "
                   "(default: 200)")
    p.add_argument("--weights-dtype", choices=("float16", "float32"), default="float16",
                   help="dtype the weights are stored in; loading casts back to float32 (default: float16)")
    p.add_argument("--device", default="cpu", help="torch device to train on (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table; errors only")
    return p


def _backbone_config(args: argparse.Namespace, schema: Schema) -> PredictorConfig:
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


def _check_args(args: argparse.Namespace) -> None:
    for flag, value, low in (("--steps", args.steps, 1), ("--batch-size", args.batch_size, 1),
                             ("--threads", args.threads, 1), ("--workers", args.workers, 0),
                             ("--eval-identities", args.eval_identities, 0)):
        if value < low:
            raise CliError(f"{flag} must be at least {low}, got {value}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise CliError(f"--lr must be a positive number, got {args.lr}")
    if not 0 <= args.seed < MAX_SEED:
        raise CliError(f"--seed must be in [0, {MAX_SEED}), got {args.seed}")
    if args.out.exists() and not args.out.is_dir():
        raise CliError(f"--out {args.out} exists and is not a directory")


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_args(args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    schema = load_schema()
    try:
        device = resolve_device(args.device)
        model = build_predictor(_backbone_config(args, schema), schema).to(device)
    except (ValueError, RuntimeError) as exc:
        raise CliError(str(exc).splitlines()[0]) from None

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    warmup = max(1, args.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / warmup, 0.5 * (
        1 + math.cos(math.pi * min(s, args.steps) / args.steps))))
    stream = DataLoader(RenderedPeople(args.seed, schema, model.config), batch_size=args.batch_size,
                        num_workers=args.workers)
    started = time.perf_counter()
    progress = tqdm(total=args.steps, desc="training", unit="step", disable=args.quiet)
    running = None
    for step, (pixels, targets) in enumerate(stream):
        if step == args.steps:
            break
        loss = train_step(model, optimizer, pixels.to(args.device), targets.to(args.device))
        schedule.step()
        running = loss if running is None else 0.98 * running + 0.02 * loss
        progress.update(1)
        progress.set_postfix(loss=f"{running:.3f}")
    progress.close()
    seconds = time.perf_counter() - started
    model.config.training = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                             "images": args.steps * args.batch_size, "seconds": round(seconds, 1),
                             "images_per_second": round(args.steps * args.batch_size / seconds, 1)}
    model.save(args.out, torch.float16 if args.weights_dtype == "float16" else torch.float32)

    if args.eval_identities:
        # Evaluate the weights as saved (possibly float16), i.e. exactly what a user will load.
        report = evaluate(load_predictor(args.out, device=args.device), args.eval_identities)
        report["training"] = model.config.training
        (args.out / "eval.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        if not args.quiet:
            print(format_table(report))
    if not args.quiet:
        print(f"saved the predictor to {args.out} ({seconds:.0f} s, "
              f"{model.config.training['images_per_second']} images/s)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main("spac train-attributes", cli_main))
