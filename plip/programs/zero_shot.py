"""`python -m plip.zero_shot`: zero-shot text-to-image person retrieval on CUHK-PEDES, ICFG-PEDES, RSTPReid or
held-out identities of our shards. Prints Rank-1/5/10, mAP (standard; the released trapezoid variant on request) and
mINP in percent. The retrieval itself is :func:`plip.retrieval.evaluate`.
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

from common.cli import (
    CliError,
    OneLineArgumentParser,
    add_quiet_flag,
    device,
    non_negative_int,
    positive_int,
    run_main,
    silence_libraries,
)
from plip.checkpoint import load_checkpoint_model
from plip.programs.checkpoint_flags import add_released_format_flags
from plip.programs.eval_data import DATASET_JSON, DATASET_NAMES, eval_set_from_shards, load_eval_split, parse_identities
from plip.programs.settings import from_flags
from plip.retrieval import Gallery, QuerySet, evaluate

DATASETS = (*DATASET_JSON, "shards")
MAP_VARIANTS = ("standard", "released")
PROG = "python -m plip.zero_shot"


def _parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(
        prog=PROG,
        description="Zero-shot text-to-image person retrieval: every test "
        "caption queries every test image; prints R@1/5/10, mAP and mINP in percent.",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="our checkpoint directory (model.safetensors + config.json) or a released-format "
        "file such as PLIP_MRN50.pth.tar",
    )
    parser.add_argument(
        "--dataset",
        required=True,
        choices=DATASETS,
        help=f"{DATASET_NAMES} (JSON + imgs/ under --root), or shards (our corpus)",
    )
    parser.add_argument(
        "--root",
        required=True,
        help=f"dataset folder (holding {' / '.join(DATASET_JSON.values())}, or the split files "
        "of plip.dataset_split, and imgs/), or for shards a shard pattern / folder",
    )
    parser.add_argument(
        "--split",
        default="test",
        choices=("test", "valid", "val", "train"),
        help="dataset split to evaluate (default test; not used with shards)",
    )
    parser.add_argument("--identities", help="shards only: held-out identities, 'A-B' (inclusive) or 'A,B,C'")
    parser.add_argument(
        "--device", type=device, default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when available)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=64, help="images / captions per forward pass (default 64)"
    )
    parser.add_argument(
        "--num-workers", type=non_negative_int, default=0, help="DataLoader workers reading images (default 0)"
    )
    parser.add_argument(
        "--map",
        default="standard",
        choices=MAP_VARIANTS,
        help="standard: mean precision at each hit; released: also print the reference code's "
        "trapezoid-rule mAP, comparable with the paper (default standard)",
    )
    add_released_format_flags(parser)
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the metrics and settings to this JSON file")
    add_quiet_flag(parser)
    return parser


@dataclass(frozen=True)
class ZeroShotSettings:
    """The program's flags: what the evaluation reads instead of the parsed Namespace."""

    checkpoint: Path
    dataset: str
    root: str
    split: str
    identities: str | None
    device: torch.device
    batch_size: int
    num_workers: int
    map: str
    model: str
    tokenizer: str | None
    threads: int | None
    json: Path | None
    quiet: bool

    @classmethod
    def from_flags(cls, args: argparse.Namespace) -> ZeroShotSettings:
        return from_flags(cls, args)


def _eval_set(settings: ZeroShotSettings) -> tuple[QuerySet, Gallery]:
    if settings.dataset == "shards":
        if not settings.identities:
            raise CliError("--dataset shards needs --identities (the held-out identities, e.g. 9000-9999)")
        return eval_set_from_shards(settings.root, parse_identities(settings.identities))
    if settings.identities:
        raise CliError("--identities applies only to --dataset shards")
    if not Path(settings.root).is_dir():
        raise CliError(f"--root {settings.root}: not a folder")
    return load_eval_split(settings.dataset, settings.root, settings.split)


def _report(metrics: dict[str, Any], map_variant: str) -> str:
    line = (
        f"R@1 {metrics['R@1']:.2f}  R@5 {metrics['R@5']:.2f}  R@10 {metrics['R@10']:.2f}  "
        f"mAP(standard) {metrics['mAP']:.2f}  mINP {metrics['mINP']:.2f}"
    )
    if map_variant == "released":
        line += f"  mAP(released, trapezoid) {metrics['mAP_released']:.2f}"
    if metrics["queries_without_match"]:
        line += f"\n({metrics['queries_without_match']} queries without a gallery image of their identity left out)"
    return line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m plip.zero_shot``: bad input (dataset, checkpoint, flags) is one line on stderr and exit 2."""
    return run_main(PROG, _main, argv)


def _main(argv: Sequence[str] | None) -> int:
    settings = ZeroShotSettings.from_flags(_parser().parse_args(argv))
    silence_libraries(settings.quiet)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    queries, gallery = _eval_set(settings)
    shards = settings.dataset == "shards"
    if not settings.quiet:
        print(
            f"{settings.dataset} {settings.identities if shards else settings.split}: "
            f"{len(queries)} queries, {len(gallery)} gallery images",
            file=sys.stderr,
        )
    model = load_checkpoint_model(settings.checkpoint, settings.device, settings.model, settings.tokenizer)
    metrics = evaluate(
        model, queries, gallery, settings.batch_size, settings.device, settings.num_workers, progress=not settings.quiet
    )
    print(_report(metrics, settings.map))
    if settings.json:
        record = {
            "checkpoint": str(settings.checkpoint),
            "dataset": settings.dataset,
            "root": str(settings.root),
            "split": None if shards else settings.split,
            "identities": settings.identities,
            "map_variant": settings.map,
        }
        settings.json.write_text(
            json.dumps({"settings": record, "metrics": metrics}, indent=2) + "\n", encoding="utf-8"
        )
    return 0
