import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from spac.attributes import UNKNOWN, load_schema, parse_schema
from spac.attribute_training import evaluate
from spac.imaging import normalised_tensor
from spac.predictor import PredictorConfig, build_predictor, decode, load_predictor
from spac.render.training_source import evaluation_people

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "templates" / "attributes.yaml"
TINY_BACKBONE = {"depths": [1, 1], "hidden_sizes": [8, 16], "embedding_size": 8, "layer_type": "basic"}


@pytest.fixture(scope="module")
def schema():
    return load_schema()


@pytest.fixture()
def model(schema):
    torch.manual_seed(0)
    return build_predictor(PredictorConfig.for_schema(schema, TINY_BACKBONE), schema).eval()


def _batch(n=3, seed=1):
    return torch.randn(n, 3, 256, 128, generator=torch.Generator().manual_seed(seed))


def test_heads_give_one_distribution_per_group_over_its_labels(model, schema):
    logits = model(_batch())
    assert list(logits) == list(schema.group_names)
    for group in schema.groups:
        assert logits[group.name].shape == (3, len(group.labels))


def test_factorised_head_adds_item_colour_and_joint_bias(model, schema):
    head, group = model.heads["upper"], schema.group("upper")
    with torch.no_grad():
        head.bias.normal_()
        features = torch.randn(2, 16 * model.config.bands)
        logits = head(features)
        item, colour = head.item(features), head.colour(features)
    colours = sorted({v.colour for v in group.values})
    items = [i.name for i in group.items]
    index = group.labels.index("red jacket")
    expected = item[:, items.index("jacket") + 1] + colour[:, colours.index("red")] + head.bias[index]
    assert torch.allclose(logits[:, index], expected)
    assert torch.allclose(logits[:, 0], item[:, 0] + head.bias[0])  # unknown has no colour term


def test_save_load_round_trip_gives_identical_outputs(model, tmp_path):
    model.save(tmp_path / "p")
    loaded = load_predictor(tmp_path / "p")
    batch = _batch()
    assert loaded.config == model.config
    for group, logits in model(batch).items():
        assert torch.equal(logits, loaded(batch)[group])
    assert loaded.predict_tensors(batch) == model.predict_tensors(batch)


def test_float16_weights_load_back_as_float32_and_close(model, tmp_path):
    model.save(tmp_path / "half", dtype=torch.float16)
    loaded = load_predictor(tmp_path / "half")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    batch = _batch()
    for group, logits in model(batch).items():
        assert torch.allclose(logits, loaded(batch)[group], atol=0.05)


def test_model_trained_on_another_schema_is_refused(model, tmp_path):
    model.save(tmp_path / "p")
    raw = yaml.safe_load(SCHEMA_FILE.read_text())
    raw["schema_version"] = 2
    raw["palettes"]["shoes"].append("green")
    other = parse_schema(raw, "other.yaml")
    with pytest.raises(ValueError, match=r"version 1.*'shoes'.*version 2.*retrain"):
        load_predictor(tmp_path / "p", schema=other)


def test_bad_predictor_directories_give_one_line_errors(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="no predictor directory") as missing:
        load_predictor(tmp_path / "nowhere")
    assert missing.value.filename == str(tmp_path / "nowhere")
    model.save(tmp_path / "p")
    (tmp_path / "p" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="lacks model.safetensors"):
        load_predictor(tmp_path / "p")

    model.save(tmp_path / "q")
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    config["backbone"]["hidden_sizes"] = [8, 32]
    (tmp_path / "q" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"model.safetensors: .*shape"):
        load_predictor(tmp_path / "q")
    (tmp_path / "q" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config.json: invalid JSON"):
        load_predictor(tmp_path / "q")
    (tmp_path / "q" / "config.json").write_text(json.dumps({**config, "colour": 1}))
    with pytest.raises(ValueError, match=r"unexpected key 'colour'"):
        load_predictor(tmp_path / "q")


def test_preprocess_uses_the_models_image_size_and_normalisation(schema):
    config = PredictorConfig.for_schema(schema, TINY_BACKBONE, image_size=(64, 32), mean=(0.5, 0.5, 0.5),
                                        std=(0.25, 0.25, 0.25))
    model = build_predictor(config, schema)
    image = Image.new("RGBA", (40, 90), (255, 0, 51, 128))
    pixels = model.preprocess(image)
    assert pixels.shape == (3, 64, 32)
    assert torch.equal(pixels, normalised_tensor(image, (64, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))
    assert torch.allclose(pixels[:, 0, 0], torch.tensor([2.0, -2.0, (51 / 255 - 0.5) / 0.25]))


def test_decode_picks_argmax_and_its_probability_and_applies_min_confidence():
    labels = {"gender": ["unknown", "man", "woman"], "shoes": ["unknown", "black boots"]}
    probabilities = {"gender": torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.45, 0.05]]),
                     "shoes": torch.tensor([[0.3, 0.7], [0.4, 0.6]])}
    first, second = decode(probabilities, labels)
    assert first.attributes == {"gender": "woman", "shoes": "black boots"}
    assert first.confidences == pytest.approx({"gender": 0.7, "shoes": 0.7})
    assert second.attributes == {"gender": "unknown", "shoes": "black boots"}
    strict = decode(probabilities, labels, min_confidence=0.65)[1]
    assert strict.attributes == {"gender": "unknown", "shoes": UNKNOWN}
    assert strict.confidences["shoes"] == pytest.approx(0.6)  # the rejected value's probability is kept


