"""The predictor trainer's parts on plain lists of (image, attributes) examples: labels, loss, steps,
mirroring, settings, the training loop (deterministic, whatever the worker count) and evaluation."""
from dataclasses import replace

import pytest
import torch
from PIL import Image

from spac.attribute_training import (LabelledImages, TrainingSettings, attribute_loss, evaluate, label_indices, train,
                                     train_step)
from spac.attributes import load_schema
from spac.imaging import normalised_tensor
from spac.predictor import Prediction, PredictorConfig, build_predictor

TINY_BACKBONE = {"depths": [1, 1], "hidden_sizes": [8, 16], "embedding_size": 8, "layer_type": "basic"}


@pytest.fixture(scope="module")
def schema():
    return load_schema()


def _model(schema, seed=0):
    torch.manual_seed(seed)
    return build_predictor(PredictorConfig.for_schema(schema, TINY_BACKBONE), schema)


def _examples(n):
    """Left half dark, right half light (so a mirror shows), a colour per example, a man in red or a woman."""
    examples = []
    for i in range(n):
        image = Image.new("RGB", (32, 64), (10 * i % 250, 40, 200))
        image.paste((250, 250, 250), (16, 0, 32, 64))
        attributes = {"gender": "man", "upper": "red t-shirt"} if i % 2 else {"gender": "woman"}
        examples.append((image, attributes))
    return examples


def test_label_indices_follow_the_schema_labels_with_unknown_as_zero(schema):
    visible = {"gender": "woman", "hair": "unknown", "upper": "red jacket", "lower": "unknown",
               "shoes": "black boots", "belongings": "phone"}
    indices = label_indices(visible, schema).tolist()
    assert indices[1] == indices[3] == 0
    assert [schema.groups[i].labels[k] for i, k in enumerate(indices)] == list(visible.values())
    assert label_indices({"gender": "man"}, schema).tolist()[1:] == [0] * 5  # a missing group is unknown


def test_attribute_loss_is_the_sum_of_group_cross_entropies():
    logits = {"a": torch.tensor([[2.0, 0.0]]), "b": torch.tensor([[0.0, 0.0, 0.0]])}
    targets = torch.tensor([[1, 2]])
    expected = torch.log(1 + torch.exp(torch.tensor(2.0))) + torch.log(torch.tensor(3.0))
    assert torch.allclose(attribute_loss(logits, targets), expected)


def test_a_few_training_steps_lower_the_loss_on_a_fixed_batch(schema):
    model = _model(schema)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(8, 3, 256, 128, generator=generator)
    targets = torch.stack([torch.randint(len(g.labels), (8,), generator=generator) for g in schema.groups], dim=1)
    losses = [train_step(model, optimizer, pixels, targets) for _ in range(12)]
    assert losses[-1] < 0.6 * losses[0]


def test_labelled_images_are_the_model_input_and_mirror_about_half_repeatably(schema):
    examples = _examples(40)
    config = _model(schema).config
    plain = LabelledImages(examples, schema, config)
    pixels, labels = plain[3]
    assert torch.equal(pixels, normalised_tensor(examples[3][0], config.image_size))
    assert torch.equal(labels, label_indices(examples[3][1], schema))
    flipped = LabelledImages(examples, schema, config, flip_seed=7)
    mirrored = [not torch.equal(flipped[i][0], plain[i][0]) for i in range(len(examples))]
    assert 10 <= sum(mirrored) <= 30
    assert all(torch.equal(flipped[i][0], plain[i][0].flip(-1)) for i in range(len(examples)) if mirrored[i])
    again = LabelledImages(examples, schema, config, flip_seed=7)
    assert all(torch.equal(flipped[i][0], again[i][0]) for i in range(len(examples)))
    other = LabelledImages(examples, schema, config, flip_seed=8)
    assert [not torch.equal(other[i][0], plain[i][0]) for i in range(len(examples))] != mirrored
    assert len(flipped) == 40


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "steps must be at least 1, got 0"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"workers": -1}, "workers must be at least 0"),
    ({"lr": 0.0}, "lr must be a positive number"),
    ({"lr": float("nan")}, "lr must be a positive number"),
    ({"weight_decay": -1.0}, "weight_decay must be a number >= 0"),
])
def test_bad_training_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainingSettings(**kwargs)


def test_train_needs_enough_examples(schema):
    with pytest.raises(ValueError, match="3 steps of 2 need 6 examples, got 5"):
        train(_model(schema), _examples(5), TrainingSettings(steps=3, batch_size=2))


def test_training_is_deterministic_whatever_the_worker_count_and_reports_how(schema):
    settings = TrainingSettings(steps=3, batch_size=2, lr=1e-2)
    states = []
    for workers in (0, 1):
        model = _model(schema)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        record = train(model, _examples(7), replace(settings, workers=workers), flip_seed=1)
        states.append(model.state_dict())
        assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert record["steps"] == 3 and record["batch_size"] == 2 and record["images"] == 6 and record["lr"] == 1e-2
    assert record["seconds"] >= 0 and record["images_per_second"] > 0


class _FixedPredictor:
    """Stands in for a predictor: answers from a list, in order, and records the batch sizes it was given."""

    def __init__(self, schema, answers):
        self.schema, self.answers, self.calls = schema, list(answers), []

    def predict(self, images, batch_size=32):
        self.calls.append(len(images))
        answers, self.answers = self.answers[:len(images)], self.answers[len(images):]
        return [Prediction(self.schema.validate(a), {}) for a in answers]


def test_evaluate_gives_per_group_accuracy_and_majority_baseline_a_batch_at_a_time(schema):
    examples = [(Image.new("RGB", (8, 8)), truth) for truth in (
        {"gender": "man", "upper": "red t-shirt"}, {"gender": "man"}, {"gender": "woman"}, {"gender": "man"})]
    answers = [{"gender": "man", "upper": "red t-shirt"}, {"gender": "woman"}, {"gender": "woman"}, {"gender": "man"}]
    model = _FixedPredictor(schema, answers)
    report = evaluate(model, iter(examples), batch_size=3)
    assert model.calls == [3, 1]
    assert report["examples"] == 4
    assert report["groups"]["gender"] == {"accuracy": 0.75, "majority_baseline": 0.75}
    assert report["groups"]["upper"] == {"accuracy": 1.0, "majority_baseline": 0.75}
    assert report["groups"]["hair"] == {"accuracy": 1.0, "majority_baseline": 1.0}  # unknown everywhere
    assert report["mean_accuracy"] == pytest.approx((0.75 + 5 * 1.0) / 6)
    assert set(report["groups"]) == set(schema.group_names)
    with pytest.raises(ValueError, match="no examples"):
        evaluate(model, [])


def test_evaluate_scores_a_real_predictor_between_0_and_1(schema):
    report = evaluate(_model(schema).eval(), _examples(5), batch_size=2)
    assert report["examples"] == 5 and all(0 <= r["accuracy"] <= 1 for r in report["groups"].values())
    assert report["groups"]["gender"]["majority_baseline"] == pytest.approx(3 / 5)
