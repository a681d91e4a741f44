"""`spac mine-labels FILE.json [...] --out labels.parquet`: attribute labels mined from human captions
(spac.mining.labels), one row per caption-file entry, as a parquet table; prints the coverage per group."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from common.cli import CliError, OneLineArgumentParser, add_quiet_flag
from spac.attributes import load_schema
from spac.mining.labels import coverage, mine_labels
from spac.sources.caption_files import FORMAT_NAMES, read_caption_file

LEAD_COLUMNS = ("file_path", "id", "split")


def build_parser() -> OneLineArgumentParser:
    formats = "; ".join(FORMAT_NAMES.values())
    p = OneLineArgumentParser(
        prog="spac mine-labels",
        description=(
            "Mine attribute labels from human captions, the PLIP paper's way (no human attribute labelling): each "
            "image's captions are read with the attribute schema's matchers and reconciled (agreement first, then "
            "the more specific phrase; see spac/mining/labels.py). Writes a parquet table with the columns file_path, "
            "id, split, then one per group (gender, hair, upper, lower, shoes, belongings: a schema phrase or "
            "'unknown'), then source (the caption file of the row), one row per entry, in input order. Reads the "
            f"JSON caption files of {formats}. Prints the share of images with a known value per group."
        ),
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE.json", help="caption files to mine")
    p.add_argument("--out", required=True, type=Path, help="parquet file to write (replaced if it exists)")
    p.add_argument(
        "--schema",
        type=Path,
        help="attribute schema YAML whose phrases to write (default: the bundled templates/attributes.yaml)",
    )
    add_quiet_flag(p)
    return p


def format_coverage(shares: dict[str, float], rows: int) -> str:
    lines = [f"{'group':<12} {'known':>8} {'coverage':>9}"]
    for group, share in shares.items():
        lines.append(f"{group:<12} {round(share * rows):>8} {100 * share:>8.1f}%")
    return "\n".join(lines)


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out.is_dir():
        raise CliError(f"--out {args.out} is a directory; give a .parquet file name")
    if not args.out.parent.is_dir():
        raise CliError(f"--out {args.out}: no such folder {args.out.parent}")
    schema = load_schema(args.schema)
    datasets = [read_caption_file(path) for path in args.files]  # every file checked before any mining
    columns: dict[str, list] = {name: [] for name in (*LEAD_COLUMNS, *schema.group_names, "source")}
    for data in datasets:
        records = data.records
        bar = tqdm(total=len(records), unit="image", desc=Path(data.source).name, disable=args.quiet, file=sys.stderr)
        for record, labels in zip(records, mine_labels((r.captions for r in records), schema)):
            columns["file_path"].append(record.file_path)
            columns["id"].append(record.id)
            columns["split"].append(record.split)
            for group in schema.group_names:
                columns[group].append(labels[group])
            columns["source"].append(data.source)
            bar.update()
        bar.close()
    table = pa.table(
        {name: pa.array(values, pa.int64() if name == "id" else pa.string()) for name, values in columns.items()}
    )
    partial = args.out.with_name(args.out.name + ".partial")
    pq.write_table(table, partial)
    os.replace(partial, args.out)
    rows = table.num_rows
    shares = coverage(({g: columns[g][i] for g in schema.group_names} for i in range(rows)), schema.group_names)
    print(format_coverage(shares, rows))  # the result: --quiet only silences the progress bars
    print(f"wrote {rows} images' labels to {args.out}")
    return 0
