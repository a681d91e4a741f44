"""`spac mine-schema CAPTIONS.json [...]`: the noun phrases of human captions by attribute group and
frequency, and how much of them the attribute schema covers (spac.mining.schema)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from common.cli import OneLineArgumentParser, add_quiet_flag, positive_int
from spac.attributes import load_schema
from spac.mining.schema import PhraseMiner, format_report
from spac.sources.caption_files import FORMAT_NAMES, read_caption_file

BATCH = 2048  # captions per spaCy batch


def build_parser() -> OneLineArgumentParser:
    formats = "; ".join(FORMAT_NAMES.values())
    p = OneLineArgumentParser(
        prog="spac mine-schema",
        description=(
            "Count the noun phrases of human pedestrian captions by attribute group (gender, hair, upper, lower, "
            "shoes, belongings, and 'other' for colour + noun phrases no schema item matches) and report which the "
            f"attribute schema covers, with the coverage per group. Reads the JSON caption files of {formats} "
            "(the layout of each file is detected). Prints a table, or JSON with --json."
        ),
    )
    p.add_argument("files", nargs="+", type=Path, metavar="CAPTIONS.json", help="caption files to read")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object instead of a table")
    p.add_argument(
        "--top", type=positive_int, help="phrases to list per group (default: 15 in the table, all with --json)"
    )
    p.add_argument(
        "--schema", type=Path, help="attribute schema YAML to measure (default: the bundled templates/attributes.yaml)"
    )
    add_quiet_flag(p)
    return p


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    miner = PhraseMiner(load_schema(args.schema))
    files = []
    for path in args.files:
        data = read_caption_file(path)
        files.append(
            {"path": str(path), "format": data.format, "entries": len(data.records), "captions": data.captions}
        )
        texts = [c for record in data.records for c in record.captions]
        with tqdm(total=len(texts), unit="caption", desc=path.name, disable=args.quiet, file=sys.stderr) as bar:
            for start in range(0, len(texts), BATCH):
                miner.add(texts[start : start + BATCH])
                bar.update(len(texts[start : start + BATCH]))
    if args.json:
        print(json.dumps({"files": files, **miner.report.to_json(args.top)}, indent=2))
    else:
        for f in files:
            print(f"{f['path']}: {f['format']}, {f['entries']} entries, {f['captions']} captions")
        print(format_report(miner.report, args.top or 15))
    return 0
