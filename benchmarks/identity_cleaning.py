"""Identity cleaning: where its thresholds come from, and what kNN / LSH over many centres costs.

Three measurements:

- ``calibrate``: renders --people people x --images images, embeds them with the bundled demo predictor
  (``Prediction.embedding``) and, with and without common-mode removal, prints the cosine of a person's
  images and of foreign images to an identity centre (the identity holding 2 foreign images), and of
  the two halves of one person (a split identity) against the closest centre of another person; then
  precision / recall of drops and merges at a sweep of thresholds (pure functions, no Beam).
- ``knn``: ``nearest_centres`` (exact, blocked torch matmul) on --centres random unit centres of
  --dim dimensions, timed, with the quadratic extrapolation to 400k centres.
- ``lsh``: recall of LSH bucketing against exact kNN for split identities (pairs at a chosen cosine),
  and bucket sizes, at the default tables / bits.

Run: python benchmarks/identity_cleaning.py {calibrate,knn,lsh,all} [--people 60] [--images 8]
     [--centres 50000] [--dim 128] [--threads 2]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch

from common.digests import stable_int
from spac.corpus.identity_cleaning import (
    CleaningConfig,
    identity_centre,
    lsh_planes,
    lsh_signatures,
    nearest_centres,
    prepare_embeddings,
    score_bucket,
    split_outliers,
)
from spac.predictor.model import load_predictor
from spac.render.identity import random_identity
from spac.render.person import render_person


def _unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)


def rendered_embeddings(people: int, images: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """([people * images, C] demo-predictor embeddings, person of each row)."""
    predictor = load_predictor()
    vectors, labels = [], []
    for person in range(people):
        attributes = random_identity(random.Random(stable_int(seed, person)))
        batch = torch.stack(
            [predictor.preprocess(render_person(attributes, stable_int(seed, person, n))[0]) for n in range(images)]
        )
        vectors += [p.embedding for p in predictor.predict_tensors(batch, with_embeddings=True)]
        labels += [person] * images
    return np.stack(vectors), np.array(labels)


def _percentiles(values, qs=(1, 5, 50, 95, 99)) -> str:
    return " ".join(f"p{q}={v:.3f}" for q, v in zip(qs, np.percentile(values, qs)))


def calibrate(people: int, images: int) -> None:
    start = time.perf_counter()
    raw, labels = rendered_embeddings(people, images)
    print(
        f"rendered and embedded {len(labels)} images ({people} people x {images}, dim {raw.shape[1]}) "
        f"in {time.perf_counter() - start:.1f}s"
    )
    rng = np.random.default_rng(0)
    for remove in (False, True):
        x = prepare_embeddings(raw, remove_common_mode=remove)
        own, foreign, drop_rows = [], [], []
        for person in range(people):
            members = np.flatnonzero(labels == person)
            strangers = rng.choice(np.flatnonzero(labels != person), 2, replace=False)
            rows = np.concatenate([members, strangers])
            similarity = x[rows] @ identity_centre(x[rows])
            own += list(similarity[: len(members)])
            foreign += list(similarity[len(members) :])
            drop_rows.append((x[rows], len(members)))
        half = images // 2
        first = _unit(np.stack([x[labels == p][:half].mean(0) for p in range(people)]))
        second = _unit(np.stack([x[labels == p][half:].mean(0) for p in range(people)]))
        same = (first * second).sum(1)
        cross = first @ second.T
        np.fill_diagonal(cross, -1)
        print(f"\ncommon mode removed: {remove}")
        print(f"  own image -> centre      {_percentiles(own)}")
        print(f"  foreign image -> centre  {_percentiles(foreign)}")
        print(f"  split halves             {_percentiles(same)}")
        print(f"  closest other person     {_percentiles(cross.max(1))}")
        for threshold in (0.3, 0.4, 0.45, 0.5, 0.55, 0.6) if remove else (0.8, 0.85, 0.88, 0.9):
            config = CleaningConfig(outlier_similarity=threshold, remove_common_mode=remove)
            hits = dropped = 0
            for rows, members in drop_rows:
                verdict = split_outliers(rows, config)
                dropped += len(verdict.dropped)
                hits += sum(1 for i in verdict.dropped if i >= members)
            print(
                f"  outlier_similarity {threshold:.2f}: drop precision {hits / max(dropped, 1):.3f} "
                f"recall {hits / (2 * people):.3f}"
            )
        for threshold in (0.6, 0.65, 0.7, 0.75, 0.8, 0.85) if remove else (0.9, 0.93, 0.95, 0.97):
            true = int((same >= threshold).sum())
            false = int((cross >= threshold).sum()) // 1
            print(
                f"  merge_similarity {threshold:.2f}: merge recall {true / people:.3f}, "
                f"false pairs {false} of {people * (people - 1)}"
            )


def knn(centres: int, dim: int, block: int) -> None:
    matrix = torch.from_numpy(_unit(np.random.default_rng(0).standard_normal((centres, dim))).astype(np.float32))
    start = time.perf_counter()
    nearest_centres(matrix, k=10, block=block)
    seconds = time.perf_counter() - start
    at_400k = seconds * (400_000 / centres) ** 2
    print(
        f"nearest_centres: {centres} centres x {dim} dims, k=10, block {block}, {torch.get_num_threads()} "
        f"threads: {seconds:.1f}s; quadratic extrapolation to 400k: {at_400k:.0f}s ({at_400k / 3600:.1f} h)"
    )


def lsh(centres: int, dim: int, cosine: float) -> None:
    config = CleaningConfig()
    rng = np.random.default_rng(1)
    people = _unit(rng.standard_normal((centres // 2, dim)))
    noise = _unit(rng.standard_normal((centres // 2, 2, dim)))
    noise -= (noise * people[:, None]).sum(-1, keepdims=True) * people[:, None]
    halfway = np.sqrt(cosine)  # each half at this cosine to the person, noises orthogonal: halves at ``cosine``
    halves = _unit(halfway * people[:, None] + np.sqrt(1 - halfway**2) * _unit(noise)).reshape(-1, dim)
    halves = halves.astype(np.float32)
    start = time.perf_counter()
    planes = lsh_planes(dim, config)
    buckets: dict = {}
    for index, centre in enumerate(halves):
        for bucket in lsh_signatures(centre, planes, config):
            buckets.setdefault(bucket, []).append(index)
    found = set()
    for members in buckets.values():
        for a, b, _ in score_bucket([f"{m:08d}" for m in members], halves[members], config.merge_similarity):
            found.add((int(a), int(b)))
    seconds = time.perf_counter() - start
    true = {
        (2 * i, 2 * i + 1)
        for i in range(centres // 2)
        if float(halves[2 * i].astype(np.float64) @ halves[2 * i + 1]) >= config.merge_similarity
    }
    sizes = np.array([len(m) for m in buckets.values()])
    print(
        f"LSH {config.lsh_tables} tables x {config.lsh_bits} bits, {centres} centres x {dim} dims, split pairs "
        f"at cosine ~{cosine}: recall {len(true & found) / max(len(true), 1):.3f} of {len(true)} pairs "
        f"above {config.merge_similarity}; {len(found - true)} other pairs; buckets {len(sizes)}, mean size "
        f"{sizes.mean():.1f}, max {sizes.max()}; {seconds:.1f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("calibrate", "knn", "lsh", "all"))
    parser.add_argument("--people", type=int, default=60)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--centres", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--block", type=int, default=4096)
    parser.add_argument("--cosine", type=float, default=0.85, help="cosine of the split pairs (lsh)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.what in ("calibrate", "all"):
        calibrate(args.people, args.images)
    if args.what in ("knn", "all"):
        knn(args.centres, args.dim, args.block)
    if args.what in ("lsh", "all"):
        lsh(args.centres, args.dim, args.cosine)


if __name__ == "__main__":
    main()
