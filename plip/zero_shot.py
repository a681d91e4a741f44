"""`python -m plip.zero_shot`: zero-shot text-to-image person retrieval on CUHK-PEDES, ICFG-PEDES or held-out
identities of our shards. Prints Rank-1/5/10, mAP (standard; the released trapezoid variant on request) and
mINP in percent.

``evaluate(model, queries, gallery, batch_size, device)`` is the engine, reused by pre-training for its
periodic evaluation; it needs only ``encode_image`` / ``encode_text`` / ``tokenize`` (``RetrievalEncoder``).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Protocol, Sequence

import torch
from tqdm import tqdm

from plip.command import call_main
from plip.eval_data import (DATASET_JSON, Gallery, QuerySet, eval_set_from_shards, gallery_loader, load_eval_split,
                            parse_identities, text_batches)
from plip.metrics import retrieval_metrics
from spac.cli.support import CliError, OneLineArgumentParser, run_main

DATASETS = (*DATASET_JSON, "shards")
MAP_VARIANTS = ("standard", "released")
PROG = "python -m plip.zero_shot"


class RetrievalEncoder(Protocol):
    def encode_image(self, images: torch.Tensor) -> torch.Tensor: ...

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor: ...

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]: ...


def encode_gallery(model: RetrievalEncoder, gallery: Gallery, batch_size: int, device: str | torch.device,
                   num_workers: int = 0, progress: bool = False) -> torch.Tensor:
    """[len(gallery), D] image embeddings, in gallery order, kept on ``device``."""
    batches = gallery_loader(gallery, batch_size, num_workers)
    embeddings = [model.encode_image(images.to(device, non_blocking=True))
                  for images in tqdm(batches, desc="gallery", unit="batch", disable=not progress)]
    return torch.cat(embeddings)


def encode_queries(model: RetrievalEncoder, queries: QuerySet, batch_size: int, device: str | torch.device,
                   progress: bool = False) -> torch.Tensor:
    """[len(queries), D] caption embeddings, in query order, kept on ``device``."""
    embeddings = []
    total = -(-len(queries) // batch_size)
    for texts in tqdm(text_batches(queries, batch_size), total=total, desc="queries", unit="batch",
                      disable=not progress):
        tokens = model.tokenize(texts)
        embeddings.append(model.encode_text(tokens["input_ids"].to(device), tokens["attention_mask"].to(device)))
    return torch.cat(embeddings)


def evaluate(model: RetrievalEncoder, queries: QuerySet, gallery: Gallery, batch_size: int = 64,
             device: str | torch.device = "cpu", num_workers: int = 0, progress: bool = False) -> dict[str, Any]:
    """Text-to-image retrieval metrics of ``model`` (already on ``device``), as ``RetrievalMetrics.as_dict()``.

    Runs in eval mode under ``torch.inference_mode`` and puts an ``nn.Module`` back into training mode
    afterwards if it was training, so a training loop can call it between steps; every RNG (torch's CPU one
    and ``device``'s) is left as it was (a DataLoader draws its seed from it), so training after an
    evaluation, or resumed from a checkpoint written after one, sees the same random numbers.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    was_training = isinstance(model, torch.nn.Module) and model.training
    if isinstance(model, torch.nn.Module):
        model.eval()
    device = torch.device(device)
    cuda_devices = []
    if device.type == "cuda":
        cuda_devices = [torch.cuda.current_device() if device.index is None else device.index]
    try:
        with torch.random.fork_rng(devices=cuda_devices), torch.inference_mode():
            gallery_embeddings = encode_gallery(model, gallery, batch_size, device, num_workers, progress)
            query_embeddings = encode_queries(model, queries, batch_size, device, progress)
            result = retrieval_metrics(query_embeddings, queries.ids, gallery_embeddings, gallery.ids)
    finally:
        if was_training:
            model.train()
    return result.as_dict()


def load_checkpoint_model(path: Path, device: str, preset: str = "RN50", tokenizer: str | None = None) -> torch.nn.Module:
    """Our checkpoint directory (or its ``model.safetensors``) or a released-format torch file (``*.pth.tar``).

    A released file holds only encoder weights: the architecture comes from the preset ``preset`` (TIC / IAP
    heads left out), the text encoder is built empty when the preset describes it, and the tokenizer is
    ``tokenizer`` (default: the bundled MiniLM's, the bert-base-uncased WordPiece vocabulary).
    """
    from plip.checkpoint import load_model, load_released
    from plip.config import MINILM, create_model, get_config

    if not path.exists():
        raise CliError(f"checkpoint not found: {path}")
    if path.is_dir() or path.suffix == ".safetensors":
        return load_model(path if path.is_dir() else path.parent, device)
    text: dict[str, Any] = {"tokenizer": tokenizer or MINILM}
    if get_config(preset).text.bert:
        text["pretrained"] = False  # every text weight comes from the file
    model = create_model(preset, text=text, tic={"weight": 0}, iap={"weight": 0})
    load_released(model, path)
    return model.to(device).eval()


def resolve_device(name: str) -> str:
    """A --device value (cpu, cuda, cuda:N, auto) checked against this machine; CliError when unusable."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise CliError(f"--device must be cpu, cuda, cuda:N or auto, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CliError(f"--device {name}: no CUDA device is available here")
    return name


def _parser(prog: str) -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog=prog, description="Zero-shot text-to-image person retrieval: every test "
                                   "caption queries every test image; prints R@1/5/10, mAP and mINP in percent.")
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="our checkpoint directory (model.safetensors + config.json) or a released-format "
                             "file such as PLIP_MRN50.pth.tar")
    parser.add_argument("--dataset", required=True, choices=DATASETS,
                        help="CUHK-PEDES or ICFG-PEDES (JSON + imgs/ under --root), or shards (our corpus)")
    parser.add_argument("--root", required=True,
                        help="dataset folder (holding reid_raw.json or ICFG_PEDES.json, or the split files of "
                             "plip.dataset_split, and imgs/), or for shards a shard pattern / folder")
    parser.add_argument("--split", default="test", choices=("test", "valid", "val", "train"),
                        help="dataset split to evaluate (default test; not used with shards)")
    parser.add_argument("--identities", help="shards only: held-out identities, 'A-B' (inclusive) or 'A,B,C'")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, default=64, help="images / captions per forward pass (default 64)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers reading images (default 0)")
    parser.add_argument("--map", default="standard", choices=MAP_VARIANTS,
                        help="standard: mean precision at each hit; released: also print the reference code's "
                             "trapezoid-rule mAP, comparable with the paper (default standard)")
    parser.add_argument("--model", default="RN50",
                        help="released-format files only: the architecture preset in plip/configs (default RN50)")
    parser.add_argument("--tokenizer", help="released-format files only: local tokenizer folder (default: the "
                                            "bundled bert-base-uncased WordPiece vocabulary)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the metrics and settings to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or set sizes; metrics still printed")
    return parser


def _eval_set(args: Any) -> tuple[QuerySet, Gallery]:
    if args.dataset == "shards":
        if not args.identities:
            raise CliError("--dataset shards needs --identities (the held-out identities, e.g. 9000-9999)")
        return eval_set_from_shards(args.root, parse_identities(args.identities))
    if args.identities:
        raise CliError("--identities applies only to --dataset shards")
    if not Path(args.root).is_dir():
        raise CliError(f"--root {args.root}: not a folder")
    return load_eval_split(args.dataset, args.root, args.split)


def _report(metrics: dict[str, Any], map_variant: str) -> str:
    line = (f"R@1 {metrics['R@1']:.2f}  R@5 {metrics['R@5']:.2f}  R@10 {metrics['R@10']:.2f}  "
            f"mAP(standard) {metrics['mAP']:.2f}  mINP {metrics['mINP']:.2f}")
    if map_variant == "released":
        line += f"  mAP(released, trapezoid) {metrics['mAP_released']:.2f}"
    if metrics["queries_without_match"]:
        line += f"\n({metrics['queries_without_match']} queries without a gallery image of their identity left out)"
    return line


def main(args: Any) -> int:
    if args.batch_size < 1 or args.num_workers < 0 or (args.threads is not None and args.threads < 1):
        raise CliError("--batch-size and --threads must be positive, --num-workers >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    queries, gallery = _eval_set(args)
    if not args.quiet:
        print(f"{args.dataset} {args.split if args.dataset != 'shards' else args.identities}: "
              f"{len(queries)} queries, {len(gallery)} gallery images", file=sys.stderr)
    model = load_checkpoint_model(args.checkpoint, device, args.model, args.tokenizer)
    metrics = evaluate(model, queries, gallery, args.batch_size, device, args.num_workers, progress=not args.quiet)
    print(_report(metrics, args.map))
    if args.json:
        settings = {"checkpoint": str(args.checkpoint), "dataset": args.dataset, "root": str(args.root),
                    "split": None if args.dataset == "shards" else args.split, "identities": args.identities,
                    "map_variant": args.map}
        args.json.write_text(json.dumps({"settings": settings, "metrics": metrics}, indent=2) + "\n",
                             encoding="utf-8")
    return 0


def cli_main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """``main`` with one-line errors: dataset, checkpoint and metric errors all derive from ValueError."""
    return call_main(main, _parser(prog).parse_args(argv))


if __name__ == "__main__":
    sys.exit(run_main(PROG, cli_main))
