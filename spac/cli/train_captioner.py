"""`spac train-captioner`: train the neural SPAC captioner (spac.neural_captioner) on the captions of corpora.

Reads every caption of the ``--data`` corpora (our shards: an imported CUHK-PEDES / ICFG-PEDES / RSTPReid corpus
with mined attributes, a synthesized one, any corpus), with its image and the record's attributes (the attribute
loss's labels; ``unknown`` and phrases outside the schema are not trained). A caption's **style** (which of the two
style encoders it trains) is a value chosen by ``--style-field``:

- ``dataset`` (default): the corpus it comes from, named ``NAME=DIR`` in ``--data`` (else the folder's name):
  CUHK-PEDES and ICFG-PEDES annotators write differently, and each import is a corpus of its own;
- ``styles``: each caption's own style in the record's ``styles`` list (our style modules: ``dense``,
  ``inventory``, ...), so a rendered corpus whose captions come from two style modules trains the two styles.

``--style-values A,B`` picks the two values that become style 0 and 1 (other captions are skipped and counted),
``--style-names`` names them in the saved captioner. Writes OUT/config.json, OUT/model.safetensors,
OUT/tokenizer/ (spac.neural_captioner.files), OUT/history.json with validation, OUT/checkpoint/ with
``--checkpoint-every``. Reproducible: the same corpora, flags and thread count give the same weights.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer

from common.cli import (
    CliError,
    OneLineArgumentParser,
    add_quiet_flag,
    device,
    image_size,
    non_negative_int,
    positive_float,
    positive_int,
    silence_libraries,
)
from common.digests import stable_int
from common.errors import error_line
from common.training import PRECISIONS, resolve_precision
from shards import open_corpus
from shards.images import decode_image
from shards.reader import decode_record
from spac.attributes import Schema, load_schema
from spac.neural_captioner.config import GENERATOR_PRESETS, NeuralCaptionerConfig, preset_generator
from spac.neural_captioner.files import save_captioner
from spac.neural_captioner.model import build_captioner
from spac.neural_captioner.tokenizer import train_tokenizer
from spac.neural_captioner.training import CaptionerTrainingSettings, CaptionExample, label_ids, train_captioner
from spac.predictor.model import BACKBONE_PRESETS

STYLE_FIELDS = ("dataset", "styles")
CHECKPOINT_DIR = "checkpoint"


def _two_names(text: str) -> tuple[str, str]:
    """--style-values / --style-names: two different comma-separated names."""
    names = tuple(part.strip() for part in text.split(","))
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise argparse.ArgumentTypeError(f"expected two different comma-separated names, got {text!r}")
    return names  # type: ignore[return-value]


def _corpus(text: str) -> tuple[str, str]:
    """--data [NAME=]DIR: a corpus and the name its captions' style value takes with --style-field dataset."""
    name, sep, path = text.partition("=")
    if not sep:
        name, path = Path(text.rstrip("/")).name or text, text
    if not name.strip() or not path.strip():
        raise argparse.ArgumentTypeError(f"expected DIR or NAME=DIR, got {text!r}")
    return name.strip(), path


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(
        prog="spac train-captioner",
        description=(
            "Train the neural SPAC captioner (an image prefix encoder with one branch per attribute group plus a "
            "sentence branch, two style encoders, a GPT-2 generator; attribute loss weight 0.15) on the captions "
            "of corpora. Each caption trains the style encoder of its style: by default the corpus it comes "
            "from (--style-field dataset: e.g. --data cuhk=DIR --data icfg=DIR, two imported datasets whose "
            "annotators write differently); with --style-field styles, each caption's own style id of the "
            "record (e.g. two of our style modules: --style-values dense,inventory). Writes OUT/config.json, "
            "OUT/model.safetensors and OUT/tokenizer/ (load with --captioner spac --captioner-model OUT)."
        ),
    )
    p.add_argument("--out", required=True, type=Path, help="output directory for the trained captioner")
    p.add_argument(
        "--data",
        required=True,
        action="append",
        type=_corpus,
        metavar="[NAME=]DIR",
        help="a corpus folder (or shard pattern) of our shards; repeat for several. NAME (default: the folder's "
        "name) is its captions' style value with --style-field dataset",
    )
    p.add_argument(
        "--style-field",
        choices=STYLE_FIELDS,
        default="dataset",
        help="what gives a caption's style: dataset = the --data corpus it comes from; styles = the caption's "
        "own entry in the record's styles list (a style module's name, 'human' for imported captions) "
        "(default: dataset)",
    )
    p.add_argument(
        "--style-values",
        type=_two_names,
        metavar="A,B",
        help="the two style values that become style 0 and style 1; captions of any other value are skipped "
        "(default: the two --data names with --style-field dataset; needed with --style-field styles)",
    )
    p.add_argument(
        "--style-names",
        type=_two_names,
        metavar="A,B",
        help="names of style 0 and style 1 in the saved captioner (default: the style values)",
    )
    p.add_argument(
        "--backbone",
        default="tiny",
        help=f"the visual backbone: a ResNet preset of the predictor ({', '.join(BACKBONE_PRESETS)}) or a "
        "transformers image model by hub name (needs the hub) or local folder (default: tiny)",
    )
    p.add_argument(
        "--generator",
        default="tiny",
        help=f"the GPT-2 generator: a preset trained from scratch ({', '.join(GENERATOR_PRESETS)}) with a "
        "byte-level BPE tokenizer learnt from the training captions, or a pretrained GPT-2 with its tokenizer "
        "by hub name such as gpt2 (needs the hub) or local folder (default: tiny)",
    )
    p.add_argument(
        "--vocab-size", type=positive_int, default=1000, help="tokenizer size of a preset generator (default: 1000)"
    )
    p.add_argument("--prefix-length", type=positive_int, default=4, help="generator positions per branch (default: 4)")
    p.add_argument(
        "--image-size",
        type=image_size,
        default=(256, 128),
        metavar="HxW",
        help="input height x width of the backbone (default: 256x128, the corpus size)",
    )
    p.add_argument("--steps", type=positive_int, default=3000, help="optimizer steps, one batch each (default: 3000)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="captions per step (default: 32)")
    p.add_argument(
        "--lr", type=positive_float, default=5e-4, help="peak AdamW learning rate, cosine-decayed (default: 5e-4)"
    )
    p.add_argument(
        "--max-tokens", type=positive_int, default=64, help="tokens a caption is cut to, end included (default: 64)"
    )
    p.add_argument(
        "--limit", type=non_negative_int, default=0, help="read at most N samples per corpus; 0 = all (default: 0)"
    )
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the weights and batches (default: 0)")
    p.add_argument(
        "--val-percent",
        type=non_negative_int,
        default=5,
        help="identities held out for validation, in percent (by a hash of the identity, so every image of one "
        "identity is on one side); used with --eval-every (default: 5)",
    )
    p.add_argument(
        "--eval-every",
        type=non_negative_int,
        default=0,
        help="score the validation captions every N steps and at the end, keeping the best weights; 0 = never "
        "(default: 0)",
    )
    p.add_argument(
        "--patience",
        type=non_negative_int,
        default=0,
        help="early stopping: stop after N scorings without a lower validation loss; needs --eval-every (default: 0)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=non_negative_int,
        default=0,
        help="write OUT/checkpoint/train_state.pt every N steps and at the end (default: 0 = never)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT/checkpoint/ exactly where it stopped (same flags and data required; starts fresh "
        "when there is no checkpoint)",
    )
    p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--workers", type=non_negative_int, default=0, help="DataLoader processes (default: 0)")
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument(
        "--precision",
        choices=("auto", *PRECISIONS),
        default="auto",
        help="autocast precision: bf16 or fp16 (CUDA only) mixed precision, or fp32; auto = bf16 on CUDA, fp32 on "
        "a CPU (default)",
    )
    add_quiet_flag(p)
    return p


@dataclass(frozen=True)
class _Caption:
    jpeg: bytes
    text: str
    style: int
    labels: tuple[int, ...]
    identity: int


class _Captions(Sequence):
    """Captions with their images kept as JPEG bytes, decoded (under the decode policy) when indexed."""

    def __init__(self, captions: list[_Caption]) -> None:
        self.captions = captions

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> CaptionExample:  # type: ignore[override]
        c = self.captions[index]
        return CaptionExample(decode_image(c.jpeg), c.text, c.style, c.labels)


def _style_values(args: argparse.Namespace) -> tuple[str, str]:
    if args.style_values is not None:
        return args.style_values
    names = [name for name, _ in args.data]
    if args.style_field == "dataset" and len(names) == 2 and names[0] != names[1]:
        return names[0], names[1]
    if args.style_field == "dataset":
        raise CliError(f"--style-values: which two of the --data names ({', '.join(names)}) are the styles?")
    raise CliError("--style-values A,B: which two values of the records' styles are the two styles?")


def read_captions(args: argparse.Namespace, values: tuple[str, str], schema: Schema) -> tuple[list[_Caption], Counter]:
    """Every caption of the corpora whose style value is one of ``values``, and the counts of all values seen."""
    captions, seen = [], Counter()
    for name, path in args.data:
        # images stay JPEG bytes until a step needs them: a corpus is never all in memory as pixels
        samples = open_corpus(path, decode=False, split_by_node=False, split_by_worker=False)
        for count, sample in enumerate(samples):
            if args.limit and count >= args.limit:
                break
            record = decode_record(sample)
            attributes = {
                g: entry["value"] for g, entry in record["attributes"].items() if entry.get("in_schema", True)
            }
            labels = label_ids(attributes, schema)
            styles = record["styles"] if args.style_field == "styles" else [name] * len(record["captions"])
            for text, style in zip(record["captions"], styles):
                seen[style] += 1
                if style in values:
                    captions.append(_Caption(sample["jpg"], text, values.index(style), labels, record["id"]))
    return captions, seen


def _tokenizer(args: argparse.Namespace, texts: list[str]) -> Any:
    if args.generator in GENERATOR_PRESETS:
        return train_tokenizer(texts, args.vocab_size)
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.generator)
    except (OSError, ValueError) as exc:
        raise CliError(f"--generator: cannot load a tokenizer from {args.generator!r}: {error_line(exc)}") from None
    if tokenizer.eos_token_id is None:
        raise CliError(f"--generator: the tokenizer of {args.generator!r} has no end-of-text token")
    return tokenizer


