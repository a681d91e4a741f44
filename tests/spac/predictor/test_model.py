import io
import json
import math
import pickle
import struct
import time
from dataclasses import fields
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file, save_file

from common.imaging import normalised_tensor
from spac.attributes import UNKNOWN, load_schema, parse_schema
from spac.predictor.model import (
    CONFIG_RULES,
    PredictorConfig,
    PredictorError,
    build_predictor,
    check_predictor,
    decode,
    load_predictor,
)
from spac.predictor.training import evaluate
from spac.render.training_source import evaluation_people

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "templates" / "attributes.yaml"
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
    colours = sorted({v.colour for v in group.values if v.colour is not None})  # bare values have none
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
    raw["schema_version"] += 1
    raw["palettes"]["shoes"].append("green")
    other = parse_schema(raw, "other.yaml")
    with pytest.raises(
        ValueError, match=rf"version {raw['schema_version'] - 1}.*'shoes'.*version {raw['schema_version']}.*retrain"
    ):
        load_predictor(tmp_path / "p", schema=other)


def test_missing_predictor_files_are_named(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="no predictor directory") as missing:
        load_predictor(tmp_path / "nowhere")
    assert missing.value.filename == str(tmp_path / "nowhere")
    model.save(tmp_path / "p")
    (tmp_path / "p" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="lacks model.safetensors"):
        check_predictor(tmp_path / "p")


def _config(directory: Path, **change) -> None:
    path = directory / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))


def _backbone(directory: Path, **change) -> None:
    backbone = json.loads((directory / "config.json").read_text())["backbone"]
    _config(directory, backbone={**backbone, **change})


def _without(directory: Path, key: str) -> None:
    config = json.loads((directory / "config.json").read_text())
    del config[key]
    (directory / "config.json").write_text(json.dumps(config))


def _tensors(directory: Path, change) -> None:
    path = directory / "model.safetensors"
    state = load_file(str(path))
    change(state)
    save_file(state, str(path))


def _sparse_weights(directory: Path, shape: list[int], data_offsets: list[int] | None = None) -> None:
    """A weights file whose header declares one float32 tensor of ``shape``, its data a sparse hole."""
    size = 4 * math.prod(shape)
    header = json.dumps({"w": {"dtype": "F32", "shape": shape, "data_offsets": data_offsets or [0, size]}}).encode()
    with open(directory / "model.safetensors", "wb") as stream:
        stream.write(struct.pack("<Q", len(header)) + header)
        stream.truncate(8 + len(header) + size)


def _torch_pickle() -> bytes:
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(2)}, buffer)
    return buffer.getvalue()


