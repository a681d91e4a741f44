"""`spac mine-templates FILE.json [...] --out sentences.yaml`: a masked sentence library mined from human
captions (spac.mining.templates), written in templates/sentences.yaml's layout; prints what became of the
captions (read, masked, kept, dropped by reason)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from common.cli import CliError, OneLineArgumentParser, add_quiet_flag, positive_int, unit_float
from spac.attributes import load_schema
from spac.captioning.library import load_library
from spac.mining.templates import (
    CHECK_REASONS,
    DEFAULT_JACCARD,
    DEFAULT_REFILLS,
    MASKING_REASONS,
    MiningReport,
    TemplateMiner,
    library_yaml,
)
from spac.sources.caption_files import FORMAT_NAMES, read_caption_file


def build_parser() -> OneLineArgumentParser:
    formats = "; ".join(FORMAT_NAMES.values())
    p = OneLineArgumentParser(
        prog="spac mine-templates",
        description=(
            "Mine a masked sentence library from human captions, as the PLIP paper made its 1,664 sentences: "
            "attribute phrases, person nouns and pronouns of each caption become slots ({a upper}, {gender}, "
            "{they}, {v:wear}, ...); a sentence is kept only when it names no attribute outside its slots or the "
            "schema, refills grammatically with random attributes, and gives every value back to spac.language "
            "with no stray mention; duplicates and near-duplicates are dropped (see spac/mining/templates.py). "
            f"Reads the JSON caption files of {formats}. Writes a library that `spac caption --sentences PATH` "
            "and the synthesis job's --sentences use in place of templates/sentences.yaml (+PATH: beside it)."
        ),
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE.json", help="caption files to mine")
    p.add_argument("--out", required=True, type=Path, help="library YAML file to write (replaced if it exists)")
    p.add_argument(
        "--jaccard",
        type=unit_float,
        default=DEFAULT_JACCARD,
        help="drop a sentence whose word-and-slot set is at least this similar (Jaccard) to a kept "
        "sentence of the same groups (default: %(default)s; 1 drops exact duplicates only)",
    )
    p.add_argument(
        "--refills",
        type=positive_int,
        default=DEFAULT_REFILLS,
        help="random attribute sets each sentence is refilled with and checked on, the genders in "
        "turn (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the refill attribute sets (default: %(default)s)")
    p.add_argument("--schema", type=Path, help="attribute schema YAML (default: the bundled templates/attributes.yaml)")
    add_quiet_flag(p)
    return p


def format_report(report: MiningReport) -> str:
    width = max(len(r) for r in (*MASKING_REASONS, *CHECK_REASONS)) + 4
    lines = [
        f"{'captions read':<{width}} {report.read:>7}",
        f"{'masked':<{width}} {report.masked:>7}",
        f"{'kept':<{width}} {report.kept:>7}",
        f"{'dropped':<{width}} {sum(report.dropped.values()):>7}",
    ]
    for reason in (*MASKING_REASONS, *CHECK_REASONS):
        if report.dropped[reason]:
            lines.append(f"  {reason:<{width - 2}} {report.dropped[reason]:>7}")
    mined = ", ".join(f"{g} {n}" for g, n in report.addenda_mined.items()) or "none"
    lines.append(f"addenda mined: {mined}; nothing sentences mined: {report.nothing_mined}")
    if report.from_bundled:
        lines.append(f"from the bundled library (the captions gave none): {', '.join(report.from_bundled)}")
    return "\n".join(lines)


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out.is_dir():
        raise CliError(f"--out {args.out} is a directory; give a .yaml file name")
    if not args.out.parent.is_dir():
        raise CliError(f"--out {args.out}: no such folder {args.out.parent}")
    schema = load_schema(args.schema)
    miner = TemplateMiner(schema, args.jaccard, args.refills, args.seed)
    datasets = [read_caption_file(path) for path in args.files]  # every file checked before any mining
    total = sum(d.captions for d in datasets)
    captions = (c for d in datasets for r in d.records for c in r.captions)
    with tqdm(total=total, unit="caption", disable=args.quiet, file=sys.stderr) as bar:
        mined = miner.mine(captions, progress=bar.update)
    report = mined.report
    header = [
        "Sentence library mined from human captions by `spac mine-templates` (spac/mining/templates.py).",
        "Sources: " + ", ".join(f"{Path(d.source).name} ({d.captions} captions)" for d in datasets) + ".",
        f"{report.read} captions read, {report.masked} masked, {report.kept} kept; near-duplicate Jaccard "
        f"{args.jaccard}, {args.refills} refills per sentence, seed {args.seed}.",
        *(
            ["From the bundled library (the captions gave none): " + ", ".join(report.from_bundled) + "."]
            if report.from_bundled
            else []
        ),
        "Slots as in templates/sentences.yaml. Use: spac caption --sentences PATH (in place of the bundled",
        "library) or --sentences +PATH (beside it); the synthesis job takes the same --sentences.",
    ]
    partial = args.out.with_name(args.out.name + ".partial")
    partial.write_text(library_yaml(mined, header), encoding="utf-8")
    try:
        library = load_library(partial, schema)  # what we wrote loads as any library does
    except ValueError:
        partial.unlink()
        raise
    os.replace(partial, args.out)
    print(format_report(report))  # the result: --quiet only silences the progress bar
    print(f"wrote {report.kept} mined sentences ({len(library.sentences)} in all) to {args.out}")
    return 0
