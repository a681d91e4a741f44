"""Shared pieces of the ratio benchmarks: alternate two (or more) measurements in one process, report medians.

The machine is shared and noisy, so a benchmark never compares a rate with one taken at another time: it
times the stage and its limit in turns, round after round, and prints each one's median rate and the
median of the per-round ratios. Not a test helper: the scripts in this folder import it.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterable, Mapping


def alternate(
    runs: Mapping[str, Callable[[], int]], rounds: int, warmup: bool | Iterable[str] = True
) -> dict[str, list[float]]:
    """Rates (items/s) of each run per round, the runs taken in turns (order flipped every round);
    each callable does its work and returns how many items it handled. ``warmup``: one untimed call of
    each run first (True), of the named runs only, or none (False)."""
    names = list(runs)
    warm = names if warmup is True else [] if warmup is False else list(warmup)
    for name in warm:
        runs[name]()
    rates: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            gc.collect()
            start = time.perf_counter()
            items = runs[name]()
            rates[name].append(items / (time.perf_counter() - start))
    return rates


def report(
    title: str,
    rates: Mapping[str, list[float]],
    stage: str,
    limit: str,
    target: float,
    unit: str = "items/s",
) -> float:
    """Print each run's median rate and the median per-round ratio stage / limit against ``target``; return it."""
    print(title)
    for name, values in rates.items():
        print(
            f"  {name:<44} median {statistics.median(values):12,.1f} {unit}  "
            f"(rounds: {', '.join(f'{v:,.0f}' for v in values)})"
        )
    ratio = statistics.median(mine / bound for mine, bound in zip(rates[stage], rates[limit]))
    verdict = "meets" if ratio >= target else "below"
    print(
        f"  RATIO {stage} / {limit}: {ratio:.3f}x "
        f"(median of {len(rates[stage])} rounds; target >= {target:.3g}x: {verdict})"
    )
    return ratio


def images_and_tokens(
    title: str,
    works: Mapping[str, Callable[[], object]],
    images: int,
    tokens: Callable[[], int],
    rounds: int,
    stage: str,
    limit: str,
    target: float,
) -> float:
    """:func:`alternate` over ``works`` (each handles ``images`` images; ``tokens()`` is a running count of the
    tokens written, on both sides), :func:`report` of their images/s, then each side's median tokens/s and
    tokens per image (the warm-up call left out); returns the ratio ``stage`` / ``limit``."""
    counted: dict[str, list[int]] = {side: [] for side in works}

    def timed(side: str, work: Callable[[], object]) -> Callable[[], int]:
        def run() -> int:
            before = tokens()
            work()
            counted[side].append(tokens() - before)
            return images

        return run

    rates = alternate({side: timed(side, work) for side, work in works.items()}, rounds)
    ratio = report(title, rates, stage, limit, target, "images/s")
    for side, rate in rates.items():
        per_image = statistics.median(t / images for t in counted[side][1:])  # [0]: the warm-up
        print(f"  {side:<44} median {statistics.median(rate) * per_image:12,.1f} tokens/s ({per_image:.1f} per image)")
    return ratio


# A record's attributes as the caption stages get them: most trusted, one under the default bar (0.5), one unknown.
STAGE_ATTRIBUTES = {
    "gender": {"value": "man", "confidence": 0.9},
    "hair": {"value": "short black hair", "confidence": 0.9},
    "upper": {"value": "red t-shirt", "confidence": 0.8},
    "lower": {"value": "blue jeans", "confidence": 0.7},
    "shoes": {"value": "white sneakers", "confidence": 0.3},
    "belongings": {"value": "unknown", "confidence": 0.6},
}


def corpus_record(index: int, identity_size: int = 4) -> dict:
    """A record shaped like the job's (attributes with confidences, two style captions, one library sentence)."""
    from shards import GROUPS  # here, not at the top: the caption benchmark does not need shards

    identity = index // identity_size
    values = {
        "gender": "woman",
        "hair": "long black hair",
        "upper": "red t-shirt",
        "lower": "blue jeans",
        "shoes": "white sneakers",
        "belongings": "black backpack",
    }
    return {
        "key": f"p{identity:06d}_{index:07d}",
        "id": identity,
        "file_path": f"Part1/{identity}/{index}.jpg",
        "attributes": {g: {"value": values[g], "confidence": round(0.5 + (index % 50) / 100, 4)} for g in GROUPS},
        "captions": [
            f"A woman with long black hair wears a red t-shirt, blue jeans and white sneakers ({index}).",
            "She is carrying a black backpack and walks in blue jeans and a red t-shirt.",
        ],
        "styles": ["plain", "detailed"],
        "prompt_caption": ["The woman with long black hair has a black backpack on her back."],
        "source": f"/raw/cam1/{identity}/{index}.png",
    }


def person_crops(count: int, seed: int = 0) -> list:
    """Textured person-sized crops (low-res noise upsampled, like a blurry photo), of varied sizes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        small = rng.integers(0, 256, (24, 12, 3), dtype=np.uint8)
        crops.append(Image.fromarray(small).resize((64 + i % 64, 160 + i % 96), Image.Resampling.BICUBIC))
    return crops


def write_bench_corpus(directory: str, shards: int, per_shard: int, identity_size: int = 4) -> list[bytes]:
    """A corpus of ``shards`` x ``per_shard`` samples (corpus JPEGs of person_crops) and its manifest; the JPEGs."""
    from shards import encode_image, make_sample, write_manifest, write_shard

    jpgs = [encode_image(crop) for crop in person_crops(shards * per_shard)]
    for s in range(shards):
        write_shard(
            directory,
            s,
            [make_sample(corpus_record(i, identity_size), jpgs[i]) for i in range(s * per_shard, (s + 1) * per_shard)],
        )
    write_manifest(directory)
    return jpgs
