import json
import random

import numpy as np
import pytest
import torch

from plip.checkpoint import (
    IMAGE_KEY,
    TEXT_KEY,
    CheckpointError,
    TrainerState,
    capture_rng_state,
    load_model,
    load_released,
    load_training_state,
    restore_rng_state,
    save_checkpoint,
    save_released,
)
from plip.masking import mask_batch
from tests.plip._tiny_model import TINY_BERT, single_thread, tiny_model  # noqa: F401  (autouse fixture)

RN50_VISION = {"layers": [3, 4, 6, 3], "width": 64, "heads": 8, "output_dim": 768, "image_size": [256, 128]}
# The released layout: RN50 image encoder; a tiny BERT stands in for bert-base (hidden = 768 keeps the
# release's "no projection" text keys while staying small).
RELEASED_LIKE = {"vision": RN50_VISION, "text": {"bert": TINY_BERT | {"hidden_size": 768, "num_attention_heads": 12}},
                 "tic": {"weight": 0}, "iap": {"weight": 0}}


@pytest.fixture(scope="module")
def released_file(tmp_path_factory):
    model = tiny_model(seed=1, preset="RN50", **RELEASED_LIKE)
    path = tmp_path_factory.mktemp("released") / "PLIP_MRN50.pth.tar"
    save_released(model, path)
    return path, model


def _rewrite(path, out, image=lambda s: s, text=lambda s: s):
    checkpoint = torch.load(path, weights_only=True)
    torch.save({IMAGE_KEY: image(dict(checkpoint[IMAGE_KEY])), TEXT_KEY: text(dict(checkpoint[TEXT_KEY]))}, out)
    return out


def test_released_file_has_the_released_keys(released_file) -> None:
    path, model = released_file
    checkpoint = torch.load(path, weights_only=True)
    assert set(checkpoint) == {IMAGE_KEY, TEXT_KEY}
    assert len(checkpoint[IMAGE_KEY]) == 339
    assert checkpoint[IMAGE_KEY]["attnpool.c_proj.weight"].shape == (768, 2048)
    bert_keys = {f"encoder.{k}" for k in model.text_encoder.encoder.state_dict()}
    assert set(checkpoint[TEXT_KEY]) == bert_keys  # text = "encoder." + a BertModel state dict, no projection
    assert "encoder.pooler.dense.weight" in bert_keys


def test_load_released_restores_both_encoders_and_tolerates_position_ids(released_file, tmp_path) -> None:
    path, source = released_file
    with_position_ids = _rewrite(
        path, tmp_path / "old.pth.tar", text=lambda s: s | {"encoder.embeddings.position_ids": torch.arange(64)[None]}
    )
    target = tiny_model(seed=2, preset="RN50", **RELEASED_LIKE)
    assert not torch.equal(target.image_encoder.attnpool.q_proj.weight, source.image_encoder.attnpool.q_proj.weight)
    load_released(target, with_position_ids)
    for mine, theirs in ((target.image_encoder, source.image_encoder), (target.text_encoder, source.text_encoder)):
        for (key, value), (_, expected) in zip(mine.state_dict().items(), theirs.state_dict().items()):
            assert torch.equal(value, expected), key


def test_wrong_keys_are_reported_precisely(released_file, tmp_path) -> None:
    path, _ = released_file
    broken = _rewrite(
        path,
        tmp_path / "broken.pth.tar",
        image=lambda s: {k: v for k, v in s.items() if not k.startswith("attnpool.c_proj")}
        | {"fc.weight": torch.zeros(1), "attnpool.positional_embedding": torch.zeros(17, 2048)},
    )
    model = tiny_model(preset="RN50", **RELEASED_LIKE)
    with pytest.raises(CheckpointError) as error:
        load_released(model, broken)
    message = str(error.value)
    assert f"{IMAGE_KEY} does not match the model" in message
    assert "2 missing keys (attnpool.c_proj.weight, attnpool.c_proj.bias)" in message
    assert "1 unexpected key (fc.weight)" in message
    assert "1 mis-shaped key (attnpool.positional_embedding [17, 2048] vs model [33, 2048])" in message
    # A text encoder with a different width is refused too, key by key.
    with pytest.raises(CheckpointError, match=rf"{TEXT_KEY} does not match the model: .*mis-shaped keys"):
        load_released(tiny_model(preset="RN50", **(RELEASED_LIKE | {"text": {}})), path)


def test_not_a_released_file(tmp_path) -> None:
    model = tiny_model(tic={"weight": 0}, iap={"weight": 0})
    torch.save({"state_dict": {}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="expected a dict with ImgEncoder_state_dict and TxtEncoder_state_dict"):
        load_released(model, tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_released(model, tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError):
        load_released(model, tmp_path / "absent.pth")


def _batch(model):
    torch.manual_seed(7)
    batch = mask_batch(["a man in a red shirt", "a woman in blue jeans"], model.tokenizer, 0.5, random.Random(0))
    return batch | {"images": torch.randn(2, 3, 64, 32), "identity_ids": torch.tensor([0, 1])}


def test_safetensors_round_trip_gives_identical_outputs(tmp_path) -> None:
    model = tiny_model(seed=3)
    # One training step so BN statistics and weights differ from a fresh init.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(_batch(model))["image_features"].sum().backward()
    optimizer.step()
    model.eval()
    state = TrainerState(step=1, epoch=0, data_position={"shard": 3, "sample": 17}, rng=capture_rng_state())
    directory = save_checkpoint(tmp_path / "ckpt", model, optimizer, state)
    assert sorted(p.name for p in directory.iterdir()) == [
        "config.json", "model.safetensors", "optimizer.pt", "tokenizer", "trainer_state.json"
    ]
    assert json.loads((directory / "config.json").read_text())["text"]["pretrained"] is False

    loaded = load_model(directory)
    with torch.no_grad():
        expected, actual = model(_batch(model)), loaded(_batch(loaded))
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key

    fresh_optimizer = torch.optim.AdamW(loaded.parameters(), lr=1e-3)
    resumed = load_training_state(directory, fresh_optimizer)
    assert resumed.step == 1 and resumed.data_position == {"shard": 3, "sample": 17}
    assert torch.equal(fresh_optimizer.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


def test_rng_state_restores_all_generators() -> None:
    state = capture_rng_state()
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(json.loads(json.dumps(state)))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == draws


def test_saving_again_replaces_and_bad_directories_are_refused(tmp_path) -> None:
    model = tiny_model(tic={"weight": 0}, iap={"weight": 0})
    save_checkpoint(tmp_path / "ckpt", model, trainer_state=TrainerState(step=1))
    save_checkpoint(tmp_path / "ckpt", model)
    assert not (tmp_path / "ckpt" / "trainer_state.json").exists() and not (tmp_path / "ckpt.partial").exists()
    with pytest.raises(CheckpointError, match="missing config.json"):
        load_model(tmp_path)


def test_broken_json_files_give_one_line_errors(tmp_path) -> None:
    state_file = tmp_path / "trainer_state.json"
    for content, message in (('{"step": 1, "stepz": 2}', r"unknown key\(s\) \['stepz'\]"), ("[1]", "expected a JSON object"),
                             ("{broken", "not valid JSON")):
        state_file.write_text(content)
        with pytest.raises(CheckpointError, match=message):
            load_training_state(tmp_path)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        load_model(tmp_path)
