"""What the neural SPAC captioner says of held-out rendered people, beside the predictor + template path.

    python benchmarks/neural_captioner_quality.py [--seeds 0,1] [--train-people 1000] [--held-out 300]
        [--steps 1200] [--styles dense,head_to_toe] [--json results.json]

Per seed: render ``--train-people`` people (spac.render, their own training identities), caption each with two of
our style modules (``--styles A,B``) **over the renderer's ground truth** (the template captioner fed the
attributes the renderer reports as visible, so every training text is true of its image), write them as a corpus
of our shards (the record's ``styles`` say which module wrote each text) and train the tiny captioner on it with
``spac train-captioner --style-field styles --style-values A,B`` (the tiny ResNet and GPT-2 presets, a tokenizer
learnt from the captions). Then caption the same ``--held-out`` rendered people (identities no seed trains on,
as corpus JPEGs) three ways, two texts each (style A and style B):

- ``neural``: the trained captioner, greedy;
- ``predictor + template``: the bundled demo predictor's attributes through our template captioner (``spac
  caption``'s default path) in the same two style modules;
- ``truth + template``: the template captioner over the ground truth: the ceiling of what the reader can read.

Scores, against the renderer's ground truth, read back with ``spac.language`` (each group's first mention):

- item and colour **precision** (mentions whose item / colour is the person's, among the mentions of the group;
  a group the renderer reports as not visible makes every mention of it wrong) and **recall** (visible groups whose
  item / colour the text names right; belongings ``nothing`` is not required, as the captioner leaves it unsaid),
  pooled over the six groups (gender is an item), per group in ``--json``;
- **style accuracy**: a multinomial naive Bayes over word unigrams and bigrams, fitted on the training captions'
  styles, asked which style wrote each text (each text's label: the style it was asked in);
- **styles differ**: people whose two texts differ; **distinct**: distinct texts / texts (both styles).

Prints one markdown table row per path and seed, and the training cost (steps, seconds, seconds/step, on this
machine's CPU: shared and loaded, so the time is indicative). The numbers are from rendered people, not from
human-captioned photographs.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, when run as a script

from PIL import Image  # noqa: E402

from shards import encode_image, make_sample, write_manifest, write_shard  # noqa: E402
from spac.attributes import UNKNOWN, Schema, load_schema  # noqa: E402
from spac.captioning.captioner import caption  # noqa: E402
from spac.cli.main import main as spac_main  # noqa: E402
from spac.language import extract_attributes_batch  # noqa: E402
from spac.neural_captioner.files import load_captioner  # noqa: E402
from spac.predictor.model import load_predictor  # noqa: E402
from spac.render.styled_corpus import styled_people  # noqa: E402
from spac.render.training_source import evaluation_people  # noqa: E402

UNSAID = "nothing"  # belongings nothing: mostly left unsaid by the captioner; right when said, never required
PATHS = ("neural", "predictor + template", "truth + template")
COLUMNS = (
    "item_precision",
    "item_recall",
    "colour_precision",
    "colour_recall",
    "style_accuracy",
    "styles_differ",
    "distinct",
)


@dataclass(frozen=True)
class Sizes:
    """How big a run is: the corpus, the held-out people and the training (the train-captioner flags)."""

    train_people: int = 1000
    held_out: int = 300
    steps: int = 1200
    batch_size: int = 32
    lr: float = 3e-3
    image_size: str = "128x64"
    prefix_length: int = 2
    vocab_size: int = 1000
    max_tokens: int = 64
    styles: tuple[str, str] = ("dense", "head_to_toe")
    threads: int = 1  # torch threads: on the shared 2 cores, 2 threads under load run several times slower


# ---- the corpus and the captioner ----


def write_corpus(directory: Path, seed: int, sizes: Sizes, schema: Schema) -> list[tuple[str, int]]:
    """Rendered training people of ``seed``, two texts each (one per style module, over the ground truth), as one
    shard of our corpus; returns the (text, style index) pairs."""
    people = styled_people(seed, sizes.train_people, sizes.styles, schema)
    write_shard(str(directory), 0, [make_sample(record, encode_image(image)) for record, image in people])
    write_manifest(str(directory))
    return [(t, sizes.styles.index(s)) for record, _ in people for t, s in zip(record["captions"], record["styles"])]


def train(corpus: Path, out: Path, seed: int, sizes: Sizes) -> dict[str, Any]:
    """``spac train-captioner`` on the corpus, the two style modules as the two styles; its training record."""
    argv = ["train-captioner", "--data", str(corpus), "--out", str(out), "--style-field", "styles"]
    argv += ["--style-values", ",".join(sizes.styles), "--backbone", "tiny", "--generator", "tiny"]
    argv += ["--image-size", sizes.image_size, "--prefix-length", str(sizes.prefix_length)]
    argv += ["--vocab-size", str(sizes.vocab_size), "--steps", str(sizes.steps), "--batch-size", str(sizes.batch_size)]
    argv += ["--lr", str(sizes.lr), "--max-tokens", str(sizes.max_tokens), "--seed", str(seed)]
    argv += ["--threads", str(sizes.threads), "--quiet"]
    code = spac_main(argv)
    if code != 0:
        raise RuntimeError(f"spac {' '.join(argv)} exited {code}")
    return json.loads((out / "config.json").read_text(encoding="utf-8"))["training"]


def held_out_people(count: int, schema: Schema) -> tuple[list[Image.Image], list[dict[str, str]]]:
    """Held-out people as the corpus holds them (its JPEG, decoded) and their ground truth."""
    people = evaluation_people(count, schema)
    images, truths = [], []
    for index in range(count):
        image, attributes = people[index]
        images.append(Image.open(io.BytesIO(encode_image(image))).convert("RGB"))
        truths.append(attributes)
    return images, truths


# ---- the texts of each path: (person index, style index, text) ----

Texts = list[tuple[int, int, str]]


def neural_texts(directory: Path, images: Sequence[Image.Image], sizes: Sizes, chunk: int = 64) -> Texts:
    captioner = load_captioner(directory)
    texts: Texts = []
    for style in range(2):
        for start in range(0, len(images), chunk):
            written = captioner.caption_images(images[start : start + chunk], style, max_new_tokens=sizes.max_tokens)
            texts += [(start + i, style, text) for i, text in enumerate(written)]
    return texts


def template_texts(attributes: Sequence[Mapping[str, str]], styles: tuple[str, str]) -> Texts:
    """The template captioner's text of each style module for each person (one only when too little is known)."""
    return [
        (index, styles.index(c.style), c.text)
        for index, values in enumerate(attributes)
        for c in caption(values, f"held-out{index}", styles=styles)
        if c.style in styles
    ]