def _config(args: argparse.Namespace, schema: Schema, tokenizer: Any, names: tuple[str, str]) -> NeuralCaptionerConfig:
    fields: dict[str, Any] = {"image_size": args.image_size, "prefix_length": args.prefix_length}
    if args.backbone in BACKBONE_PRESETS:
        fields["backbone"] = dict(BACKBONE_PRESETS[args.backbone])
    else:
        fields["pretrained_backbone"] = args.backbone
    if args.generator in GENERATOR_PRESETS:
        generator = preset_generator(args.generator, len(tokenizer), tokenizer.eos_token_id)
    else:
        generator, fields["pretrained_generator"] = {}, args.generator
    return NeuralCaptionerConfig.for_schema(schema, names, generator, **fields)


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        raise CliError(f"--out {args.out} exists and is not a directory")
    if args.patience and not args.eval_every:
        raise CliError("--patience needs --eval-every (how often to score the validation captions)")
    if args.val_percent >= 100:
        raise CliError(f"--val-percent must be below 100, got {args.val_percent}")
    values = _style_values(args)
    names = args.style_names or values
    precision = resolve_precision(args.precision, args.device)
    silence_libraries(args.quiet)
    torch.set_num_threads(args.threads)
    schema = load_schema()
    captions, seen = read_captions(args, values, schema)
    for index, value in enumerate(values):
        if not any(c.style == index for c in captions):
            found = ", ".join(f"{v} ({n})" for v, n in seen.most_common(8)) or "none"
            raise CliError(f"no caption of style value {value!r} in --data (--style-field {args.style_field}: {found})")
    held_out = args.eval_every > 0 and args.val_percent > 0
    validation = [c for c in captions if held_out and stable_int("validation", c.identity) % 100 < args.val_percent]
    training = [c for c in captions if not (held_out and stable_int("validation", c.identity) % 100 < args.val_percent)]
    if not training or (held_out and not validation):
        raise CliError("--val-percent leaves no training or no validation captions; change it")
    tokenizer = _tokenizer(args, [c.text for c in training])
    torch.manual_seed(args.seed)
    model = build_captioner(_config(args, schema, tokenizer, names), tokenizer, schema).to(args.device)
    settings = CaptionerTrainingSettings(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        max_tokens=args.max_tokens,
        workers=args.workers,
        seed=args.seed,
        eval_every=args.eval_every,
        patience=args.patience,
        checkpoint_every=args.checkpoint_every,
        precision=precision,
    )
    record = train_captioner(
        model,
        _Captions(training),
        settings,
        validation=_Captions(validation) if validation else None,
        checkpoint_dir=args.out / CHECKPOINT_DIR,
        resume=args.resume,
        progress=not args.quiet,
    )
    history = record.pop("history")
    data = {"data": [f"{name}={path}" for name, path in args.data], "style_field": args.style_field}
    model.config = replace(model.config, training={**record, **data, "style_values": list(values)})
    save_captioner(model, tokenizer, args.out)
    if history:
        (args.out / "history.json").write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")
    if not args.quiet:
        counts = Counter(c.style for c in training)
        print(
            f"saved the captioner to {args.out}: {counts[0]} {names[0]} and {counts[1]} {names[1]} training "
            f"captions, {record['steps']} steps in {record['seconds']:.0f} s"
        )
    return 0
