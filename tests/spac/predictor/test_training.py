"""The predictor trainer's parts on plain lists of examples: the label layout, the masked loss, class balancing,
settings, training (deterministic whatever the worker count, exactly resumable, validation with
early stopping, bf16 autocast) and evaluation."""

from dataclasses import replace

import pytest
import torch
from PIL import Image

from common.imaging import normalised_tensor
from common.training_loop import load_state
from spac.attributes import UNKNOWN, load_schema
from spac.predictor.augmentation import Augmentation
from spac.predictor.labels import MASKED, NO_COLOUR, exact_labels, group_label
from spac.predictor.model import Prediction, PredictorConfig, build_predictor
from spac.predictor.training import (
    LabelLayout,
    LabelledImages,
    TrainingSettings,
    as_labels,
    attribute_loss,
    balance_weights,
    evaluate,
    predict_examples,
    train,
    train_step,
    training_logits,
    validation_scores,
)

TINY_BACKBONE = {"depths": [1, 1], "hidden_sizes": [8, 16], "embedding_size": 8, "layer_type": "basic"}
SMALL = (64, 32)


@pytest.fixture(scope="module")
def schema():
    return load_schema()


@pytest.fixture(scope="module")
def layout(schema):
    return LabelLayout(schema)


def _model(schema, seed=0):
    torch.manual_seed(seed)
    return build_predictor(PredictorConfig.for_schema(schema, TINY_BACKBONE, image_size=SMALL), schema)


def _examples(n):
    """Left half a colour per example, right half light (so a mirror shows): a man in red or a woman."""
    examples = []
    for i in range(n):
        image = Image.new("RGB", (32, 64), (10 * i % 250, 40, 200))
        image.paste((250, 250, 250), (16, 0, 32, 64))
        attributes = {"gender": "man", "upper": "red t-shirt"} if i % 2 else {"gender": "woman"}
        examples.append((image, attributes))
    return examples


def _logits(schema, generator):
    return {g.name: torch.randn(3, len(g.labels), generator=generator) for g in schema.groups}


def test_layout_turns_labels_into_the_allowed_labels_of_each_head(schema, layout):
    upper = schema.group("upper")
    rows = [
        {"upper": "red t-shirt"},  # exact (unknown elsewhere: a class)
        {g: MASKED for g in schema.group_names} | {"upper": group_label(["t-shirt", "vest"])},  # colour not said
        {g: MASKED for g in schema.group_names},
    ]
    targets = torch.stack([layout.encode(r) for r in rows])
    assert targets.shape == (3, layout.width) and targets.dtype == torch.bool
    allowed = dict(zip(schema.group_names, layout.allowed(targets)))["upper"]
    assert [upper.labels[i] for i in allowed[0].nonzero().flatten()] == ["red t-shirt"]
    second = {upper.labels[i] for i in allowed[1].nonzero().flatten()}
    assert second == {v.phrase for v in upper.values if v.item in ("t-shirt", "vest") and v.specific}
    assert "t-shirt" not in second  # the bare value is never a target
    assert allowed[2].sum() == 1 + sum(v.specific for v in upper.values)  # masked: every candidate
    hair = dict(zip(schema.group_names, layout.allowed(targets)))["hair"]
    assert hair[0].nonzero().flatten().tolist() == [0]  # unknown of a rendered label is the class "not visible"


def test_layout_refuses_a_label_no_value_meets(schema, layout):
    with pytest.raises(ValueError, match="a belongings label allows no value"):
        layout.encode({"belongings": group_label(["phone"], ["red"])})


def test_loss_is_the_group_cross_entropies_for_exact_labels(schema, layout):
    generator = torch.Generator().manual_seed(0)
    logits = _logits(schema, generator)
    rows = [{"gender": "man", "upper": "red t-shirt"}, {"gender": "woman"}, {"hair": "long black hair"}]
    targets = torch.stack([layout.encode(r) for r in rows])
    indices = torch.tensor([[g.labels.index(schema.validate(r)[g.name]) for g in schema.groups] for r in rows])
    expected = sum(
        torch.nn.functional.cross_entropy(logits[g.name], indices[:, i]) for i, g in enumerate(schema.groups)
    )
    assert torch.allclose(attribute_loss(logits, targets, layout), expected, atol=1e-5)


