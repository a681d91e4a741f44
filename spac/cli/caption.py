"""`spac caption image.jpg [...]`: predict a pedestrian's attributes and print SPAC's captions for it.

The caption key is the image's file name, so the same file gives the same captions wherever it lies.
Each file is decoded under the project's image policy (:mod:`shards.images`: EXIF orientation, pixel and
byte budgets) and re-encoded as the corpus JPEG before prediction, exactly as the synthesis job does, so
a file gets the same attributes here as in the corpus. A file that cannot be captioned is one line on
stderr; the others are still captioned, and the exit code is 2. File names are printed escaped
(:func:`common.paths.printable_path`): a name holding a newline cannot forge an ``== name`` header or a
second error line.

With ``--mllm-model`` the captions are written by a vision-language model instead (the synthesis job's
``--captioner mllm`` stage, :func:`spac.generation.stage.generate_checked`): grounded in the predicted
attributes, each text checked, asked again once, else replaced by the template caption; the library sentence
stays the last text. The model answers through ``--mllm-server`` (an OpenAI-compatible server), or runs in
this process. With ``--predictor mllm`` the same model gives the attributes too (:mod:`spac.generation.attributes`:
JSON constrained to the schema through the server, else each value's likelihood in process), for photographs no
trained predictor was made for; ``--min-confidence`` then applies to the in-process likelihoods.

With ``--captioner spac --captioner-model DIR`` SPAC's neural captioner (`spac train-captioner`) writes one text
in each of its two styles (the synthesis job's ``--captioner spac`` stage,
:func:`spac.generation.styled.caption_styled`): each checked as the caption model's are, else replaced by the
template caption of its slot.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from common.cli import (
    CliError,
    OneLineArgumentParser,
    device,
    non_negative_float,
    positive_float,
    positive_int,
    unit_float,
)
from common.errors import InputError, error_line
from common.paths import printable_path
from shards.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageRejected, open_image_file
from shards.sample import IMAGE_SIZE, encode_image
from spac.attributes import load_schema
from spac.captioning.captioner import Captioner, check_style_names
from spac.captioning.library import SentencesOption, library_for, parse_sentences_option
from spac.generation.attributes import PREDICTOR_NAME, open_asker
from spac.generation.backends import DEFAULT_TIMEOUT_S, Backend
from spac.generation.server import DEFAULT_API_KEY_ENV

if TYPE_CHECKING:
    from spac.generation.requests import TextGenerator
    from spac.generation.stage import GenerationSettings
    from spac.generation.styled import StyledWriter
    from spac.predictor.model import Prediction

BATCH_SIZE = 32  # files decoded and predicted at a time: memory stays flat however many are given
CAPTIONERS = ("template", "mllm", "spac")


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
    parser.add_argument(
        "--predictor",
        default=None,
        help="attribute predictor directory (config.json + model.safetensors), or mllm: ask the --mllm-model "
        "for the attributes too; default: bundled demo model",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per image: attributes with confidences, captions with their "
        "style; with --mllm-model or --captioner spac the record's texts (captions, styles, prompt_caption, "
        "attribute_spans), the stage's counters and each rejected or failed text with its "
        "reason",
    )
    parser.add_argument(
        "--captioner",
        choices=CAPTIONERS,
        default=None,
        help="who writes the captions: template (SPAC's style modules), mllm (the --mllm-model) or spac (SPAC's "
        "neural captioner, --captioner-model); default: mllm with --mllm-model, else template",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="caption seed: other seeds choose other styles and sentences"
    )
    parser.add_argument(
        "--styles", type=_style_names, default=None, help="comma-separated style modules to choose from (default: all)"
    )
    parser.add_argument(
        "--sentences",
        type=_sentences,
        default=None,
        metavar="[+]PATH",
        help="sentence library for the third text, e.g. one mined by `spac mine-templates`: PATH "
        "is used in place of the bundled templates/sentences.yaml, +PATH beside it (a file "
        "whose name starts with '+' is ./+name); default: the bundled library",
    )
    parser.add_argument(
        "--min-confidence",
        type=unit_float,
        default=0.0,
        help="report a group as unknown when the predictor's confidence is below this (0-1)",
    )
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    model = parser.add_argument_group("captions written by a vision-language model")
    model.add_argument(
        "--mllm-model",
        default=None,
        metavar="NAME_OR_PATH",
        help="write the captions with this model: the name a --mllm-server serves, else a hub name "
        "or local folder loaded here (transformers' AutoModelForImageTextToText, on --device)",
    )
    model.add_argument(
        "--mllm-server",
        default=None,
        metavar="URL",
        help="base URL of an OpenAI-compatible chat-completions server (vLLM, SGLang, transformers "
        "serve, TGI, Ollama), e.g. http://localhost:8000/v1",
    )
    model.add_argument(
        "--mllm-texts", type=positive_int, default=2, help="generated texts per image, 1-3 (default: %(default)s)"
    )
    model.add_argument(
        "--mllm-min-confidence",
        type=unit_float,
        default=0.5,
        help="predicted values at or above this confidence ground the prompt and the checks (default: %(default)s)",
    )
    model.add_argument(
        "--mllm-api-key-env",
        default=DEFAULT_API_KEY_ENV,
        metavar="NAME",
        help="environment variable holding the server's API key (default: %(default)s; unset: no key)",
    )
    model.add_argument(
        "--mllm-timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="per-request timeout against the server (default: %(default)s)",
    )
    neural = parser.add_argument_group("captions written by SPAC's neural captioner (--captioner spac)")
    neural.add_argument(
        "--captioner-model",
        default=None,
        metavar="DIR",
        help="the folder `spac train-captioner` saved; its two styles write the two style captions, each "
        "checked, else replaced by the template caption of its slot",
    )
    neural.add_argument(
        "--captioner-temperature",
        type=non_negative_float,
        default=0.0,
        help="sampling temperature, seeded by --seed and the file name; 0 is greedy (default: %(default)s)",
    )
    parser.add_argument(
        "--max-pixels",
        type=positive_int,
        default=DEFAULT_MAX_PIXELS,
        help="refuse an image that would decode to more pixels than this; a large JPEG is first "
        "decoded at a reduced scale, so only its reduced size counts (default: %(default)s)",
    )
    parser.add_argument(
        "--max-file-bytes",
        type=positive_int,
        default=DEFAULT_MAX_BYTES,
        help="refuse a file larger than this many bytes, without reading it whole (default: %(default)s)",
    )
    return parser


def _corpus_jpeg(path: Path, max_pixels: int, max_bytes: int) -> bytes:
    """The corpus JPEG of this file (256x128, quality 90), as the synthesis job stores it and its predictor and
    caption model see it: decoded under the shared policy, then re-encoded. CliError names the file (a FIFO or
    a device is refused by the policy before it is opened)."""
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
    return encode_image(decoded)


def _decoded(jpeg: bytes) -> Image.Image:
    with Image.open(io.BytesIO(jpeg)) as corpus:
        return corpus.convert("RGB")


def _report(path: Path, prediction: Prediction, texts: Sequence[str], details: dict[str, Any], as_json: bool) -> str:
    """The image's texts, one a line; or with ``as_json`` one JSON object: the image, its attributes, then
    ``details`` (the captions with their styles, or the caption model's outcome)."""
    if as_json:
        record = {
            "image": str(path),
            "attributes": {
                g: {"value": v, "confidence": round(prediction.confidences[g], 4)}
                for g, v in prediction.attributes.items()
            },
            **details,
        }
        return json.dumps(record, ensure_ascii=False)
    return "\n".join(texts)


class _CaptionModel:
    """--mllm-model: the text generator and the stage's settings, for every batch of images."""

    def __init__(self, generator: TextGenerator, settings: GenerationSettings):
        self.generator = generator
        self.settings = settings

    def reports(
        self,
        loaded: Sequence[tuple[Path, bytes]],
        predictions: Sequence[Prediction],
        captioner: Captioner,
        args: argparse.Namespace,
    ) -> list[str]:
        from spac.generation.stage import caption_item, generate_checked

        items = [
            caption_item(path.name, jpeg, prediction, captioner, args.seed)
            for (path, jpeg), prediction in zip(loaded, predictions)
        ]
        outcomes = generate_checked(items, self.generator, self.settings)
        return [
            _report(path, prediction, outcome.texts, outcome.as_dict(), args.json)
            for (path, _), prediction, outcome in zip(loaded, predictions, outcomes)
        ]


class _NeuralCaptioner:
    """--captioner spac: the loaded captioner's writer and the checks, for every batch of images."""

    def __init__(self, writer: StyledWriter):
        self.writer = writer

    def reports(
        self,
        loaded: Sequence[tuple[Path, bytes]],
        predictions: Sequence[Prediction],
        captioner: Captioner,
        args: argparse.Namespace,
    ) -> list[str]:
        from spac.generation.stage import CheckSettings, caption_item
        from spac.generation.styled import caption_styled

        items = [
            caption_item(path.name, jpeg, prediction, captioner, args.seed)
            for (path, jpeg), prediction in zip(loaded, predictions)
        ]
        outcomes = caption_styled(items, self.writer, CheckSettings(schema=captioner.schema))
        return [
            _report(path, prediction, outcome.texts, outcome.as_dict(), args.json)
            for (path, _), prediction, outcome in zip(loaded, predictions, outcomes)
        ]


def _template_reports(
    loaded: Sequence[tuple[Path, bytes]],
    predictions: Sequence[Prediction],
    captioner: Captioner,
    args: argparse.Namespace,
) -> list[str]:
    reports = []
    for (path, _), prediction in zip(loaded, predictions):
        captions = captioner(prediction.attributes, key=path.name, seed=args.seed)
        reports.append(
            _report(
                path,
                prediction,
                [c.text for c in captions],
                {"captions": [{"text": c.text, "style": c.style} for c in captions]},
                args.json,
            )
        )
    return reports


def _caption_batch(
    paths: Sequence[Path],
    predict: Callable[[list[bytes]], Sequence[Prediction]],
    captioner: Captioner,
    args: argparse.Namespace,
    many: bool,
    caption_model: _CaptionModel | _NeuralCaptioner | None,
) -> int:
    """Print the captions of each readable file, one line on stderr for each other; returns how many failed."""
    loaded: list[tuple[Path, bytes]] = []
    for path in paths:
        try:
            loaded.append((path, _corpus_jpeg(path, args.max_pixels, args.max_file_bytes)))
        except CliError as exc:
            print(f"spac caption: error: {exc}", file=sys.stderr)
    predictions = predict([jpeg for _, jpeg in loaded])
    write = caption_model.reports if caption_model is not None else _template_reports
    for (path, _), report in zip(loaded, write(loaded, predictions, captioner, args)):
        if many:
            print(f"== {printable_path(path)}")
        print(report)
    return len(paths) - len(loaded)


def _captioner_kind(args: argparse.Namespace) -> str:
    """--captioner, or its default; the flags of another captioner than the one chosen are refused."""
    kind = args.captioner or ("mllm" if args.mllm_model is not None else "template")
    if kind == "mllm" and args.mllm_model is None:
        raise CliError("--captioner mllm needs --mllm-model")
    if kind == "spac" and args.captioner_model is None:
        raise CliError("--captioner spac needs --captioner-model (a folder saved by `spac train-captioner`)")
    if kind != "spac" and args.captioner_model is not None:
        raise CliError("--captioner-model needs --captioner spac")
    if kind != "mllm" and args.mllm_model is not None and args.predictor != PREDICTOR_NAME:
        raise CliError(
            f"--mllm-model writes no captions with --captioner {kind} (only attributes, with --predictor mllm)"
        )
    return kind


def _neural_writer(args: argparse.Namespace) -> StyledWriter:
    """--captioner-model loaded on --device; a bad folder is one line."""
    from spac.generation.styled import StyledDecoding, StyledWriter
    from spac.neural_captioner.files import load_captioner

    try:
        captioner = load_captioner(args.captioner_model, device=str(args.device))
    except (InputError, OSError) as exc:
        raise CliError(f"--captioner-model: {error_line(exc)}") from None
    return StyledWriter(captioner, StyledDecoding(args.captioner_temperature, args.seed), BATCH_SIZE)


def _backend(args: argparse.Namespace) -> Backend | None:
    """--mllm-*: the model that writes the captions (and, with --predictor mllm, gives the attributes)."""
    if args.mllm_model is None:
        if args.predictor == PREDICTOR_NAME:
            raise CliError("--predictor mllm needs --mllm-model (the model a --mllm-server serves, or a model to load)")
        if args.mllm_server is not None:
            raise CliError("--mllm-server needs --mllm-model (the name of the model the server serves)")
        return None
    backend = Backend(
        args.mllm_model, args.mllm_server, args.mllm_api_key_env, args.mllm_timeout, device=str(args.device)
    )
    backend.check_reachable()
    return backend


def _settings(args: argparse.Namespace, captioner: Captioner) -> GenerationSettings | None:
    """--captioner mllm: the caption-model stage's settings (checked before any model is reached)."""
    if _captioner_kind(args) != "mllm":
        return None
    from spac.generation.stage import GenerationSettings, prompt_book

    return GenerationSettings(
        prompt_book(captioner),
        texts_per_image=args.mllm_texts,
        seed=args.seed,
        min_confidence=args.mllm_min_confidence,
        schema=captioner.schema,
    )


def _predict(
    args: argparse.Namespace, backend: Backend | None, generator: TextGenerator | None
) -> Callable[[list[bytes]], Sequence[Prediction]]:
    """Corpus JPEGs -> predictions: the --mllm-model asked (--predictor mllm), else the trained predictor."""
    if args.predictor == PREDICTOR_NAME and backend is not None and generator is not None:
        asker = open_asker(backend, args.min_confidence, loaded=generator)  # type: ignore[arg-type]
        return asker.ask  # type: ignore[return-value]
    # Importing the predictor loads transformers (seconds): pay that only once the arguments are sane.
    from spac.predictor.model import load_predictor

    try:
        predictor = load_predictor(args.predictor, device=args.device)
    except (InputError, OSError) as exc:
        raise CliError(f"cannot load predictor: {error_line(exc)}") from None
    return lambda jpegs: predictor.predict([_decoded(jpeg) for jpeg in jpegs], min_confidence=args.min_confidence)


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    schema = load_schema()
    captioner = Captioner(schema, styles=args.styles, library=library_for(args.sentences, schema))
    settings = _settings(args, captioner)
    backend = _backend(args)  # a server that does not answer stops here, before any work
    generator = backend.open() if backend is not None else None  # one model for the attributes and the captions
    caption_model: _CaptionModel | _NeuralCaptioner | None = None
    if generator is not None and settings is not None:
        caption_model = _CaptionModel(generator, settings)
    elif _captioner_kind(args) == "spac":
        caption_model = _NeuralCaptioner(_neural_writer(args))
    predict = _predict(args, backend, generator)

    many = len(args.images) > 1 and not args.json
    failures = sum(
        _caption_batch(args.images[start : start + BATCH_SIZE], predict, captioner, args, many, caption_model)
        for start in range(0, len(args.images), BATCH_SIZE)
    )
    return 2 if failures else 0
