"""`spac migrate-predictor OLD NEW`: carry a predictor trained on an older attribute schema over to the
bundled one without retraining (spac.predictor.migration): every old label keeps its logit, every label
new to the schema gets a bias so low that it is never predicted."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from common.cli import CliError, OneLineArgumentParser, add_quiet_flag
from spac.attributes import load_schema
from spac.predictor.migration import NEW_LABEL_BIAS, migrate_predictor
from spac.predictor.model import CONFIG_FILE


def _negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not -1e30 < value < 0:
        raise argparse.ArgumentTypeError(f"must be a negative number, got {text}")
    return value


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(
        prog="spac migrate-predictor",
        description=(
            "Migrate a predictor directory (config.json + model.safetensors) trained on an older attribute schema "
            "to the bundled schema (templates/attributes.yaml), without retraining: the backbone, the item and colour "
            "rows of the heads and every old label's bias are copied; each label new to the schema gets a very low "
            "bias, so the migrated model predicts exactly what the old one did. config.json records "
            "training.migrated_from_schema."
        ),
    )
    p.add_argument("old", type=Path, help="the predictor directory to migrate (left unchanged)")
    p.add_argument(
        "new",
        type=Path,
        help="the directory to write the migrated predictor to (created; may be OLD itself to migrate in place)",
    )
    p.add_argument(
        "--schema",
        type=Path,
        help="attribute schema YAML to migrate to (default: the bundled templates/attributes.yaml)",
    )
    p.add_argument(
        "--new-label-bias",
        type=_negative_float,
        default=NEW_LABEL_BIAS,
        help=f"bias given to each new label, a negative number (default: {NEW_LABEL_BIAS:g}, i.e. probability 0)",
    )
    add_quiet_flag(p)
    return p


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.new.exists() and not args.new.is_dir():
        raise CliError(f"{args.new} exists and is not a directory")
    schema = load_schema(args.schema)
    config_file = args.old / CONFIG_FILE
    old_text = config_file.read_bytes() if config_file.is_file() else b"{}"  # read before an in-place migration
    migrate_predictor(args.old, args.new, schema, args.new_label_bias)
    if not args.quiet:
        old_config = json.loads(old_text)  # migrate_predictor has checked it
        old_labels = sum(len(v) for v in old_config.get("labels", {}).values())
        new_labels = sum(len(g.labels) for g in schema.groups)
        print(
            f"migrated {args.old} (schema version {old_config.get('schema_version')}, {old_labels} labels) to "
            f"{args.new} (schema version {schema.version}, {new_labels} labels; the {new_labels - old_labels} new "
            f"ones at bias {args.new_label_bias:g}, never predicted)"
        )
    return 0