def test_masked_groups_add_nothing_and_partial_labels_sum_the_allowed_probabilities(schema, layout):
    generator = torch.Generator().manual_seed(1)
    logits = _logits(schema, generator)
    masked = {g: MASKED for g in schema.group_names}
    everything = torch.stack([layout.encode(masked)] * 3)
    assert attribute_loss(logits, everything, layout) == 0
    short = group_label(["t-shirt", "polo shirt"], None)
    targets = torch.stack([layout.encode(masked | {"upper": short})] * 3)
    upper = schema.group("upper")
    chosen = [i for i, v in enumerate(upper.values, 1) if v.item in ("t-shirt", "polo shirt") and v.specific]
    probabilities = torch.softmax(logits["upper"], dim=1)[:, chosen].sum(dim=1)
    assert torch.allclose(attribute_loss(logits, targets, layout), -probabilities.log().mean(), atol=1e-5)
    # the colour head gets no push towards any colour: moving every colour logit together changes nothing
    weights = torch.tensor([[1.0] * 6, [3.0] * 6, [0.0] * 6])
    weighted = (-(probabilities.log()) * weights[:, 2]).sum() / weights[:, 2].sum()
    assert torch.allclose(attribute_loss(logits, targets, layout, weights), weighted, atol=1e-5)


def test_training_logits_are_the_heads_logits_with_open_factors_detached(schema, layout):
    model = _model(schema)
    pixels = torch.randn(3, 3, *SMALL, generator=torch.Generator().manual_seed(2))
    masked = {g: MASKED for g in schema.group_names}
    rows = [
        {"gender": "man", "upper": "red t-shirt"},
        masked | {"upper": group_label(["t-shirt", "vest"])},
        masked | {"hair": group_label(["short hair", "long hair"], ["black"])},
    ]
    targets = torch.stack([layout.encode(r) for r in rows])
    logits = training_logits(model, pixels, targets, layout)
    reference = model(pixels)
    assert all(torch.allclose(logits[g], reference[g], atol=1e-6) for g in reference)
    # a label that says the item but not the colour trains no colour head and no joint bias
    only_item = torch.stack([layout.encode(rows[1])] * 3)
    model.zero_grad()
    attribute_loss(training_logits(model, pixels, only_item, layout), only_item, layout).backward()
    upper = model.heads["upper"]
    assert upper.item.weight.grad.abs().sum() > 0
    assert upper.colour.weight.grad.abs().sum() == 0 and upper.bias.grad.abs().sum() == 0
    assert all(
        p.grad is None or p.grad.abs().sum() == 0
        for n, p in model.heads.named_parameters()
        if not n.startswith("upper.")
    )


def test_a_few_training_steps_lower_the_loss_on_a_fixed_batch(schema, layout):
    model = _model(schema)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(8, 3, *SMALL, generator=generator)
    rows = [{"gender": "man" if i % 2 else "woman", "upper": "red t-shirt" if i % 3 else "unknown"} for i in range(8)]
    targets = torch.stack([layout.encode(r) for r in rows])
    losses = [train_step(model, optimizer, pixels, targets, layout) for _ in range(12)]
    assert losses[-1] < 0.6 * losses[0]


def test_balance_weights_are_inverse_frequency_normalised_and_capped(schema):
    rows = [{"gender": "man"}] * 6 + [{"gender": "woman"}] * 2
    plain = balance_weights(rows, schema, power=1.0)
    gender = schema.group_names.index("gender")
    # inverse frequencies 8/(2*6) and 8/(2*2), mean over the examples 1: man 2/3, woman 2
    assert plain[:6, gender].tolist() == pytest.approx([2 / 3] * 6) and plain[6:, gender].tolist() == pytest.approx(
        [2, 2]
    )
    root = balance_weights(rows, schema, power=0.5)
    assert float((root[:, gender]).mean()) == pytest.approx(1.0)
    assert root[6, gender] / root[0, gender] == pytest.approx(3**0.5)
    capped = balance_weights(rows, schema, power=1.0, cap=1.5)
    assert capped[6, gender] == pytest.approx(1.5)
    masked = balance_weights([{g: MASKED for g in schema.group_names}], schema)
    assert masked.tolist() == [[1.0] * 6]
    with pytest.raises(ValueError, match="balance power"):
        balance_weights(rows, schema, power=-1)