BROKEN_PREDICTORS = {
    # name: (break the saved directory, file the message names, words it holds)
    "weights random bytes": (
        lambda d: (d / "model.safetensors").write_bytes(bytes(range(256)) * 8),
        "model.safetensors",
        "not a readable safetensors file",
    ),
    "weights empty": (lambda d: (d / "model.safetensors").write_bytes(b""), "model.safetensors", "header too small"),
    "weights a pickle": (
        lambda d: (d / "model.safetensors").write_bytes(pickle.dumps({"w": [1.0]})),
        "model.safetensors",
        "not a readable safetensors file",
    ),
    "weights a torch.save file": (
        lambda d: (d / "model.safetensors").write_bytes(_torch_pickle()),
        "model.safetensors",
        "not a readable safetensors file",
    ),
    "weights of another shape": (
        lambda d: _tensors(d, lambda s: s.update({"heads.gender.bias": torch.zeros(9)})),
        "model.safetensors",
        "heads.gender.bias has shape [9], config.json implies [3]",
    ),
    "weights lack a tensor": (
        lambda d: _tensors(d, lambda s: s.pop("heads.gender.bias")),
        "model.safetensors",
        "missing 'heads.gender.bias'",
    ),
    "weights packed 4-bit": (
        lambda d: _tensors(
            d, lambda s: s.update({"heads.gender.bias": torch.zeros(3, dtype=torch.uint8).view(torch.float4_e2m1fn_x2)})
        ),
        "model.safetensors",
        "heads.gender.bias is stored as F4",
    ),
    "weights complex": (
        lambda d: _tensors(d, lambda s: s.update({"heads.gender.bias": torch.zeros(3, dtype=torch.complex64)})),
        "model.safetensors",
        "heads.gender.bias is stored as C64",
    ),
    "weights have an extra tensor": (
        lambda d: _tensors(d, lambda s: s.update({"extra": torch.zeros(1)})),
        "model.safetensors",
        "unexpected 'extra'",
    ),
    "config implies other shapes": (lambda d: _backbone(d, hidden_sizes=[8, 32]), "model.safetensors", "shape"),
    "config not JSON": (lambda d: (d / "config.json").write_text("{not json"), "config.json", "invalid JSON"),
    "config not UTF-8": (lambda d: (d / "config.json").write_bytes(b"\xff\xfe{}"), "config.json", "not UTF-8"),
    "config nested too deeply": (
        lambda d: (d / "config.json").write_text("[" * 100_000),
        "config.json",
        "invalid JSON",
    ),
    "config a list": (lambda d: (d / "config.json").write_text("[]"), "config.json", "expected a JSON object"),
    "config unexpected key": (lambda d: _config(d, colour=1), "config.json", "unexpected key 'colour'"),
    "config lacks labels": (lambda d: _without(d, "labels"), "config.json", "missing key 'labels'"),
    "config lacks backbone": (lambda d: _without(d, "backbone"), "config.json", "missing key 'backbone'"),
    "backbone a string": (lambda d: _config(d, backbone="resnet"), "config.json", "'backbone' must be a JSON object"),
    "backbone a list": (lambda d: _config(d, backbone=[1, 2]), "config.json", "'backbone' must be a JSON object"),
    "backbone depths a string": (lambda d: _backbone(d, depths="abc"), "config.json", "'backbone.depths' must be"),
    "backbone depths negative": (lambda d: _backbone(d, depths=[-1, 1]), "config.json", "'backbone.depths' must be"),
    "backbone absurdly deep": (lambda d: _backbone(d, depths=[10**6, 1]), "config.json", "integers from 1 to 100"),
    "backbone 1,000 stages": (
        lambda d: _backbone(d, depths=[100] * 1000, hidden_sizes=[8] * 1000),
        "config.json",
        "one per stage (at most 8)",
    ),
    "backbone 20,000 channels": (
        lambda d: _backbone(d, hidden_sizes=[8, 20_000]),
        "config.json",
        "'backbone.hidden_sizes' must be a list of integers from 1 to 8192",
    ),
    "backbone wide stem": (
        lambda d: _backbone(d, embedding_size=10**6),
        "config.json",
        "'backbone.embedding_size' must be a positive integer (at most 8192)",
    ),
    "bands absurd": (
        lambda d: _config(d, bands=10**6),
        "config.json",
        "'bands' must be a positive integer (at most 64)",
    ),
    "weights hold 300M values": (
        lambda d: _sparse_weights(d, [300_000_000]),
        "model.safetensors",
        "holds 300,000,000 values, more than a predictor may have (200,000,000)",
    ),
    "weights offsets outside the file": (
        lambda d: _sparse_weights(d, [4], [0, 10**9]),
        "model.safetensors",
        "tensor 'w' does not lie inside the file",
    ),
    "backbone no hidden sizes": (
        lambda d: _backbone(d, hidden_sizes=[]),
        "config.json",
        "'backbone.hidden_sizes' must be",
    ),
    "backbone sizes per stage": (
        lambda d: _backbone(d, hidden_sizes=[8, 16, 32]),
        "config.json",
        "one entry per stage",
    ),
    "backbone layer type": (lambda d: _backbone(d, layer_type="dense"), "config.json", "'basic' or 'bottleneck'"),
    "backbone activation": (lambda d: _backbone(d, hidden_act="nope"), "config.json", "activation name"),
    "backbone unexpected key": (lambda d: _backbone(d, colour=1), "config.json", "unexpected key 'backbone.colour'"),
    "image size a number": (
        lambda d: _config(d, image_size=256),
        "config.json",
        "'image_size' must be [height, width]",
    ),
    "image size a string": (lambda d: _config(d, image_size=["a", 128]), "config.json", "'image_size' must be"),
    "image size fractional": (lambda d: _config(d, image_size=[256.5, 128]), "config.json", "'image_size' must be"),
    "image size negative": (lambda d: _config(d, image_size=[-256, 128]), "config.json", "'image_size' must be"),
    "image size three numbers": (lambda d: _config(d, image_size=[256, 128, 3]), "config.json", "'image_size' must"),
    "std zero": (lambda d: _config(d, std=[0.2, 0, 0.2]), "config.json", "'std' must be a list of three positive"),
    "mean not finite": (
        lambda d: (d / "config.json").write_text(
            (d / "config.json").read_text().replace('"mean": [\n    0.357', '"mean": [\n    NaN')
        ),
        "config.json",
        "'mean' must be",
    ),
    "bands zero": (lambda d: _config(d, bands=0), "config.json", "'bands' must be a positive integer"),
    "bands a boolean": (lambda d: _config(d, bands=True), "config.json", "'bands' must be a positive integer"),
    "labels a list": (lambda d: _config(d, labels=["gender"]), "config.json", "'labels' must be a JSON object"),
    "labels not lists": (lambda d: _config(d, labels={"gender": 3}), "config.json", "'labels' must be a JSON object"),
    "labels of another schema": (
        lambda d: _config(d, labels={"gender": ["unknown", "man"]}),
        "config.json",
        "differ from the current schema",
    ),
}


