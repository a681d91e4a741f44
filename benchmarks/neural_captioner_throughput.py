"""Images/s and tokens/s of the --captioner spac stage against a bare ``caption_images`` loop, in one process.

    python benchmarks/neural_captioner_throughput.py [--images 32] [--rounds 5] [--batch-size 8]
    python benchmarks/neural_captioner_throughput.py --captioner-model DIR      # a trained captioner

The captioner is the tests' tiny untrained one (a two-stage ResNet, a two-layer GPT-2; built offline and saved
into a temporary folder), or ``--captioner-model DIR``, loaded with ``load_captioner`` on the CPU, greedy, at
most ``--max-new-tokens`` tokens a text. The stage is the job's handler path,
``NeuralCaptionerHandler.run_inference`` on the job's records (person crops as corpus JPEGs, one set of
attributes): the template captions to fall back on, the JPEGs decoded, both styles written in fixed-size chunks,
every text checked (spaCy), the fallbacks and the attribute spans. The bare loop is ``caption_images`` in each
style over the same images already decoded, in chunks of the same size. Rounds alternate; medians. Tokens are
the texts' tokens as the captioner's tokenizer counts them (the same texts on both sides). An untrained
captioner never ends a text, so every text is ``--max-new-tokens`` long and rejected by the checks: the ratio is
the stage's cost where every text falls back.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: spac and the tests' helpers
from bench_common import STAGE_ATTRIBUTES, images_and_tokens, person_crops  # noqa: E402

from pipelines.synthesis.job import NeuralCaptioner  # noqa: E402
from pipelines.synthesis.neural_captioner import NeuralCaptionerHandler  # noqa: E402
from shards import encode_image  # noqa: E402
from spac.generation.styled import StyledDecoding, StyledWriter  # noqa: E402
from spac.neural_captioner.files import LoadedCaptioner, load_captioner, save_captioner  # noqa: E402

# The checks and fallbacks (spaCy over two texts an image) cost little beside even a tiny model's generation; a real
# captioner's generation costs more per text, so its ratio is nearer 1.
TARGET = 0.9


class CountingCaptioner:
    """The captioner, counting the tokens of the texts it writes (the same wrapper on both sides)."""

    def __init__(self, inner: LoadedCaptioner) -> None:
        self.inner, self.tokens = inner, 0
        self.style_names = inner.style_names

    def caption_images(self, images: Sequence[Any], style: int, **decoding: Any) -> list[str]:
        texts = self.inner.caption_images(images, style, **decoding)
        tokenizer = self.inner.model.tokenizer
        self.tokens += sum(len(tokenizer(text, add_special_tokens=False).input_ids) for text in texts)
        return texts


def records(images: int) -> list[dict]:
    """The job's records after the identity filters: a key, a corpus JPEG and the attributes."""
    return [
        {"key": f"p{i:06d}", "jpg": encode_image(crop), "attributes": STAGE_ATTRIBUTES}
        for i, crop in enumerate(person_crops(images))
    ]


def bare_loop(
    captioner: CountingCaptioner, batch: list[dict], chunk: int, decoding: StyledDecoding
) -> Callable[[], int]:
    """``caption_images`` in each style over the batch's images, decoded once beforehand, ``chunk`` at a time."""
    from PIL import Image

    images = [Image.open(io.BytesIO(r["jpg"])).convert("RGB") for r in batch]
    keys = [r["key"] for r in batch]

    def run() -> int:
        for start in range(0, len(images), chunk):
            for style in range(len(captioner.style_names)):
                captioner.caption_images(
                    images[start : start + chunk],
                    style,
                    max_new_tokens=decoding.max_new_tokens,
                    temperature=decoding.temperature,
                    seed=decoding.seed,
                    keys=keys[start : start + chunk],
                )
        return len(images)

    return run


def measure(captioner: LoadedCaptioner, path: str, images: int, rounds: int, chunk: int, tokens: int) -> float:
    """Alternated rounds of the bare loop and the stage; prints images/s, tokens/s and the ratio; returns it."""
    counting = CountingCaptioner(captioner)
    decoding = StyledDecoding(max_new_tokens=tokens)
    handler = NeuralCaptionerHandler(NeuralCaptioner(path, (), decoding, chunk), "cpu", None, seed=0)
    writer = StyledWriter(counting, decoding, chunk)
    batch = records(images)
    stage, bare = "stage (job's handler)", "bare caption_images loop"
    works = {stage: lambda: handler.run_inference(batch, writer), bare: bare_loop(counting, batch, chunk, decoding)}
    title = f"--captioner spac: images/s, {images} images, chunks of {chunk}, {tokens} new tokens at most (CPU)"
    return images_and_tokens(title, works, images, lambda: counting.tokens, rounds, stage, bare, TARGET)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="images per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8, help="images per generate call (the job's chunk)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="tokens a text at most")
    parser.add_argument("--captioner-model", metavar="DIR", help="a saved captioner (default: the tests' tiny one)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # the shared machine: one core, as the other ratio benchmarks
    with tempfile.TemporaryDirectory() as folder:
        path = args.captioner_model
        if path is None:
            from tests.spac.neural_captioner.tiny import tiny_captioner

            model = tiny_captioner()
            path = str(save_captioner(model, model.tokenizer, Path(folder) / "tiny"))
        measure(load_captioner(path), path, args.images, args.rounds, args.batch_size, args.max_new_tokens)


if __name__ == "__main__":
    main()
