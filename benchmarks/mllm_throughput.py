"""Images/s and tokens/s of the caption-model stage against a bare loop calling the same backend, in one process.

    python benchmarks/mllm_throughput.py [--images 16] [--rounds 5] [--batch-size 8]

Two backends, each measured on its own: (a) the in-process tiny random Idefics3 of the tests (built offline into
a temporary folder, CPU, greedy), (b) the OpenAI-compatible client (``OpenAIServerGenerator``) against the tests'
chat server on 127.0.0.1, answering each request at once with a text that passes the checks. The bare loop is
``generator.generate`` on the stage's first-round requests (``texts_per_image`` per image); the stage is
``generate_checked`` over the same images and generator: prompts, checks (spaCy), the second round for each
rejected text, the template fallback and spans. Rounds alternate; medians. Tokens are the answers' tokens as the
tiny model's tokenizer counts them (both sides, every answer of every round), so (b)'s tokens/s is comparable
only to itself. The tiny model writes word soup that the checks reject, so (a)'s stage asks every text twice:
its ratio is the stage's cost where the model's answers are all bad, (b)'s where they are all good.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: spac and the tests' helpers
from bench_common import STAGE_ATTRIBUTES, images_and_tokens, person_crops  # noqa: E402

from shards import encode_image  # noqa: E402
from spac.attributes import load_schema  # noqa: E402
from spac.captioning.captioner import Captioner  # noqa: E402
from spac.generation.grounding import GivenAttributes, trusted_values  # noqa: E402
from spac.generation.requests import CaptionRequest, GeneratedText, TextGenerator  # noqa: E402
from spac.generation.stage import (  # noqa: E402
    CaptionItem,
    GenerationSettings,
    caption_item,
    generate_checked,
    prompt_book,
)  # noqa: E402

# Every answer rejected: the stage asks each text twice, so 0.5x is its bound; every answer kept: one round.
TARGET_ALL_REJECTED = 0.45
TARGET_ALL_KEPT = 0.9
# The tests' server is a socketserver (listen backlog 5): a sixth connection at once waits for a 1 s SYN retry.
SERVER_CONCURRENCY = 4


class CountingGenerator:
    """The backend, counting the tokens of its answers (the same wrapper on both sides)."""

    def __init__(self, inner: TextGenerator, count_tokens: Callable[[str], int]) -> None:
        self.inner, self.count_tokens, self.tokens = inner, count_tokens, 0

    def describe(self) -> dict:
        return self.inner.describe()

    def generate(self, requests: Sequence[CaptionRequest]) -> list[GeneratedText]:
        answers = self.inner.generate(requests)
        self.tokens += sum(self.count_tokens(a.text) for a in answers if a.text)
        return answers


def stage_inputs(images: int) -> tuple[list[CaptionItem], list[CaptionRequest], GenerationSettings]:
    """``images`` person crops as the stage's items (the same attributes each), the stage's first-round requests
    for them (``texts_per_image`` per image, what a bare loop sends the backend) and the stage's settings."""
    captioner = Captioner(load_schema())
    settings = GenerationSettings(prompt_book(captioner))
    jpegs = [encode_image(crop) for crop in person_crops(images)]
    items = [
        caption_item(f"p{i:06d}", jpeg, GivenAttributes.from_record(STAGE_ATTRIBUTES), captioner)
        for i, jpeg in enumerate(jpegs)
    ]
    requests = [
        settings.prompts.prompt(
            item.key,
            item.image_jpeg,
            trusted_values(item.prediction, settings.min_confidence, settings.schema),
            settings.seed,
            slot,
        ).request
        for item in items
        for slot in range(settings.texts_per_image)
    ]
    return items, requests, settings


def measure(name: str, generator: CountingGenerator, images: int, rounds: int, target: float) -> float:
    """Alternated rounds of the bare loop and the stage on ``images`` images; prints images/s, tokens/s and the
    ratio; returns the ratio."""
    items, requests, settings = stage_inputs(images)
    works = {
        "stage": lambda: generate_checked(items, generator, settings),
        "bare loop": lambda: generator.generate(requests),
    }
    title = f"{name}: images/s, {images} images"
    return images_and_tokens(title, works, images, lambda: generator.tokens, rounds, "stage", "bare loop", target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16, help="images per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8, help="requests per forward pass of the tiny model")
    args = parser.parse_args()
    import torch
    from transformers import AutoTokenizer

    from spac.generation.in_process import InProcessGenerator
    from spac.generation.server import OpenAIServerGenerator
    from tests.spac.generation.fake_server import FakeChatServer, Reply, text_reply
    from tests.spac.generation.tiny_vlm import build_tiny_vlm

    torch.set_num_threads(1)  # the shared machine: one core, as the other ratio benchmarks
    with tempfile.TemporaryDirectory() as folder:
        model = str(build_tiny_vlm(Path(folder)))
        tokenizer = AutoTokenizer.from_pretrained(model)

        def count(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False).input_ids)

        local = InProcessGenerator(model, "cpu", batch_size=args.batch_size)
        measure(
            "(a) in-process tiny model, CPU",
            CountingGenerator(local, count),
            args.images,
            args.rounds,
            TARGET_ALL_REJECTED,
        )

        def good(body: dict) -> Reply:  # a distinct text per request, that passes every check
            return text_reply(f"A man walks along the pavement in picture number {body['seed']}.")

        with FakeChatServer(good) as server:
            client = OpenAIServerGenerator(server.base_url, "tiny", concurrency=SERVER_CONCURRENCY)
            measure(
                "(b) OpenAI-compatible client, local chat server",
                CountingGenerator(client, count),
                args.images,
                args.rounds,
                TARGET_ALL_KEPT,
            )


if __name__ == "__main__":
    main()
