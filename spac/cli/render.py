"""`spac render OUT_DIR`: write labelled demo pedestrians (spac.render) into a folder."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from common.cli import CliError, OneLineArgumentParser, add_quiet_flag, positive_int, unit_float
from spac.render import render_dataset


def _jpeg_quality(text: str) -> int:
    """--quality: 1..95 (Pillow's useful range; above 95 only grows the files)."""
    value = positive_int(text)
    if value > 95:
        raise argparse.ArgumentTypeError(f"must be between 1 and 95, got {value}")
    return value


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(
        prog="spac render",
        description="Render labelled demo pedestrians: OUT_DIR/<identity>/<n>.jpg plus OUT_DIR/labels.jsonl.",
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="folder to write into (created if missing)")
    parser.add_argument(
        "--identities", type=positive_int, required=True, metavar="N", help="number of people (identities) to draw"
    )
    parser.add_argument(
        "--images-per-identity",
        type=positive_int,
        required=True,
        metavar="K",
        help="images per person, each with another pose, view, background and camera",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="random seed; the same flags and seed give byte-identical files (default 0)",
    )
    parser.add_argument(
        "--hidden-fraction",
        type=unit_float,
        default=0.15,
        metavar="F",
        help="share of images cropped or blocked by a foreground object so that the shoes, and "
        "sometimes the lower garment and hand-held things, are out of view (default 0.15)",
    )
    parser.add_argument(
        "--quality",
        type=_jpeg_quality,
        default=90,
        metavar="Q",
        help="JPEG quality of the written files, 1-95 (default 90)",
    )
    add_quiet_flag(parser)
    return parser


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out: Path = args.out_dir
    if out.exists() and not out.is_dir():
        raise CliError(f"{out} exists and is not a folder")
    try:
        records = render_dataset(
            out,
            args.identities,
            args.images_per_identity,
            args.seed,
            args.hidden_fraction,
            quality=args.quality,
            progress=not args.quiet,
        )
    except OSError as exc:
        raise CliError(f"cannot write to {out}: {exc.strerror or exc}") from None
    if not args.quiet:
        print(f"wrote {len(records)} images of {args.identities} identities and {out / 'labels.jsonl'}")
    return 0
