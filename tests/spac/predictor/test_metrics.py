"""Attribute metrics against hand-computed cases: label-based mA, instance-based accuracy / precision / recall /
F1 (with not-said truth left out), and per-group accuracy on partial labels."""

import numpy as np
import pytest

from spac.attributes import load_schema
from spac.predictor.labels import MASKED, group_label
from spac.predictor.metrics import attribute_report, group_accuracy, instance_based, label_based

# 4 images x 3 attributes
TRUTH = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]])
PRED = np.array([[1, 0, 0], [1, 0, 1], [1, 1, 0], [0, 0, 0]])


def test_label_based_mean_accuracy_by_hand():
    result = label_based(TRUTH, PRED)
    # attribute 0: positives {0,2} both found (1.0), negatives {1,3}: 3 right (0.5) -> 0.75
    # attribute 1: positives {2,3}: 2 found (0.5), negatives {0,1} both right (1.0) -> 0.75
    # attribute 2: positives {0,1}: 1 found (0.5), negatives {2,3} both right (1.0) -> 0.75
    assert result["per_attribute"] == pytest.approx([0.75, 0.75, 0.75])
    assert result["positive_recall"] == pytest.approx([1.0, 0.5, 0.5])
    assert result["negative_recall"] == pytest.approx([0.5, 1.0, 1.0])
    assert result["mA"] == pytest.approx(0.75)
    assert result["positives"] == [2, 2, 2] and result["negatives"] == [2, 2, 2]


def test_instance_based_metrics_by_hand():
    result = instance_based(TRUTH, PRED)
    # image 0: T={0,2} P={0}: acc 1/2, prec 1, rec 1/2, F1 2/3
    # image 1: T={2} P={0,2}: acc 1/2, prec 1/2, rec 1, F1 2/3
    # image 2: T={0,1} P={0,1}: 1, 1, 1, 1
    # image 3: T={1} P={}: 0, 0 (empty prediction, the published convention), 0, 0
    assert result["accuracy"] == pytest.approx((0.5 + 0.5 + 1 + 0) / 4)
    assert result["precision"] == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    assert result["recall"] == pytest.approx((0.5 + 1 + 1 + 0) / 4)
    assert result["f1"] == pytest.approx((2 / 3 + 2 / 3 + 1 + 0) / 4)


def test_not_said_truth_is_left_out_of_every_count():
    truth = np.array([[1, -1], [0, -1], [-1, 1]])
    pred = np.array([[1, 1], [0, 1], [1, 0]])
    labels = label_based(truth, pred)
    assert labels["positives"] == [1, 1] and labels["negatives"] == [1, 0]
    # attribute 1 has no negative: its negative recall is 0 by the convention (EPS denominator)
    assert labels["per_attribute"] == pytest.approx([1.0, 0.0])
    inst = instance_based(truth, pred)
    # image 0: T={0} P={0}; image 1: T={} P={} (all zero: 0 by convention); image 2: T={1} P={} -> 0
    assert inst["accuracy"] == pytest.approx(1 / 3)


def test_attribute_report_names_each_attribute_and_checks_shapes():
    report = attribute_report(TRUTH, PRED, ["a", "b", "c"])
    assert report["mA"] == pytest.approx(0.75) and report["attributes"]["b"]["positive_recall"] == pytest.approx(0.5)
    assert set(report) == {"mA", "accuracy", "precision", "recall", "f1", "attributes"}
    with pytest.raises(ValueError, match="2 attribute names for 3"):
        attribute_report(TRUTH, PRED, ["a", "b"])
    with pytest.raises(ValueError, match="one shape"):
        label_based(TRUTH, PRED[:, :2])
    with pytest.raises(ValueError, match="truth must hold 1, 0 or -1"):
        label_based(TRUTH * 2, PRED)
    assert instance_based(np.zeros((0, 3)), np.zeros((0, 3)))["f1"] == 0.0


def test_group_accuracy_counts_labelled_groups_only_with_the_best_constant_baseline():
    schema = load_schema()
    short = group_label(["t-shirt", "polo shirt", "vest"], None)
    long_ = group_label(["shirt", "jacket"], None)
    labels = [
        {"upper": short, "gender": group_label(["woman"])},
        {"upper": short, "gender": group_label(["man"])},
        {"upper": long_, "gender": group_label(["man"])},
        {"upper": MASKED, "gender": group_label(["man"])},
    ]
    predicted = [
        {"upper": "red t-shirt", "gender": "woman"},
        {"upper": "red shirt", "gender": "woman"},
        {"upper": "black jacket", "gender": "man"},
        {"upper": "unknown", "gender": "man"},
    ]
    report = group_accuracy(schema, predicted, [{g: row.get(g, MASKED) for g in schema.group_names} for row in labels])
    assert report["groups"]["upper"] == {"accuracy": 2 / 3, "majority_baseline": 2 / 3, "labelled": 3}
    assert report["groups"]["gender"] == {"accuracy": 0.75, "majority_baseline": 0.75, "labelled": 4}
    assert report["groups"]["hair"] == {"accuracy": None, "majority_baseline": None, "labelled": 0}
    assert report["mean_accuracy"] == pytest.approx((2 / 3 + 0.75) / 2) and report["examples"] == 4
    with pytest.raises(ValueError, match="2 predictions for 4 labels"):
        group_accuracy(schema, predicted[:2], labels)
