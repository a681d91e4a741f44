"""`spac caption image.jpg [...]`: predict a pedestrian's attributes and print SPAC's captions for it.

The caption key is the image's file name, so the same file gives the same captions wherever it lies.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from PIL import Image, UnidentifiedImageError

from spac.captioner import Captioner, check_style_names
from spac.cli.support import CliError, OneLineArgumentParser, device, unit_float


def _style_names(text: str) -> tuple[str, ...]:
    """--styles: comma-separated names of bundled style modules."""
    try:
        return check_style_names(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(
        prog="spac caption",
        description="Caption pedestrian images the SPAC way: predict the six attribute groups, then write two "
        "style captions and one template sentence per image. Without --predictor the bundled DEMO model is used: "
        "it was trained on the project's procedurally rendered people, not on photographs.",
    )
    parser.add_argument("images", nargs="+", type=Path, help="image files (JPEG, PNG, ...)")
    parser.add_argument("--predictor", default=None,
                        help="attribute predictor directory (config.json + model.safetensors); default: bundled demo model")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per image: attributes with confidences, captions with their style")
    parser.add_argument("--seed", type=int, default=0, help="caption seed: other seeds choose other styles and sentences")
    parser.add_argument("--styles", type=_style_names, default=None,
                        help="comma-separated style modules to choose from (default: all)")
    parser.add_argument("--min-confidence", type=unit_float, default=0.0,
                        help="report a group as unknown when the predictor's confidence is below this (0-1)")
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    return parser


def _load_image(path: Path) -> Image.Image:
    if not path.exists():
        raise CliError(f"{path}: no such file")
    if path.is_dir():
        raise CliError(f"{path}: is a directory, not an image")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CliError(f"{path}: not a readable image ({exc.__class__.__name__})") from None


def _report(path: Path, prediction, captions, as_json: bool) -> str:
    if as_json:
        record = {
            "image": str(path),
            "attributes": {g: {"value": v, "confidence": round(prediction.confidences[g], 4)}
                           for g, v in prediction.attributes.items()},
            "captions": [{"text": c.text, "style": c.style} for c in captions],
        }
        return json.dumps(record, ensure_ascii=False)
    return "\n".join(c.text for c in captions)


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Importing the predictor loads transformers (seconds): pay that only once the arguments are sane.
    from spac.predictor import load_predictor

    captioner = Captioner(styles=args.styles)
    try:
        predictor = load_predictor(args.predictor, device=args.device)
    except (ValueError, FileNotFoundError, OSError) as exc:
        raise CliError(f"cannot load predictor: {exc}") from None

    failures = 0
    loaded: list[tuple[Path, Image.Image]] = []
    for path in args.images:
        try:
            loaded.append((path, _load_image(path)))
        except CliError as exc:
            print(f"spac caption: error: {exc}", file=sys.stderr)
            failures += 1
    predictions = predictor.predict([image for _, image in loaded], min_confidence=args.min_confidence) if loaded else []
    many = len(args.images) > 1 and not args.json
    for (path, _), prediction in zip(loaded, predictions):
        captions = captioner(prediction.attributes, key=path.name, seed=args.seed)
        if many:
            print(f"== {path}")
        print(_report(path, prediction, captions, args.json))
    return 2 if failures else 0
