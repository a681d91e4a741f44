"""Rendered people trained on natively and through PA-100K files: the same images, the same tiny predictor, the same
steps; held-out accuracy compared on what PA-100K can say (gender, sleeve / coat, lower type, boots, bags).

Used by tests/spac/predictor/datasets/test_pa100k.py (small) and benchmarks/pa100k_format_parity.py (larger).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spac.attributes import load_schema
from spac.predictor.datasets.mapping import load_mapping
from spac.predictor.datasets.pa100k import read_pa100k, write_pa100k
from spac.predictor.metrics import attribute_report, group_accuracy
from spac.predictor.model import PredictorConfig, build_predictor
from spac.predictor.training import TrainingSettings, predict_examples, train
from spac.render.training_source import evaluation_people, training_people

BACKBONE = {"depths": [1, 1, 1, 1], "hidden_sizes": [16, 32, 64, 128], "embedding_size": 16, "layer_type": "basic"}


def compare(
    workdir: Path,
    n_train: int = 600,
    n_eval: int = 300,
    steps: int = 250,
    batch_size: int = 32,
    image_size: tuple[int, int] = (128, 64),
    lr: float = 3e-3,
    seed: int = 0,
) -> dict[str, Any]:
    """Train twice (native labels, then PA-100K-format files of the same images) and score both on held-out people."""
    schema = load_schema()
    mapping = load_mapping("pa100k", schema)
    people = training_people(seed, n_train, schema)
    native = [people[i] for i in range(n_train)]  # rendered once: both runs see the same pixels
    write_pa100k(workdir, {"train": native}, schema, mapping)  # PNG: lossless
    files = read_pa100k(workdir, schema, mapping).split("train")
    held_out = [evaluation_people(n_eval, schema)[i] for i in range(n_eval)]
    truth_bits = np.stack([mapping.bits(a) for _, a in held_out])
    truth_labels = mapping.labels_for(truth_bits)[0]  # what PA-100K says of each held-out person
    columns = [mapping.column(a) for a in mapping.mapped]
    settings = TrainingSettings(steps=steps, batch_size=batch_size, lr=lr, seed=seed, augment="flip")
    results: dict[str, Any] = {}
    for name, examples in (("native", native), ("pa100k", files)):
        torch.manual_seed(seed)
        model = build_predictor(PredictorConfig.for_schema(schema, BACKBONE, image_size=image_size), schema)
        started = time.perf_counter()
        train(model, examples, settings)
        predictions, _ = predict_examples(model.eval(), held_out, batch_size=64)
        attributes = [p.attributes for p in predictions]
        groups = group_accuracy(schema, attributes, truth_labels)
        predicted_bits = np.stack([mapping.bits(a) for a in attributes])
        metrics = attribute_report(truth_bits[:, columns], predicted_bits[:, columns], mapping.mapped)
        results[name] = {
            "groups": {g: r["accuracy"] for g, r in groups["groups"].items() if r["accuracy"] is not None},
            "mean_accuracy": groups["mean_accuracy"],
            "mA": metrics["mA"],
            "f1": metrics["f1"],
            "seconds": round(time.perf_counter() - started, 1),
        }
    results["difference"] = {key: results["pa100k"][key] - results["native"][key] for key in ("mean_accuracy", "mA")}
    results["settings"] = {
        "train_people": n_train,
        "held_out_people": n_eval,
        "steps": steps,
        "batch_size": batch_size,
        "image_size": list(image_size),
        "lr": lr,
        "seed": seed,
    }
    return results
