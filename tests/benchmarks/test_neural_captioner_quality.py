"""benchmarks/neural_captioner_quality.py at tiny sizes: every path's row, its columns in range, the table."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.append(str(BENCHMARKS))
quality = importlib.import_module("neural_captioner_quality")

TINY = quality.Sizes(
    train_people=10, held_out=6, steps=2, batch_size=4, image_size="64x32", max_tokens=16, vocab_size=300, threads=1
)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    before = torch.get_num_threads()
    try:
        return quality.measure(tmp_path_factory.mktemp("quality"), 3, TINY)
    finally:
        torch.set_num_threads(before)


def test_each_path_has_every_column_in_range(result):
    assert result["seed"] == 3 and tuple(result["rows"]) == quality.PATHS
    for row in result["rows"].values():
        for column in quality.COLUMNS:
            assert row[column] is None or 0.0 <= row[column] <= 1.0, (column, row[column])
        assert set(row["groups"]) == {"gender", "hair", "upper", "lower", "shoes", "belongings"}
    neural = result["rows"]["neural"]
    assert neural["texts"] == 2 * TINY.held_out  # both styles for every held-out person
    cost = result["cost"]
    assert cost["steps"] == TINY.steps and cost["training_captions"] == 2 * TINY.train_people
    assert cost["seconds_per_step"] > 0


def test_the_reader_reads_the_template_texts_of_the_truth_back(result):
    ceiling = result["rows"]["truth + template"]
    assert ceiling["item_precision"] == ceiling["item_recall"] == 1.0
    assert ceiling["colour_precision"] == ceiling["colour_recall"] == 1.0
    assert ceiling["style_accuracy"] >= 0.9  # the classifier tells the two style modules apart
    assert ceiling["distinct"] == 1.0


def test_a_mention_of_a_group_not_shown_is_wrong_a_missed_group_lowers_recall_and_nothing_is_not_required():
    schema = quality.load_schema()
    truth = {g: "unknown" for g in schema.group_names} | {"gender": "man", "upper": "red t-shirt"}
    truth["belongings"] = "nothing"  # the captioner leaves it unsaid
    texts = [(0, 0, "A man in a blue t-shirt with black shoes."), (0, 1, "A person in a red shirt.")]
    scores = quality.read_scores(texts, [truth], schema)
    upper, shoes = scores["groups"]["upper"], scores["groups"]["shoes"]
    assert upper["item_precision"] == upper["item_recall"] == 0.5  # t-shirt, then shirt
    assert upper["colour_precision"] == upper["colour_recall"] == 0.5  # blue, then red
    assert shoes["item_precision"] == 0.0 and shoes["item_recall"] is None  # not visible, yet said
    assert scores["groups"]["gender"]["item_recall"] == 0.5  # "person" says no gender
    assert scores["groups"]["belongings"]["item_recall"] is None
    assert scores["item_precision"] == 0.5 and scores["item_recall"] == 0.5
    assert scores["colour_precision"] == pytest.approx(1 / 3, abs=1e-4) and scores["colour_recall"] == 0.5
    said = quality.read_scores([(0, 0, "A man in a red t-shirt, carrying nothing.")], [truth], schema)
    assert said["groups"]["belongings"]["item_precision"] == 1.0 and said["item_recall"] == 1.0


def test_the_table_has_a_row_per_seed_and_path_then_the_means(result):
    lines = quality.table([result, {**result, "seed": 4}]).splitlines()
    assert lines[0].startswith("| seed | texts by | item P |") and set(lines[1]) <= set("|- ")
    assert len(lines) == 2 + 2 * len(quality.PATHS) + len(quality.PATHS)
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    assert lines[-1].startswith("| mean | truth + template | 1.000 | 1.000 |")