@pytest.mark.parametrize("name", BROKEN_PREDICTORS)
def test_broken_predictor_is_one_line_value_error_naming_the_file(model, tmp_path, name):
    breaks, file_name, words = BROKEN_PREDICTORS[name]
    model.save(tmp_path / "p")
    breaks(tmp_path / "p")
    for load in (check_predictor, load_predictor):
        with pytest.raises(ValueError) as refused:
            load(tmp_path / "p")
        message = str(refused.value)
        assert "\n" not in message and message.startswith(str(tmp_path / "p" / file_name)), message
        assert words in message and "weights_only" not in message


def test_a_huge_config_is_refused_before_any_model_is_built(model, tmp_path, monkeypatch):
    # Issue 19: 1,000 stages of 100 blocks took 159 s and 4.9 GB to refuse; a config within the bounds whose
    # weights file (sparse, matching its header) holds too many values is refused from the header alone.
    built = []
    monkeypatch.setattr("spac.predictor.model.ResNetModel", lambda *a, **k: built.append(1))
    for number, (breaks, file_name) in enumerate(
        (
            (lambda d: _backbone(d, depths=[100] * 1000, hidden_sizes=[8] * 1000), "config.json"),
            (lambda d: _sparse_weights(d, [300_000_000]), "model.safetensors"),
        )
    ):
        model.save(tmp_path / str(number))
        breaks(tmp_path / str(number))
        started = time.perf_counter()
        with pytest.raises(PredictorError, match=f"^{tmp_path / str(number) / file_name}: "):
            load_predictor(tmp_path / str(number))
        assert time.perf_counter() - started < 5 and built == []


def test_config_rules_cover_every_field():
    assert set(CONFIG_RULES) == {f.name for f in fields(PredictorConfig)}


def test_check_predictor_accepts_a_saved_and_the_bundled_predictor(model, tmp_path):
    model.save(tmp_path / "p")
    assert check_predictor(tmp_path / "p") is None and check_predictor() is None


def test_preprocess_uses_the_models_image_size_and_normalisation(schema):
    config = PredictorConfig.for_schema(
        schema, TINY_BACKBONE, image_size=(64, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)
    )
    model = build_predictor(config, schema)
    image = Image.new("RGBA", (40, 90), (255, 0, 51, 128))
    pixels = model.preprocess(image)
    assert pixels.shape == (3, 64, 32)
    assert torch.equal(pixels, normalised_tensor(image, (64, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))
    assert torch.allclose(pixels[:, 0, 0], torch.tensor([2.0, -2.0, (51 / 255 - 0.5) / 0.25]))


def test_decode_picks_argmax_and_its_probability_and_applies_min_confidence():
    labels = {"gender": ["unknown", "man", "woman"], "shoes": ["unknown", "black boots"]}
    probabilities = {
        "gender": torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.45, 0.05]]),
        "shoes": torch.tensor([[0.3, 0.7], [0.4, 0.6]]),
    }
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


def test_preprocess_batch_equals_stacking_preprocess_of_each_image():
    schema = load_schema()
    model = build_predictor(PredictorConfig.for_schema(schema, TINY_BACKBONE, image_size=(64, 32)), schema)
    images = [Image.effect_noise((50, 90), sigma) for sigma in (5, 60)]
    assert torch.equal(model.preprocess_batch(images), torch.stack([model.preprocess(image) for image in images]))