def test_confidence_is_the_softmax_maximum_of_the_logits(model):
    batch = _batch(2)
    with torch.no_grad():
        logits = model(batch)
    predictions = model.predict_tensors(batch)
    for group, group_logits in logits.items():
        probabilities = torch.softmax(group_logits, dim=1)
        for row, prediction in enumerate(predictions):
            assert prediction.confidences[group] == pytest.approx(float(probabilities[row].max()), rel=1e-5)
            assert prediction.attributes[group] == model.config.labels[group][int(probabilities[row].argmax())]
    assert all(set(p.attributes.values()) == {UNKNOWN} for p in model.predict_tensors(batch, min_confidence=1.01))


def test_predict_handles_images_of_any_size_in_batches(model):
    colours = [(200, 30, 36), (40, 90, 210), (22, 22, 24), (236, 206, 40), (128, 128, 128)]
    images = [Image.new("RGB", (30 + 17 * i, 70 + 40 * i), c) for i, c in enumerate(colours)]
    predictions = model.predict(images, batch_size=2)
    assert len(predictions) == len(images)
    whole = model.predict_tensors(torch.stack([model.preprocess(im) for im in images]))
    assert [p.attributes for p in predictions] == [p.attributes for p in whole]
    for batched, single in zip(predictions, whole):  # batch composition changes float rounding only
        assert batched.confidences == pytest.approx(single.confidences, rel=1e-4)
    assert model.predict([]) == []
    with pytest.raises(ValueError, match="batch_size"):
        model.predict(images, batch_size=0)


def test_pretrained_backbone_loads_from_a_local_path(model, schema, tmp_path):
    model.backbone.save_pretrained(tmp_path / "resnet")
    config = PredictorConfig.for_schema(schema, backbone={}, pretrained=str(tmp_path / "resnet"))
    fresh = build_predictor(config, schema)
    assert fresh.config.backbone["hidden_sizes"] == [8, 16]
    for name, tensor in model.backbone.state_dict().items():
        assert torch.equal(tensor, fresh.backbone.state_dict()[name])
    with pytest.raises(ValueError, match="cannot load a pretrained ResNet"):
        build_predictor(PredictorConfig.for_schema(schema, pretrained=str(tmp_path / "none")), schema)


def test_bundled_demo_model_recognises_held_out_rendered_people():
    torch.set_num_threads(2)
    report = evaluate(load_predictor(), evaluation_people(32))
    assert report["mean_accuracy"] > 0.6
    for group, result in report["groups"].items():
        assert result["accuracy"] > result["majority_baseline"], group


@pytest.mark.parametrize("change, message", [
    ({"image_size": 256}, "'image_size' must be a JSON list"),
    ({"labels": {"gender": 3}}, "every entry of 'labels' must be a JSON list"),
    ({"labels": ["gender"]}, "'labels' and 'backbone' must be JSON objects"),
])
def test_malformed_config_fields_give_one_line_errors(model, tmp_path, change, message):
    model.save(tmp_path / "p")
    config = json.loads((tmp_path / "p" / "config.json").read_text())
    (tmp_path / "p" / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ValueError, match=message):
        load_predictor(tmp_path / "p")