# ---- scores ----


class StyleClassifier:
    """Multinomial naive Bayes over lower-cased word unigrams and bigrams (add-one smoothing)."""

    def __init__(self, texts: Sequence[str], labels: Sequence[int]) -> None:
        self.counts = [Counter() for _ in range(2)]
        for text, label in zip(texts, labels):
            self.counts[label].update(_features(text))
        vocabulary = set(self.counts[0]) | set(self.counts[1])
        self.totals = [sum(c.values()) + len(vocabulary) for c in self.counts]
        self.priors = [math.log(labels.count(k) / len(labels)) for k in range(2)]

    def predict(self, text: str) -> int:
        features = _features(text)
        scores = [
            self.priors[k] + sum(math.log((self.counts[k][f] + 1) / self.totals[k]) for f in features) for k in range(2)
        ]
        return int(scores[1] > scores[0])


def _features(text: str) -> list[str]:
    words = re.findall(r"[a-z]+|[.,]", text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def read_scores(texts: Texts, truths: Sequence[Mapping[str, str]], schema: Schema) -> dict[str, Any]:
    """Item and colour precision / recall of the texts against the ground truth, pooled and per group."""
    tallies = {g: Counter() for g in schema.group_names}
    for (index, _, _), mentions in zip(texts, extract_attributes_batch([t for _, _, t in texts], schema)):
        first = {}
        for mention in mentions:
            first.setdefault(mention.group, mention)
        for group, tally in tallies.items():
            phrase = truths[index][group]
            truth = schema.value(group, phrase) if phrase != UNKNOWN else None
            said = first.get(group)
            tally["item_said"] += said is not None
            required = truth is not None and truth.item != UNSAID
            right = said is not None and truth is not None and said.item == truth.item
            tally["item_known"] += required
            tally["item_right"] += right
            tally["item_found"] += right and required  # a said "nothing" is right, yet not required
            tally["colour_said"] += said is not None and said.colour is not None
            tally["colour_known"] += truth is not None and truth.colour is not None
            tally["colour_right"] += (
                said is not None and truth is not None and said.colour is not None and said.colour == truth.colour
            )
    pooled = sum(tallies.values(), Counter())
    return {**_ratios(pooled), "groups": {g: _ratios(t) for g, t in tallies.items()}}


def _ratios(tally: Counter) -> dict[str, float | None]:
    def share(right: str, total: str) -> float | None:
        return round(tally[right] / tally[total], 4) if tally[total] else None

    return {
        "item_precision": share("item_right", "item_said"),
        "item_recall": share("item_found", "item_known"),
        "colour_precision": share("colour_right", "colour_said"),
        "colour_recall": share("colour_right", "colour_known"),
    }


def score(texts: Texts, truths: Sequence[Mapping[str, str]], classifier: StyleClassifier, schema: Schema) -> dict:
    """Every column of one path's row."""
    by_person: dict[int, dict[int, str]] = {}
    for index, style, text in texts:
        by_person.setdefault(index, {})[style] = text
    pairs = [written for written in by_person.values() if len(written) == 2]
    right = sum(classifier.predict(text) == style for _, style, text in texts)
    return {
        **read_scores(texts, truths, schema),
        "style_accuracy": round(right / len(texts), 4),
        "styles_differ": round(sum(w[0] != w[1] for w in pairs) / len(pairs), 4) if pairs else None,
        "distinct": round(len({t for _, _, t in texts}) / len(texts), 4),
        "texts": len(texts),
        "examples": {style: next(t for _, s, t in texts if s == style) for style in range(2)},
    }


def measure(workdir: Path, seed: int, sizes: Sizes) -> dict[str, Any]:
    """One seed: train, caption the held-out people three ways, score each; the rows and the training cost."""
    schema = load_schema()
    corpus, out = workdir / f"corpus-{seed}", workdir / f"captioner-{seed}"
    started = time.perf_counter()
    training_texts = write_corpus(corpus, seed, sizes, schema)
    corpus_seconds = time.perf_counter() - started
    record = train(corpus, out, seed, sizes)
    classifier = StyleClassifier([t for t, _ in training_texts], [s for _, s in training_texts])
    images, truths = held_out_people(sizes.held_out, schema)
    started = time.perf_counter()
    texts = {"neural": neural_texts(out, images, sizes)}
    caption_seconds = time.perf_counter() - started
    predicted = [p.attributes for p in load_predictor().predict(images)]
    texts["predictor + template"] = template_texts(predicted, sizes.styles)
    texts["truth + template"] = template_texts(truths, sizes.styles)
    rows = {path: score(texts[path], truths, classifier, schema) for path in PATHS}
    cost = {
        "corpus_seconds": round(corpus_seconds, 1),
        "train_seconds": record["seconds"],
        "steps": record["steps"],
        "seconds_per_step": round(record["seconds"] / record["steps"], 3),
        "neural_caption_seconds": round(caption_seconds, 1),
        "training_captions": len(training_texts),
    }
    return {"seed": seed, "rows": rows, "cost": cost}


# ---- the table ----


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(results: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table: one row per seed and path, then the mean over seeds of each path."""
    header = "| seed | texts by | item P | item R | colour P | colour R | style acc. | styles differ | distinct |"
    lines = [header, "|" + " --- |" * (header.count("|") - 1)]
    for result in results:
        for path, row in result["rows"].items():
            lines.append(f"| {result['seed']} | {path} | " + " | ".join(_cell(row[c]) for c in COLUMNS) + " |")
    if len(results) > 1:
        for path in PATHS:
            values = [[r["rows"][path][c] for r in results] for c in COLUMNS]
            means = [statistics.mean(v) if None not in v else None for v in values]
            lines.append(f"| mean | {path} | " + " | ".join(_cell(m) for m in means) + " |")
    return "\n".join(lines)


def _sizes(args: argparse.Namespace) -> Sizes:
    styles = tuple(s.strip() for s in args.styles.split(","))
    if len(styles) != 2 or styles[0] == styles[1]:
        raise SystemExit(f"--styles: expected two different style modules, got {args.styles!r}")
    fields = {f: getattr(args, f) for f in Sizes.__dataclass_fields__ if f != "styles"}
    return Sizes(styles=styles, **fields)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Sizes()
    parser.add_argument("--seeds", default="0,1", help="comma-separated training seeds (default: 0,1)")
    for name, value in asdict(defaults).items():
        if name != "styles":
            flag = f"--{name.replace('_', '-')}"
            parser.add_argument(flag, type=type(value), default=value, help="default: %(default)s")
    parser.add_argument("--styles", default=",".join(defaults.styles), help="two style modules (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write every number (per group too) to this file")
    args = parser.parse_args(argv)
    sizes = _sizes(args)
    import torch

    torch.set_num_threads(sizes.threads)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in (int(s) for s in args.seeds.split(",")):
            results.append(measure(Path(folder), seed, sizes))
            print(f"seed {seed}: {json.dumps(results[-1]['cost'])}", flush=True)
    print(table(results))
    for result in results:
        for path, row in result["rows"].items():
            print(f"  seed {result['seed']} {path}: {json.dumps(row['examples'])}")
    print(json.dumps({"sizes": asdict(sizes)}))
    if args.json is not None:
        args.json.write_text(json.dumps({"sizes": asdict(sizes), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
