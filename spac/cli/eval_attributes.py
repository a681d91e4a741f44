"""`spac eval-attributes --predictor DIR --data KIND:WHERE`: score an attribute predictor on a labelled split.

For a dataset with binary attributes (PA-100K, PETA, RAP) the predictor's six-group outputs are mapped back to
the dataset's own attributes (templates/attribute_datasets/*.yaml; only the attributes the mapping expresses) and
scored as papers report them: label-based mA and instance-based accuracy, precision, recall and F1
(spac.predictor.metrics). For every source, per-group accuracy on the SPAC groups over the images whose label
says something of the group (a PA-100K "short sleeve" accepts any short-sleeved top of any colour).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from common.cli import OneLineArgumentParser, add_quiet_flag, device, non_negative_int, positive_int, silence_libraries
from spac.attributes import load_schema
from spac.predictor.data_sources import DataSpec, Source, add_data_flags, format_table, open_source, spread
from spac.predictor.datasets.dataset import LabelledSplit
from spac.predictor.metrics import attribute_report, group_accuracy
from spac.predictor.model import AttributePredictor, load_predictor
from spac.predictor.training import as_labels, predict_examples


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(
        prog="spac eval-attributes",
        description=(
            "Score an attribute predictor on a split of one or more labelled sources: per-group accuracy on the SPAC "
            "groups (labelled groups only) and, for PA-100K / PETA / RAP, label-based mA and instance-based accuracy, "
            "precision, recall and F1 on the dataset's own attributes mapped back from the predictor's outputs."
        ),
    )
    p.add_argument(
        "--predictor", help="predictor directory (config.json + model.safetensors; default: the bundled demo model)"
    )
    add_data_flags(p)
    p.add_argument(
        "--split",
        choices=("train", "val", "test"),
        default="test",
        help="which split to score; for "
        "rendered people test = the held-out evaluation identities, val = the validation ones "
        "(default: test)",
    )
    p.add_argument(
        "--limit",
        type=non_negative_int,
        default=0,
        help="score at most N images per source, spread over "
        "the split (rendered people: N identities unless rendered:N says, default 200); 0 = all "
        "(default: 0)",
    )
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass (default: 64)")
    p.add_argument(
        "--workers", type=non_negative_int, default=0, help="DataLoader processes reading images (default: 0)"
    )
    p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the full report as JSON (per-attribute numbers included) instead of tables",
    )
    add_quiet_flag(p)
    return p


def score_source(
    model: AttributePredictor,
    source: Source,
    split: str,
    limit: int,
    batch_size: int = 64,
    workers: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Per-group accuracy and, where the source has a mapping, the binary-attribute metrics of one split."""
    examples = spread(source.split(split), limit)
    predictions, truths = predict_examples(model, examples, batch_size, workers, progress)
    schema = model.schema
    report: dict[str, Any] = {
        "split": split,
        **group_accuracy(schema, [p.attributes for p in predictions], [as_labels(t, schema) for t in truths]),
    }
    mapping = source.mapping
    if mapping is not None and isinstance(examples, LabelledSplit) and examples.bits is not None and len(examples):
        columns = [mapping.column(a) for a in mapping.mapped]
        truth = examples.bits[:, columns]
        said = (truth >= 0).any(axis=0)  # an attribute the files never state (absent from them) is left out
        names = [a for a, keep in zip(mapping.mapped, said) if keep]
        predicted = np.stack([mapping.bits(p.attributes)[columns] for p in predictions])
        report["attributes"] = attribute_report(truth[:, said], predicted[:, said], names)
    return report


def format_attributes(report: dict[str, Any]) -> str:
    lines = [
        f"mA {report['mA']:.3f}   accuracy {report['accuracy']:.3f}   precision {report['precision']:.3f}   "
        f"recall {report['recall']:.3f}   F1 {report['f1']:.3f}   ({len(report['attributes'])} attributes)"
    ]
    lines.append(f"{'attribute':<26} {'mA':>6} {'pos.rec':>8} {'neg.rec':>8} {'positives':>10}")
    for name, r in report["attributes"].items():
        lines.append(
            f"{name:<26} {r['mA']:>6.3f} {r['positive_recall']:>8.3f} {r['negative_recall']:>8.3f} {r['positives']:>10}"
        )
    return "\n".join(lines)


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    silence_libraries(args.quiet)
    torch.set_num_threads(args.threads)
    schema = load_schema()
    model = load_predictor(args.predictor, device=args.device, schema=schema)
    reports = {}
    for spec in args.data or [DataSpec("rendered")]:
        # rendered:N scores N held-out identities (as does --limit N); 200 by default
        count = int(spec.location) if spec.kind == "rendered" and spec.location else args.limit or 200
        source = open_source(
            spec,
            schema,
            images=args.images,
            val_fraction=args.val_fraction,
            rap_partition=args.rap_partition,
            rendered_count=1,
            evaluation_count=count,
            validation_count=count,
        )
        reports[str(spec)] = {
            "source": source.name,
            **score_source(model, source, args.split, args.limit, args.batch_size, args.workers, not args.quiet),
        }
    if args.json:
        json.dump({"predictor": args.predictor or "bundled demo predictor", "sources": reports}, sys.stdout, indent=2)
        print()
        return 0
    for spec, report in reports.items():
        print(f"{report['source']} ({spec}), {report['split']} split, {report['examples']} images")
        print(format_table(report))
        if "attributes" in report:
            print(format_attributes(report["attributes"]))
    return 0
