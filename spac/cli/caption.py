"""`spac caption image.jpg [...]`: predict a pedestrian's attributes and print SPAC's captions for it.

The caption key is the image's file name, so the same file gives the same captions wherever it lies.
Each file is decoded under the project's image policy (:mod:`shards.images`: EXIF orientation, pixel and
byte budgets) and re-encoded as the corpus JPEG before prediction, exactly as the synthesis job does, so
a file gets the same attributes here as in the corpus. A file that cannot be captioned is one line on
stderr; the others are still captioned, and the exit code is 2. File names are printed escaped
(:func:`common.paths.printable_path`): a name holding a newline cannot forge an ``== name`` header or a
second error line.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from PIL import Image

from common.errors import InputError, error_line
from shards.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageRejected, open_image_file
from shards.sample import IMAGE_SIZE, encode_image
from spac.attributes import load_schema
from spac.captioning.library import SentencesOption, library_for, parse_sentences_option
from spac.captioning.captioner import Captioner, check_style_names
from common.cli import CliError, OneLineArgumentParser, device, positive_int, unit_float
from common.paths import printable_path

if TYPE_CHECKING:
    from spac.predictor.model import AttributePredictor

BATCH_SIZE = 32  # files decoded and predicted at a time: memory stays flat however many are given


def _style_names(text: str) -> tuple[str, ...]:
    """--styles: comma-separated names of bundled style modules."""
    try:
        return check_style_names(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _sentences(text: str) -> SentencesOption:
    """--sentences: PATH (in place of the bundled library) or +PATH (beside it)."""
    try:
        return parse_sentences_option(text)
    except InputError as exc:
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
    parser.add_argument("--sentences", type=_sentences, default=None, metavar="[+]PATH",
                        help="sentence library for the third text, e.g. one mined by `spac mine-templates`: PATH "
                             "is used in place of the bundled templates/sentences.yaml, +PATH beside it (a file "
                             "whose name starts with '+' is ./+name); default: the bundled library")
    parser.add_argument("--min-confidence", type=unit_float, default=0.0,
                        help="report a group as unknown when the predictor's confidence is below this (0-1)")
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    parser.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                        help="refuse an image that would decode to more pixels than this; a large JPEG is first "
                             "decoded at a reduced scale, so only its reduced size counts (default: %(default)s)")
    parser.add_argument("--max-file-bytes", type=positive_int, default=DEFAULT_MAX_BYTES,
                        help="refuse a file larger than this many bytes, without reading it whole "
                             "(default: %(default)s)")
    return parser


def _corpus_image(path: Path, max_pixels: int, max_bytes: int) -> Image.Image:
    """The image the synthesis job's predictor sees for this file: decoded under the shared policy, then
    re-encoded as the corpus JPEG (256x128, quality 90) and decoded again. CliError names the file (a
    FIFO or a device is refused by the policy before it is opened)."""
    shown = printable_path(path)
    try:
        decoded = open_image_file(str(path), min_size=IMAGE_SIZE, max_pixels=max_pixels, max_bytes=max_bytes)
    except ImageRejected as exc:
        raise CliError(f"{shown}: {exc}") from None
    except FileNotFoundError:
        raise CliError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{shown}: is a directory, not an image") from None
    except OSError as exc:
        raise CliError(f"{shown}: unreadable file ({exc.strerror or exc})") from None
    with Image.open(io.BytesIO(encode_image(decoded))) as corpus:
        return corpus.convert("RGB")


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


def _caption_batch(paths: Sequence[Path], predictor: AttributePredictor, captioner: Captioner, args: argparse.Namespace,
                   many: bool) -> int:
    """Print the captions of each readable file, one line on stderr for each other; returns how many failed."""
    loaded: list[tuple[Path, Image.Image]] = []
    for path in paths:
        try:
            loaded.append((path, _corpus_image(path, args.max_pixels, args.max_file_bytes)))
        except CliError as exc:
            print(f"spac caption: error: {exc}", file=sys.stderr)
    predictions = predictor.predict([image for _, image in loaded], min_confidence=args.min_confidence)
    for (path, _), prediction in zip(loaded, predictions):
        captions = captioner(prediction.attributes, key=path.name, seed=args.seed)
        if many:
            print(f"== {printable_path(path)}")
        print(_report(path, prediction, captions, args.json))
    return len(paths) - len(loaded)


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Importing the predictor loads transformers (seconds): pay that only once the arguments are sane.
    from spac.predictor.model import load_predictor

    schema = load_schema()
    captioner = Captioner(schema, styles=args.styles, library=library_for(args.sentences, schema))
    try:
        predictor = load_predictor(args.predictor, device=args.device)
    except (InputError, OSError) as exc:
        raise CliError(f"cannot load predictor: {error_line(exc)}") from None

    many = len(args.images) > 1 and not args.json
    failures = sum(_caption_batch(args.images[start:start + BATCH_SIZE], predictor, captioner, args, many)
                   for start in range(0, len(args.images), BATCH_SIZE))
    return 2 if failures else 0
