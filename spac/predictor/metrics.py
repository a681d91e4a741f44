"""The metrics of pedestrian attribute recognition, and per-group accuracy on the SPAC groups.

On a dataset's own binary attributes (``truth`` and ``pred``: ``[N, K]`` arrays of 0/1; ``truth`` -1 = not
said, left out), as PA-100K / PETA / RAP papers report them (the conventions of the public evaluation code,
e.g. Jia et al.'s "Rethinking of pedestrian attribute recognition" ``get_pedestrian_metrics``, looked up with
the search tool; ``EPS`` keeps empty denominators at 0 as that code does):

- **label-based mA**: per attribute, (recall of the positives + recall of the negatives) / 2, averaged over
  the attributes;
- **instance-based** accuracy |T∩P| / |T∪P|, precision |T∩P| / |P|, recall |T∩P| / |T| and F1 (2PR / (P+R))
  per image over its attributes, averaged over the images.

On the SPAC groups (:func:`group_accuracy`): a prediction is right when the image's label allows it
(spac.predictor.labels.accepts); a group counts only the images whose label says something of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spac.attributes import UNKNOWN, Schema
from spac.predictor.labels import GroupLabel, PartialLabels, accepts, candidates

EPS = 1e-20


def _checked(truth: Any, pred: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.ndim != 2 or truth.shape != pred.shape:
        raise ValueError(
            f"truth and predictions must be [images, attributes] of one shape, got "
            f"{list(truth.shape)} and {list(pred.shape)}"
        )
    if not np.isin(truth, (-1, 0, 1)).all() or not np.isin(pred, (0, 1)).all():
        raise ValueError("truth must hold 1, 0 or -1 (not said) and predictions 1 or 0")
    known = truth >= 0
    return truth == 1, pred == 1, known


def label_based(truth: Any, pred: Any) -> dict[str, Any]:
    """mA and, per attribute, the recall of its positives and of its negatives."""
    t, p, known = _checked(truth, pred)
    positives, negatives = (t & known).sum(0), (~t & known).sum(0)
    positive_recall = (t & p & known).sum(0) / (positives + EPS)
    negative_recall = (~t & ~p & known).sum(0) / (negatives + EPS)
    per_attribute = (positive_recall + negative_recall) / 2
    return {
        "mA": float(per_attribute.mean()) if per_attribute.size else 0.0,
        "per_attribute": per_attribute.tolist(),
        "positive_recall": positive_recall.tolist(),
        "negative_recall": negative_recall.tolist(),
        "positives": positives.tolist(),
        "negatives": negatives.tolist(),
    }


def instance_based(truth: Any, pred: Any) -> dict[str, float]:
    """Mean over images of accuracy, precision, recall and F1 of the image's attribute set."""
    t, p, known = _checked(truth, pred)
    t, p = t & known, p & known
    intersection, union = (t & p).sum(1), (t | p).sum(1)
    precision = intersection / (p.sum(1) + EPS)
    recall = intersection / (t.sum(1) + EPS)
    f1 = 2 * precision * recall / (precision + recall + EPS)
    mean = (lambda v: float(v.mean())) if len(t) else (lambda v: 0.0)
    return {
        "accuracy": mean(intersection / (union + EPS)),
        "precision": mean(precision),
        "recall": mean(recall),
        "f1": mean(f1),
    }


def attribute_report(truth: Any, pred: Any, names: Sequence[str]) -> dict[str, Any]:
    """Label- and instance-based metrics, with each attribute's numbers under its name."""
    labels = label_based(truth, pred)
    if len(names) != len(labels["per_attribute"]):
        raise ValueError(f"{len(names)} attribute names for {len(labels['per_attribute'])} attributes")
    per = {
        name: {
            "mA": labels["per_attribute"][i],
            "positive_recall": labels["positive_recall"][i],
            "negative_recall": labels["negative_recall"][i],
            "positives": labels["positives"][i],
            "negatives": labels["negatives"][i],
        }
        for i, name in enumerate(names)
    }
    return {"mA": labels["mA"], **instance_based(truth, pred), "attributes": per}


def group_accuracy(
    schema: Schema, predicted: Sequence[Mapping[str, str]], labels: Sequence[PartialLabels]
) -> dict[str, Any]:
    """Per group: accuracy over the images whose label says something of the group, and the accuracy of the
    best constant prediction (the majority class, for full labels) for scale; their mean over those groups."""
    if len(predicted) != len(labels):
        raise ValueError(f"{len(predicted)} predictions for {len(labels)} labels")
    groups: dict[str, dict[str, Any]] = {}
    for group in schema.groups:
        said: list[tuple[str, GroupLabel]] = [
            (p.get(group.name, UNKNOWN), row[group.name])
            for p, row in zip(predicted, labels)
            if not row.get(group.name, GroupLabel()).masked
        ]
        if not said:
            groups[group.name] = {"accuracy": None, "majority_baseline": None, "labelled": 0}
            continue
        right = sum(accepts(group, phrase, label) for phrase, label in said)
        allowing = Counter()
        for label, count in Counter(label for _, label in said).items():
            for c in candidates(group):
                if label.allows(c.item, c.colour):
                    allowing[c.phrase] += count
        groups[group.name] = {
            "accuracy": right / len(said),
            "majority_baseline": max(allowing.values()) / len(said),
            "labelled": len(said),
        }
    scored = [r["accuracy"] for r in groups.values() if r["accuracy"] is not None]
    return {"examples": len(labels), "groups": groups, "mean_accuracy": sum(scored) / len(scored) if scored else None}
