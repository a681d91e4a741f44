"""`python -m plip.linear_probe`: the linear-probe evaluation of a PLIP checkpoint on CUHK-PEDES, ICFG-PEDES or
RSTPReid. Both encoders stay frozen; one linear layer on the image embedding (:class:`plip.probe.LinearProbe`,
starting as the identity) is trained on the ``train`` split with the identity-level CMPM of pre-training and
fine-tuning (:func:`plip.losses.ivlc_loss`), in identity-aware batches (``--pairs-per-id`` pairs of each identity,
:func:`plip.programs.finetune_data.epoch_plan`), then text-to-image retrieval is evaluated on ``--eval-split``
with the zero-shot metrics (:func:`plip.metrics.retrieval_metrics`).

    python -m plip.linear_probe --checkpoint PLIP_MRN50.pth.tar --dataset CUHK-PEDES --root data/CUHK-PEDES \\
        --out runs/probe-cuhk

Protocol: the PLIP paper (Zuo et al., arXiv 2305.08386, Table 2) reports linear-probe R@1/5/10 on CUHK-PEDES and
ICFG-PEDES (63.63 / 82.85 / 89.36 and 58.51 / 77.83 / 84.24 for RN50) but the text available to us does not say
which layer is trained, with which loss or schedule. This program follows the reading of issue 13: a linear layer
on the image features, the identity-level CMPM objective of pre-training (IVLC), the fine-tuning baseline's
identity-aware batches; epochs, learning rate and batch size are flags (defaults 30, 1e-3, 64 / 4 per identity).

The frozen encoders see every training image and caption once (no flips: the features are computed once), so the
probe trains in seconds. Prints the zero-shot line (the probe at its identity start) and the probed line;
``--out DIR`` writes ``probe.safetensors``, ``metrics.json`` and ``model/``: the checkpoint with the probe folded
into the image encoder's last linear layer, which ``plip.zero_shot`` / ``plip.embed`` / ``plip.search`` read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import torch.nn.functional as F
from tqdm import tqdm

from common.cli import (
    CliError,
    OneLineArgumentParser,
    add_quiet_flag,
    device,
    non_negative_float,
    positive_float,
    positive_int,
    run_main,
    silence_libraries,
)
from plip.checkpoint import save_checkpoint
from plip.embedding import Embedder, load_embedder
from plip.metrics import retrieval_metrics
from plip.probe import LinearProbe, best_start_scale, fold_probe, probe_loss
from plip.programs.checkpoint_flags import add_released_format_flags
from plip.programs.eval_data import DATASET_JSON, DATASET_NAMES, load_eval_split
from plip.programs.finetune_data import epoch_plan, load_train_entries, train_pairs
from plip.programs.settings import flag_record, from_flags
from plip.retrieval import Gallery, QuerySet

PROG = "python -m plip.linear_probe"
PROBE_FILE, METRICS_FILE, MODEL_DIR = "probe.safetensors", "metrics.json", "model"


def _parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(
        prog=PROG,
        description=f"Linear probe on {DATASET_NAMES}: frozen encoders, a linear "
        "layer on the image features trained with identity-level CMPM, text-to-image "
        "retrieval metrics before and after.",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="our checkpoint directory (model.safetensors + "
        "config.json) or a released-format file such as PLIP_MRN50.pth.tar",
    )
    add_released_format_flags(p)
    p.add_argument("--dataset", required=True, choices=tuple(DATASET_JSON), help=f"{DATASET_NAMES}")
    p.add_argument(
        "--root",
        required=True,
        type=Path,
        help=f"dataset folder holding "
        f"{' / '.join(DATASET_JSON.values())} (or the split files of plip.dataset_split) and imgs/",
    )
    p.add_argument("--eval-split", default="test", choices=("test", "valid"), help="split evaluated (default test)")
    p.add_argument("--epochs", type=positive_int, default=30, help="passes over the training pairs (default 30)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="pairs per step (default 64)")
    p.add_argument(
        "--pairs-per-id",
        type=positive_int,
        default=4,
        help="pairs of one identity in a batch; --batch-size must be a multiple (default 4)",
    )
    p.add_argument("--lr", type=positive_float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    p.add_argument("--weight-decay", type=non_negative_float, default=0.0, help="AdamW weight decay (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the batch order (default 0)")
    p.add_argument(
        "--feature-batch-size",
        type=positive_int,
        default=64,
        help="images / captions per forward pass when computing the frozen features (default 64)",
    )
    p.add_argument("--device", type=device, default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument(
        "--out",
        type=Path,
        help="write probe.safetensors, metrics.json and model/ (the probed checkpoint) into this folder",
    )
    p.add_argument("--json", type=Path, help="also write the metrics and settings to this JSON file")
    add_quiet_flag(p)
    return p


@dataclass(frozen=True)
class ProbeSettings:
    """The program's flags, checked: what the run reads instead of the parsed Namespace."""

    checkpoint: Path
    model: str
    tokenizer: str | None
    dataset: str
    root: Path
    eval_split: str
    epochs: int
    batch_size: int
    pairs_per_id: int
    lr: float
    weight_decay: float
    seed: int
    feature_batch_size: int
    device: torch.device
    threads: int | None
    out: Path | None
    json: Path | None
    quiet: bool
    flags: dict[str, Any]  # as given, for metrics.json

    @classmethod
    def from_flags(cls, args: argparse.Namespace) -> ProbeSettings:
        """The settings of parsed flags; what argparse cannot check flag by flag is a CliError."""
        if args.batch_size % args.pairs_per_id:
            raise CliError(f"--batch-size {args.batch_size} must be a multiple of --pairs-per-id {args.pairs_per_id}")
        if not args.root.is_dir():
            raise CliError(f"--root {args.root}: not a folder")
        return from_flags(cls, args, flags=flag_record(args))


