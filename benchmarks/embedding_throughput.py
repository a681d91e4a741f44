"""Embedding and search speed of the plip embedding API, against the bare model in the same process.

    python benchmarks/embedding_throughput.py                       # RN-tiny preset, 10k and 50k index rows
    python benchmarks/embedding_throughput.py --preset RN50 --rows 50000,200000

Rows: images/s and texts/s through ``plip.embedding.Embedder`` (PIL images in, L2-normalised vectors
out) and through the bare ``encode_image`` / ``encode_text`` on ready tensors, alternated over several
rounds (medians), so the ratio says what the API adds; then the time of one and of 64 exact queries
over a parquet index of random unit vectors (``plip.embedding_index.search``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from plip.config import MINILM
from plip.embedding import load_embedder
from plip.embedding_index import EmbeddingIndex, IndexWriter, search
from plip.factory import create_model

TEXT = "a woman in a red coat with a black bag and blue jeans walking"


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def model_rates(preset: str, rounds: int, images: int, texts: int) -> None:
    overrides = {"tic": {"weight": 0}, "iap": {"weight": 0}}
    if preset == "RN50":  # no hub here: the bundled MiniLM tokenizer, BERT-base weights untrained
        overrides["text"] = {"pretrained": False, "tokenizer": MINILM}
    model = create_model(preset, **overrides).eval()
    embedder = load_embedder(model)
    height, width = model.config.vision.image_size
    pictures = [Image.new("RGB", (width * 2, height * 2), (20 * i % 255, 90, 160)) for i in range(images)]
    pixels = torch.randn(images, 3, height, width)
    tokens = model.tokenize([TEXT] * texts)
    api_images, bare_images, api_texts, bare_texts = [], [], [], []
    with torch.inference_mode():
        embedder.embed_images(pictures[:2]), model.encode_image(pixels[:2])  # warm-up
        for _ in range(rounds):
            api_images.append(images / _timed(lambda: embedder.embed_images(pictures)))
            bare_images.append(images / _timed(lambda: model.encode_image(pixels)))
            api_texts.append(texts / _timed(lambda: embedder.embed_texts([TEXT] * texts)))
            bare_texts.append(texts / _timed(lambda: model.encode_text(**tokens)))
    for name, api, bare in (("images", api_images, bare_images), ("texts", api_texts, bare_texts)):
        print(
            f"{preset} {name}/s: API {statistics.median(api):.1f}, bare model {statistics.median(bare):.1f} "
            f"(ratio {statistics.median(api) / statistics.median(bare):.2f}, median of {rounds})"
        )


def search_times(rows: list[int], dim: int = 768) -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as scratch:
        for count in rows:
            path = Path(scratch) / f"index{count}.parquet"
            writer = IndexWriter(path, dim, {"checkpoint": "benchmark"})
            for start in range(0, count, 50_000):
                block = rng.standard_normal((min(50_000, count - start), dim), dtype=np.float32)
                block /= np.linalg.norm(block, axis=1, keepdims=True)
                writer.write(
                    [
                        {
                            "key": f"k{start + i}",
                            "path": f"/x/{start + i}.jpg",
                            "kind": "image",
                            "text": None,
                            "id": None,
                        }
                        for i in range(len(block))
                    ],
                    block,
                )
            writer.finish()
            index = EmbeddingIndex(path)
            one = torch.nn.functional.normalize(torch.randn(1, dim), dim=1)
            many = torch.nn.functional.normalize(torch.randn(64, dim), dim=1)
            search(index, one, 10)  # page cache
            print(
                f"exact search over {count:,} rows: "
                f"one query {_timed(lambda index=index, one=one: search(index, one, 10)):.3f} s, "
                f"64 queries {_timed(lambda index=index, many=many: search(index, many, 10)):.3f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="RN-tiny")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--texts", type=int, default=128)
    parser.add_argument("--rows", default="10000,50000", help="index sizes for the search timing")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_rates(args.preset, args.rounds, args.images, args.texts)
    search_times([int(rows) for rows in args.rows.split(",")])


if __name__ == "__main__":
    main()
