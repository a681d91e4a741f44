"""END-TO-END (the one long test, about 20 s on 2 idle CPU cores): rendered people -> the Beam job with
the bundled demo predictor -> corpus shards -> PLIP pre-training -> zero-shot text-to-image retrieval on
held-out rendered identities. Deselect with ``-m "not end_to_end"``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from plip.programs.pretrain import main
from shards import iter_samples
from spac.render import render_dataset

pytestmark = pytest.mark.end_to_end

TRAIN_IDS, HELD_OUT_IDS, IMAGES_PER_ID = 48, 16, 6


def synthesize(images: Path, corpus: Path) -> None:
    from pipelines.synthesize import run  # Beam is imported only on this path

    run(
        [
            "--runner=DirectRunner",
            "--input",
            str(images),
            "--output",
            str(corpus),
            "--shard_size",
            "72",
            "--min_images",
            "3",
            "--seed",
            "0",
        ],
        save_main_session=False,
    )


def build_corpus(root: Path, name: str, identities: int, seed: int) -> Path:
    images = root / f"{name}-images"
    render_dataset(images, identities, IMAGES_PER_ID, seed=seed)
    synthesize(images, root / name)
    return root / name


def chance_map(relevant: int, gallery: int, trials: int = 2000) -> float:
    """Expected mAP (percent) of a random ranking with ``relevant`` matches among ``gallery`` images."""
    rng = np.random.default_rng(0)
    total = 0.0
    for _ in range(trials):
        hits = np.sort(rng.choice(gallery, size=relevant, replace=False)) + 1  # 1-based ranks of the matches
        total += float(np.mean(np.arange(1, relevant + 1) / hits))
    return 100.0 * total / trials


def test_pretraining_on_rendered_people_retrieves_held_out_identities_far_above_chance(tmp_path, record_property):
    train = build_corpus(tmp_path, "train", TRAIN_IDS, seed=0)
    held_out = build_corpus(tmp_path, "held_out", HELD_OUT_IDS, seed=5)
    run_dir = tmp_path / "run"
    # Small, fast settings: tiny image network at the evaluation's 256x128, the pretrained MiniLM text
    # encoder with its top 2 layers trainable at the paper's x0.1 rate (at x1.0 one run in six learned
    # nothing: the text encoder drifts faster than the tiny image network can follow), IVLC only.
    argv = [
        "--shards",
        str(train),
        "--out",
        str(run_dir),
        "--preset",
        "RN-tiny",
        "--model-overrides",
        json.dumps({"vision": {"width": 8}, "text": {"max_length": 32}}),
        "--losses",
        "ivlc",
        "--text-trainable-layers",
        "2",
        "--text-lr-scale",
        "0.1",
        "--weight-decay",
        "0",
        "--ids-per-batch",
        "8",
        "--images-per-id",
        "2",
        "--steps-per-epoch",
        "18",
        "--max-steps",
        "60",
        "--lr",
        "1e-3",
        "--warmup-epochs",
        "0.2",
        "--milestones",
        "100",
        "--shuffle-buffer",
        "200",
        "--threads",
        "2",
        "--log-every",
        "6",
        "--eval-shards",
        str(held_out),
        "--quiet",
    ]
    assert main(argv) == 0
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    result = [line for line in lines if line["kind"] == "eval"][-1]
    gallery_ids = Counter(sample["json"]["id"] for sample in iter_samples(str(held_out)))
    chance_r1 = 100.0 * sum(n * n for n in gallery_ids.values()) / sum(gallery_ids.values()) ** 2
    chance = {"R@1": chance_r1, "mAP": chance_map(max(gallery_ids.values()), sum(gallery_ids.values()))}
    for name in ("R@1", "mAP"):
        record_property(name, result[name])
        record_property(f"chance {name}", chance[name])
    print(
        f"end-to-end: R@1 {result['R@1']:.1f} (chance {chance['R@1']:.1f}), "
        f"mAP {result['mAP']:.1f} (chance {chance['mAP']:.1f})"
    )
    # Measured over 2 rendered corpora x 2 training seeds with these settings: R@1 1.82x-4.49x chance, mAP
    # 1.41x-2.73x; this test's corpus and seed give R@1 19.8 (3.0x) and mAP 25.5 (2.2x). The same models before
    # training reach at most 1.59x (R@1) and 1.16x (mAP) of chance on the same held-out sets, so the bars sit between
    # the two: a model that learned nothing fails both; about 12-15 of the 16 held-out identities pass the filters.
    assert result["R@1"] >= 1.7 * chance["R@1"]
    assert result["mAP"] >= 1.3 * chance["mAP"]