def test_labelled_images_are_the_model_input_with_seeded_augmentation(schema, layout):
    examples = _examples(6)
    config = _model(schema).config
    plain = LabelledImages(examples, layout, config)
    pixels, targets, weights = plain[3]
    assert torch.equal(pixels, normalised_tensor(examples[3][0], config.image_size))
    assert torch.equal(targets, layout.encode(examples[3][1])) and weights.tolist() == [1.0] * 6
    flipped = LabelledImages(examples, layout, config, Augmentation("flip"), seed=7)
    assert torch.equal(flipped[(2, 1)][0], flipped[(2, 1)][0])  # the same (epoch, index): the same image
    mirrored = [not torch.equal(flipped[(e, 1)][0], plain[1][0]) for e in range(20)]
    assert 4 <= sum(mirrored) <= 16  # epochs differ
    with pytest.raises(ValueError, match="expected weights of shape"):
        LabelledImages(examples, layout, config, weights=torch.ones(2, 6))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 0}, "steps must be at least 1, got 0"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"workers": -1}, "workers must be at least 0"),
        ({"lr": 0.0}, "lr must be a positive number"),
        ({"lr": float("nan")}, "lr must be a positive number"),
        ({"weight_decay": -1.0}, "weight_decay must be a number >= 0"),
        ({"augment": "hue"}, "augment must be one of"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"patience": 2}, "patience .* needs eval_every"),
    ],
)
def test_bad_training_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainingSettings(**kwargs)


def test_training_is_deterministic_whatever_the_worker_count_and_reports_how(schema):
    settings = TrainingSettings(steps=3, batch_size=2, lr=1e-2, augment="full", seed=1)
    states = []
    for workers in (0, 1):
        model = _model(schema)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        record = train(model, _examples(5), replace(settings, workers=workers))  # 6 images: more than one epoch
        states.append(model.state_dict())
        assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert record["steps"] == 3 and record["batch_size"] == 2 and record["images"] == 6 and record["lr"] == 1e-2
    assert record["seconds"] >= 0 and record["images_per_second"] > 0 and record["history"] == []


