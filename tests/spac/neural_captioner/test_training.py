"""The captioner's trainer: label ids, settings, an exact resume, validation with early stopping, and (slow) a
tiny captioner trained on rendered people that names the colour of held-out people and writes two styles."""

from dataclasses import replace

import pytest
import torch

import spac.neural_captioner.training as training
from common.errors import InputError
from common.training_loop import load_state
from spac.attributes import load_schema
from spac.language import extract_attributes
from spac.neural_captioner.config import NeuralCaptionerConfig, preset_generator
from spac.neural_captioner.model import build_captioner
from spac.neural_captioner.tokenizer import train_tokenizer
from spac.neural_captioner.training import CaptionerTrainingSettings, CaptionExample, label_ids, train_captioner
from spac.render.training_source import evaluation_people, training_people
from tests.spac.neural_captioner.tiny import tiny_captioner, tiny_tokenizer

# Two caption shapes as the two styles: the same attributes, told differently.
FORMS = ("a {upper}.", "the person wears a {upper} and {lower}.")


def _examples(count, seed=0):
    schema, people = load_schema(), training_people(seed, count)
    examples = []
    for image, attributes in (people[i] for i in range(count)):
        for style, form in enumerate(FORMS):
            examples.append(CaptionExample(image, form.format(**attributes), style, label_ids(attributes, schema)))
    return examples


def test_label_ids_follow_the_schema_and_leave_unknown_and_foreign_phrases_out():
    schema = load_schema()
    ids = label_ids({"gender": "woman", "upper": "red t-shirt", "lower": "glass trousers"}, schema)
    assert ids[0] == schema.group("gender").labels.index("woman")
    assert ids[2] == schema.group("upper").labels.index("red t-shirt")
    assert ids[1] == ids[3] == ids[4] == ids[5] == -1


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"steps": 0}, "steps must be at least 1"),
        ({"max_tokens": 1}, "max_tokens must be at least 2"),
        ({"lr": float("nan")}, "lr must be a positive number"),
        ({"clip_grad": -1.0}, "clip_grad must be a number >= 0"),
        ({"patience": 2}, "patience .* needs eval_every"),
        ({"precision": "fp8"}, "precision must be one of"),
    ],
)
def test_bad_settings_are_one_line(changes, message):
    with pytest.raises(InputError, match=message):
        CaptionerTrainingSettings(**changes)


def test_a_resumed_run_continues_bit_exactly(tmp_path, monkeypatch):
    tokenizer = tiny_tokenizer([e.text for e in _examples(6)])
    settings = CaptionerTrainingSettings(
        steps=6, batch_size=3, lr=1e-2, max_tokens=12, eval_every=2, checkpoint_every=2
    )
    examples, validation = _examples(5), _examples(2, seed=1)
    straight = tiny_captioner(tokenizer)  # in training mode: GPT-2's dropout draws from torch's generator
    expected = train_captioner(straight, examples, settings, validation=validation)

    real_step, calls = training.optimizer_step, []

    def killed_at_step_5(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(training, "optimizer_step", killed_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train_captioner(tiny_captioner(tokenizer), examples, settings, validation=validation, checkpoint_dir=tmp_path)
    assert load_state(tmp_path)["step"] == 4
    monkeypatch.setattr(training, "optimizer_step", real_step)
    torch.manual_seed(123)  # whatever the generator's state before: the checkpoint's replaces it
    resumed = tiny_captioner(tokenizer, seed=5)  # other initial weights: the checkpoint's replace them
    record = train_captioner(resumed, examples, settings, validation=validation, checkpoint_dir=tmp_path, resume=True)
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in straight.state_dict().items())
    assert record["history"] == expected["history"] and record["steps"] == 6
    with pytest.raises(InputError, match="cannot resume .* lr was 0.01, now 0.02"):
        train_captioner(
            tiny_captioner(tokenizer),
            examples,
            replace(settings, lr=2e-2),
            validation=validation,
            checkpoint_dir=tmp_path,
            resume=True,
        )


def test_validation_keeps_the_best_weights_and_early_stopping_stops(monkeypatch):
    losses = iter([5.0, 4.0, 4.5, 4.6, 1.0])
    snapshots = {}

    def scored(model, dataset, *args):
        snapshots[len(snapshots) + 1] = model.prefix.position.detach().clone()
        return {"loss": next(losses), "language": 0.0, "attributes": 0.0}

    monkeypatch.setattr(training, "validation_loss", scored)
    model = tiny_captioner()
    settings = CaptionerTrainingSettings(steps=20, batch_size=2, lr=1e-2, max_tokens=8, eval_every=1, patience=2)
    record = train_captioner(model, _examples(2), settings, validation=_examples(1, seed=1))
    assert record["steps"] == 4 and record["stopped_early"] and record["best_step"] == 2
    assert torch.equal(model.prefix.position, snapshots[2])


def _upper_colour(text):
    return next((m.colour for m in extract_attributes(text) if m.group == "upper"), None)


@pytest.mark.slow
def test_a_trained_tiny_captioner_names_the_colour_of_held_out_people_in_two_styles():
    torch.set_num_threads(2)
    schema = load_schema()
    examples = _examples(400)
    tokenizer = train_tokenizer([e.text for e in examples], 400)
    config = NeuralCaptionerConfig.for_schema(
        schema,
        ("short", "long"),
        preset_generator("tiny", len(tokenizer), tokenizer.eos_token_id),
        backbone={"depths": [1, 1], "hidden_sizes": [8, 16], "embedding_size": 8, "layer_type": "basic"},
        image_size=(64, 32),
        prefix_length=2,
    )
    torch.manual_seed(0)
    model = build_captioner(config, tokenizer, schema)
    train_captioner(model, examples, CaptionerTrainingSettings(steps=500, batch_size=32, lr=3e-3, max_tokens=16))
    held_out = evaluation_people(60)
    truth = [schema.value("upper", held_out[i][1]["upper"]).colour for i in range(60)]
    pixels = model.preprocess_batch([held_out[i][0] for i in range(60)])
    short, long = model.generate(pixels, 0, 16), model.generate(pixels, 1, 16)
    colours = sorted({v.colour for v in schema.group("upper").values if v.colour})
    right = sum(_upper_colour(text) == colour for text, colour in zip(short, truth)) / len(truth)
    assert right > 3 / len(colours)  # far above chance (one colour in len(colours))
    assert all(a != b for a, b in zip(short, long))  # the two style encoders: two texts for one image
    assert sum(text.startswith("the person wears") for text in long) > 50