def _features(
    embedder: Embedder, queries: QuerySet, gallery: Gallery, settings: ProbeSettings
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen encoders' raw features (not normalised: CMPM scores raw image features) of ``gallery`` and
    ``queries``, on the device, through the embedding API (the released evaluation transform)."""
    size, progress = settings.feature_batch_size, not settings.quiet
    images = embedder.embed_images(gallery.images, size, progress, normalize=False)
    texts = embedder.embed_texts(list(queries.texts), size, progress, normalize=False)
    return images.clone().to(embedder.device), texts.clone().to(embedder.device)


def train_probe(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    labels: Sequence[int],
    settings: ProbeSettings,
    target_norm: str,
) -> tuple[LinearProbe, list[float], float]:
    """The probe trained for ``settings.epochs`` on the pairs' features, starting at the scale where CMPM is
    lowest on the first epoch's batches (:func:`plip.probe.best_start_scale`); returns it, the mean loss of each
    epoch and the starting scale."""
    seed, batch_size, pairs_per_id = settings.seed, settings.batch_size, settings.pairs_per_id
    torch.manual_seed(seed)
    label_tensor = torch.as_tensor(labels, device=image_features.device)
    first = [i for batch in epoch_plan(labels, batch_size, pairs_per_id, seed, 0) for i in batch]
    first = torch.as_tensor(first, dtype=torch.long, device=image_features.device)
    scale = best_start_scale(
        image_features[first], text_features[first], label_tensor[first], target_norm, batch_size=batch_size
    )
    probe = LinearProbe(image_features.shape[1], scale).to(image_features.device)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    losses = []
    for epoch in tqdm(range(settings.epochs), desc="probe", unit="epoch", disable=settings.quiet):
        total, steps = 0.0, 0
        for batch in epoch_plan(labels, batch_size, pairs_per_id, seed, epoch):
            index = torch.as_tensor(batch, device=image_features.device)
            loss = probe_loss(probe, image_features[index], text_features[index], label_tensor[index], target_norm)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, steps = total + float(loss.detach()), steps + 1
        if steps == 0:
            raise CliError(
                f"no training batch: fewer than {batch_size // pairs_per_id} identities "
                "in the train split for one batch"
            )
        losses.append(total / steps)
    return probe.eval(), losses, scale


def _line(name: str, metrics: dict[str, Any]) -> str:
    return (
        f"{name}: R@1 {metrics['R@1']:.2f}  R@5 {metrics['R@5']:.2f}  R@10 {metrics['R@10']:.2f}  "
        f"mAP(standard) {metrics['mAP']:.2f}  mINP {metrics['mINP']:.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m plip.linear_probe``: bad input is one line on stderr and exit 2."""
    return run_main(PROG, _main, argv)


def _main(argv: Sequence[str] | None) -> int:
    settings = ProbeSettings.from_flags(_parser().parse_args(argv))
    silence_libraries(settings.quiet)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    entries, source = load_train_entries(settings.dataset, settings.root)
    pairs = train_pairs(entries, settings.root / "imgs", source)
    queries, gallery = load_eval_split(settings.dataset, settings.root, settings.eval_split)
    embedder = load_embedder(settings.checkpoint, settings.device, settings.model, settings.tokenizer)
    model = embedder.model
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if not settings.quiet:
        print(
            f"{settings.dataset}: {len(pairs)} training pairs of {len(pairs.identities)} identities; "
            f"{settings.eval_split}: {len(queries)} queries, {len(gallery)} gallery images",
            file=sys.stderr,
        )
    started = time.perf_counter()
    unique = tuple(dict.fromkeys(pairs.images))
    position = {path: i for i, path in enumerate(unique)}
    train_gallery = Gallery(unique, tuple(0 for _ in unique), tuple(str(p) for p in unique))
    train_images, train_texts = _features(embedder, QuerySet(pairs.captions, pairs.labels), train_gallery, settings)
    train_images = train_images[torch.as_tensor([position[p] for p in pairs.images], device=train_images.device)]
    eval_images, eval_texts = _features(embedder, queries, gallery, settings)
    probe, losses, start_scale = train_probe(
        train_images, train_texts, pairs.labels, settings, model.config.ivlc_target_norm
    )
    with torch.no_grad():
        probed = F.normalize(probe(eval_images), dim=1)
    before = retrieval_metrics(eval_texts, queries.ids, eval_images, gallery.ids).as_dict()
    after = retrieval_metrics(eval_texts, queries.ids, probed, gallery.ids).as_dict()
    print(_line("zero-shot", before))
    print(_line("linear probe", after))
    record = {
        "settings": settings.flags,
        "zero_shot": before,
        "linear_probe": after,
        "epoch_losses": losses,
        "start_scale": start_scale,
        "final_scale": float(probe.log_scale.detach().exp()),
        "train_pairs": len(pairs),
        "train_identities": len(pairs.identities),
        "seconds": time.perf_counter() - started,
    }
    if settings.out:
        settings.out.mkdir(parents=True, exist_ok=True)
        safetensors.torch.save_model(probe, str(settings.out / PROBE_FILE))
        save_checkpoint(settings.out / MODEL_DIR, fold_probe(model, probe))
        (settings.out / METRICS_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if settings.json:
        settings.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0