def test_a_resumed_run_continues_exactly(schema, tmp_path, monkeypatch):
    settings = TrainingSettings(steps=6, batch_size=2, lr=1e-2, augment="full", eval_every=2, checkpoint_every=2)
    weights = torch.rand(7, 6, generator=torch.Generator().manual_seed(9))
    straight = _model(schema)
    expected = train(straight, _examples(7), settings, validation=_examples(3), weights=weights)
    import spac.predictor.training as training

    real_step, calls = training.train_step, []

    def killed_at_step_5(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(training, "train_step", killed_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train(_model(schema), _examples(7), settings, validation=_examples(3), weights=weights, checkpoint_dir=tmp_path)
    assert load_state(tmp_path)["step"] == 4
    monkeypatch.setattr(training, "train_step", real_step)
    resumed = _model(schema, seed=5)  # other initial weights: the checkpoint's replace them
    record = train(
        resumed, _examples(7), settings, validation=_examples(3), weights=weights, checkpoint_dir=tmp_path, resume=True
    )
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in straight.state_dict().items())
    assert record["history"] == expected["history"] and record["steps"] == 6
    with pytest.raises(ValueError, match="cannot resume .* lr was 0.01, now 0.02"):
        train(
            _model(schema),
            _examples(7),
            replace(settings, lr=2e-2),
            validation=_examples(3),
            weights=weights,
            checkpoint_dir=tmp_path,
            resume=True,
        )


def test_resume_without_a_checkpoint_starts_fresh_and_a_bad_one_is_one_line(schema, tmp_path):
    record = train(
        _model(schema), _examples(4), TrainingSettings(steps=1, batch_size=2), checkpoint_dir=tmp_path, resume=True
    )
    assert record["steps"] == 1
    (tmp_path / "train_state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable training state"):
        train(
            _model(schema), _examples(4), TrainingSettings(steps=1, batch_size=2), checkpoint_dir=tmp_path, resume=True
        )
    torch.save({"step": 1, "torch_rng": torch.get_rng_state()}, tmp_path / "train_state.pt")  # an older trainer's
    with pytest.raises(ValueError, match="written by an older version of the trainer"):
        train(
            _model(schema), _examples(4), TrainingSettings(steps=1, batch_size=2), checkpoint_dir=tmp_path, resume=True
        )


def test_validation_keeps_the_best_weights_and_early_stopping_stops(schema, monkeypatch):
    import spac.predictor.training as training

    losses = iter([5.0, 4.0, 4.5, 4.6, 4.7, 1.0])
    snapshots = {}
    real_scores = training.validation_scores

    def scripted(model, dataset, *args, **kwargs):
        scores = real_scores(model, dataset, *args, **kwargs)
        scores["loss"] = next(losses)
        snapshots[len(snapshots) + 1] = {k: v.clone() for k, v in model.state_dict().items()}
        return scores

    monkeypatch.setattr(training, "validation_scores", scripted)
    model = _model(schema)
    settings = TrainingSettings(steps=12, batch_size=2, lr=1e-2, eval_every=2, patience=2)
    record = train(model, _examples(6), settings, validation=_examples(2))
    assert [h["step"] for h in record["history"]] == [2, 4, 6, 8]  # stopped after two scorings without progress
    assert record["stopped_early"] and record["best_step"] == 4 and record["best_validation_loss"] == 4.0
    assert record["steps"] == 8
    assert all(torch.equal(v, snapshots[2][k]) for k, v in model.state_dict().items())  # the best one is kept


def test_validation_scores_report_the_masked_loss_and_labelled_group_accuracy(schema, layout):
    model = _model(schema).eval()
    examples = [
        (image, {g: MASKED for g in schema.group_names} | {"gender": group_label(["man"])}) for image, _ in _examples(4)
    ]
    scores = validation_scores(model, LabelledImages(examples, layout, model.config), batch_size=3)
    assert set(scores["groups"]) == {"gender"} and 0 <= scores["groups"]["gender"] <= 1 and scores["loss"] > 0
    assert scores["mean_accuracy"] == scores["groups"]["gender"]


def test_bf16_autocast_trains_on_a_cpu(schema):
    model = _model(schema)
    record = train(model, _examples(4), TrainingSettings(steps=2, batch_size=2, precision="bf16"))
    assert record["precision"] == "bf16" and all(
        torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point()
    )


def test_as_labels_passes_partial_labels_and_makes_attribute_dicts_exact(schema):
    partial = {"upper": group_label(["t-shirt"])}
    assert (
        as_labels(partial, schema)["upper"] == group_label(["t-shirt"]) and as_labels(partial, schema)["hair"] is MASKED
    )
    assert as_labels({"gender": "man"}, schema) == exact_labels({"gender": "man"}, schema)
    assert as_labels({"gender": "man"}, schema)["hair"] == group_label([UNKNOWN], [NO_COLOUR])


class _FixedPredictor:
    """Stands in for a predictor: answers from a list, in order, and records the batch sizes it was given."""

    def __init__(self, schema, answers):
        self.schema, self.answers, self.calls = schema, list(answers), []
        self.config = PredictorConfig.for_schema(schema, TINY_BACKBONE, image_size=(16, 8))

    def predict_tensors(self, batch):
        self.calls.append(len(batch))
        answers, self.answers = self.answers[: len(batch)], self.answers[len(batch) :]
        return [Prediction(self.schema.validate(a), {}) for a in answers]


def test_evaluate_gives_per_group_accuracy_and_majority_baseline_a_batch_at_a_time(schema):
    examples = [
        (Image.new("RGB", (8, 8)), truth)
        for truth in (
            {"gender": "man", "upper": "red t-shirt"},
            {"gender": "man"},
            {"gender": "woman"},
            {"gender": "man"},
        )
    ]
    answers = [{"gender": "man", "upper": "red t-shirt"}, {"gender": "woman"}, {"gender": "woman"}, {"gender": "man"}]
    model = _FixedPredictor(schema, answers)
    report = evaluate(model, iter(examples), batch_size=3)
    assert model.calls == [3, 1]
    assert report["examples"] == 4
    assert report["groups"]["gender"] == {"accuracy": 0.75, "majority_baseline": 0.75, "labelled": 4}
    assert report["groups"]["upper"] == {"accuracy": 1.0, "majority_baseline": 0.75, "labelled": 4}
    assert report["groups"]["hair"]["accuracy"] == 1.0  # unknown everywhere, a class of rendered labels
    assert report["mean_accuracy"] == pytest.approx((0.75 + 5 * 1.0) / 6)
    assert set(report["groups"]) == set(schema.group_names)
    with pytest.raises(ValueError, match="no examples"):
        evaluate(model, [])


def test_predict_examples_returns_predictions_and_labels_in_order(schema):
    model = _model(schema).eval()
    predictions, labels = predict_examples(model, _examples(5), batch_size=2, workers=1)
    assert len(predictions) == 5 and labels == [a for _, a in _examples(5)]
    report = evaluate(model, _examples(5), batch_size=2)
    assert report["examples"] == 5 and all(0 <= r["accuracy"] <= 1 for r in report["groups"].values())
    assert report["groups"]["gender"]["majority_baseline"] == pytest.approx(3 / 5)
