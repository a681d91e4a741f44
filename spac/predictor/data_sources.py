"""The ``--data`` sources of `spac train-attributes` and `spac eval-attributes`: rendered people or a dataset reader.

``--data`` takes ``rendered`` or ``rendered:N`` (N people), ``pa100k:DIR``, ``peta:DIR``, ``rap:DIR`` (v1 or v2,
found from the file) or ``mined:TABLE.parquet`` (labels of `spac mine-labels`; the images under ``--images``).
Each becomes a :class:`Source` with train / val / test example sequences. Rendered people: training identities
of ``--seed``; validation identities (for early stopping) and evaluation identities (the final report), both
held out from every training seed and from each other.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.cli import CliError, positive_int, unit_float
from spac.attributes import Schema
from spac.predictor.datasets.dataset import AttributeDataset, LabelledSplit
from spac.predictor.datasets.mapping import DatasetMapping
from spac.predictor.datasets.mined import read_mined
from spac.predictor.datasets.pa100k import read_pa100k
from spac.predictor.datasets.peta import read_peta
from spac.predictor.datasets.rap import read_rap
from spac.render.training_source import EVAL_SEED_BASE, RenderedPeople, evaluation_people, training_people

KINDS = ("rendered", "pa100k", "peta", "rap", "mined")
# Validation identities start this far above the evaluation ones: no evaluation run reaches them.
VALIDATION_SEED_BASE = EVAL_SEED_BASE + 2**40


@dataclass(frozen=True)
class DataSpec:
    kind: str
    location: str | None = None  # a path, or for rendered a count

    def __str__(self) -> str:
        return self.kind if self.location is None else f"{self.kind}:{self.location}"


def data_spec(text: str) -> DataSpec:
    """argparse type of ``--data``: KIND or KIND:LOCATION."""
    kind, _, location = text.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise argparse.ArgumentTypeError(f"unknown data kind {kind!r} in {text!r} (choose from {', '.join(KINDS)})")
    if kind == "rendered":
        if location and not (location.isdigit() and int(location) > 0):
            raise argparse.ArgumentTypeError(f"rendered:N needs a positive count, got {text!r}")
        return DataSpec(kind, location or None)
    if not location:
        raise argparse.ArgumentTypeError(f"{kind} needs a location: {kind}:PATH")
    return DataSpec(kind, location)


@dataclass
class Source:
    """One ``--data`` source: its example sequences, and for a dataset its mapping and labelled splits."""

    name: str
    train: Sequence
    val: Sequence
    test: Sequence
    dataset: AttributeDataset | None = None
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def mapping(self) -> DatasetMapping | None:
        return self.dataset.mapping if self.dataset is not None else None

    @property
    def rendered(self) -> bool:
        return self.dataset is None

    def split(self, name: str) -> Sequence:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def spread(split: Sequence, limit: int) -> Sequence:
    """At most ``limit`` examples, evenly spaced over the split (all of them for ``limit`` 0)."""
    if not limit or len(split) <= limit:
        return split
    chosen = np.unique(np.linspace(0, len(split) - 1, limit).round().astype(int)).tolist()
    if isinstance(split, LabelledSplit):
        return split.subset(chosen)
    return [split[i] for i in chosen]


def open_source(
    spec: DataSpec,
    schema: Schema,
    *,
    images: Path | None = None,
    seed: int = 0,
    rendered_count: int = 0,
    evaluation_count: int = 200,
    validation_count: int = 1000,
    val_fraction: float = 0.1,
    rap_partition: int = 1,
    check_images: bool = True,
) -> Source:
    """The source ``spec`` names (readers raise one-line InputErrors for a bad folder or file)."""
    if spec.kind == "rendered":
        count = int(spec.location) if spec.location else rendered_count
        return Source(
            "rendered",
            training_people(seed, count, schema),
            RenderedPeople(VALIDATION_SEED_BASE, validation_count, schema),
            evaluation_people(evaluation_count, schema),
            report={
                "train_identity_seed": seed,
                "first_evaluation_seed": EVAL_SEED_BASE,
                "first_validation_seed": VALIDATION_SEED_BASE,
            },
        )
    path = Path(spec.location or "")
    if spec.kind == "pa100k":
        dataset = read_pa100k(path, schema, check_images=check_images)
    elif spec.kind == "peta":
        dataset = read_peta(path, schema)
    elif spec.kind == "rap":
        dataset = read_rap(path, schema, partition=rap_partition, val_fraction=val_fraction, check_images=check_images)
    else:
        if images is None:
            raise CliError(f"--data {spec} needs --images ROOT (the folder the table's file_path values are under)")
        dataset = read_mined(path, images, schema, val_fraction=val_fraction, check_images=check_images)
    return Source(
        dataset.name,
        dataset.split("train"),
        dataset.split("val"),
        dataset.split("test"),
        dataset,
        {**dataset.report, "sizes": {k: len(v) for k, v in dataset.splits.items()}},
    )


def add_data_flags(p: argparse.ArgumentParser) -> None:
    """The data-source flags `spac train-attributes` and `spac eval-attributes` share."""
    p.add_argument(
        "--data",
        type=data_spec,
        action="append",
        metavar="KIND[:WHERE]",
        help=(
            "a source of labelled images, repeatable to mix them: rendered (people drawn on the fly; rendered:N for N "
            "of them), pa100k:DIR (annotation.mat + images), peta:DIR (PETA dataset/<subset>/archive/Label.txt), "
            "rap:DIR (RAP v1 or v2 RAP_annotation.mat + RAP_dataset/), mined:TABLE.parquet (labels of `spac "
            "mine-labels`, images under --images). What a source cannot say (PA-100K: colours, hair) is masked, not "
            "taught as unknown (default: rendered)"
        ),
    )
    p.add_argument("--images", type=Path, help="folder the file_path values of a mined:TABLE are relative to")
    p.add_argument(
        "--val-fraction",
        type=unit_float,
        default=0.1,
        help="share of the training people made the "
        "validation split where a source has none (RAP v1, mined labels without val rows) (default: 0.1)",
    )
    p.add_argument(
        "--rap-partition",
        type=positive_int,
        default=1,
        choices=range(1, 6),
        metavar="1-5",
        help="which of RAP's five random partitions to use (default: 1)",
    )


def format_table(report: dict[str, Any]) -> str:
    lines = [f"{'group':<12} {'accuracy':>9} {'majority':>9}"]
    for g, r in report["groups"].items():
        if r["accuracy"] is None:
            lines.append(f"{g:<12} {'-':>9} {'-':>9}")
        else:
            lines.append(f"{g:<12} {r['accuracy']:>9.3f} {r['majority_baseline']:>9.3f}")
    mean = report["mean_accuracy"]
    lines.append(f"{'mean':<12} {mean:>9.3f}" if mean is not None else f"{'mean':<12} {'-':>9}")
    return "\n".join(lines)
