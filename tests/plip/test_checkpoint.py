import inspect
import json
import random
import struct
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

import plip
from common.training import capture_rng_state
from plip.checkpoint import (
    IMAGE_KEY,
    TEXT_KEY,
    CheckpointError,
    TrainerState,
    check_like,
    error_reason,
    is_complete,
    load_checkpoint_directory,
    load_checkpoint_model,
    load_released,
    load_torch_file,
    load_training_state,
    load_weights,
    recover_checkpoint,
    save_checkpoint,
    save_released,
)
from plip.config import TextConfig
from plip.masking import mask_batch
from plip.text_encoder import build_bert
from tests.plip._tiny_model import TINY_BERT, single_thread, tiny_model  # noqa: F401  (autouse fixture)

RN50_VISION = {"layers": [3, 4, 6, 3], "width": 64, "heads": 8, "output_dim": 768, "image_size": [256, 128]}
# The released layout: RN50 image encoder; a tiny BERT stands in for bert-base (hidden = 768 keeps the
# release's "no projection" text keys while staying small).
RELEASED_LIKE = {
    "vision": RN50_VISION,
    "text": {"bert": TINY_BERT | {"hidden_size": 768, "num_attention_heads": 12}},
    "tic": {"weight": 0},
    "iap": {"weight": 0},
}


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
        image=lambda s: (
            {k: v for k, v in s.items() if not k.startswith("attnpool.c_proj")}
            | {"fc.weight": torch.zeros(1), "attnpool.positional_embedding": torch.zeros(17, 2048)}
        ),
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
        "config.json",
        "model.safetensors",
        "optimizer.pt",
        "tokenizer",
        "trainer_state.json",
    ]
    assert json.loads((directory / "config.json").read_text())["text"]["pretrained"] is False

    loaded = load_checkpoint_directory(directory)
    with torch.no_grad():
        expected, actual = model(_batch(model)), loaded(_batch(loaded))
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key

    fresh_optimizer = torch.optim.AdamW(loaded.parameters(), lr=1e-3)
    resumed = load_training_state(directory, fresh_optimizer)
    assert resumed.step == 1 and resumed.data_position == {"shard": 3, "sample": 17}
    assert torch.equal(
        fresh_optimizer.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"]
    )


def test_saving_again_replaces_and_bad_directories_are_refused(tmp_path) -> None:
    model = tiny_model(tic={"weight": 0}, iap={"weight": 0})
    save_checkpoint(tmp_path / "ckpt", model, trainer_state=TrainerState(step=1))
    save_checkpoint(tmp_path / "ckpt", model)
    assert not (tmp_path / "ckpt" / "trainer_state.json").exists() and not (tmp_path / "ckpt.partial").exists()
    with pytest.raises(CheckpointError, match="missing config.json"):
        load_checkpoint_directory(tmp_path)


def test_broken_json_files_give_one_line_errors(tmp_path) -> None:
    state_file = tmp_path / "trainer_state.json"
    for content, message in (
        ('{"step": 1, "stepz": 2}', r"unknown key\(s\) \['stepz'\]"),
        ("[1]", "expected a JSON object"),
        ("{broken", "not valid JSON"),
    ):
        state_file.write_text(content)
        with pytest.raises(CheckpointError, match=message):
            load_training_state(tmp_path)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        load_checkpoint_directory(tmp_path)


# --- the loading guard: damaged, hostile or foreign files give one line naming the file ------------------


def _one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message and "weights_only" not in message  # never torch's advice to load unsafely
    return message


class _RunsCode:
    """A pickle whose loading would run code (it creates the marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_an_empty_or_cut_released_file_is_one_line_naming_it(released_file, tmp_path) -> None:
    model = tiny_model(tic={"weight": 0}, iap={"weight": 0})
    empty = tmp_path / "empty.pth.tar"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError) as error:
        load_released(model, empty)
    assert _one_line(error) == f"{empty}: not a readable torch checkpoint (empty file)"
    with pytest.raises(CheckpointError, match="empty file"):
        load_checkpoint_model(empty, preset="RN-tiny")
    cut = tmp_path / "cut.pth.tar"
    cut.write_bytes(released_file[0].read_bytes()[:5000])
    with pytest.raises(CheckpointError) as error:
        load_released(model, cut)
    assert _one_line(error).startswith(f"{cut}: not a readable torch checkpoint (")


def test_a_pickle_that_runs_code_is_refused_unrun_and_without_unsafe_advice(tmp_path) -> None:
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth.tar"
    torch.save({IMAGE_KEY: _RunsCode(marker), TEXT_KEY: {}}, evil)
    with pytest.raises(CheckpointError) as error:
        load_torch_file(evil)
    message = _one_line(error)
    assert message.startswith(f"{evil}: not a readable torch checkpoint (") and "GLOBAL io.open" in message
    assert "safe_globals" not in message  # allow-listing a global is the same unsafe advice
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ([1, 2], "expected a dict with ImgEncoder_state_dict and TxtEncoder_state_dict, found list"),
        ({IMAGE_KEY: {}}, r"expected a dict with .* found \['ImgEncoder_state_dict'\]"),
        ({IMAGE_KEY: [torch.zeros(1)], TEXT_KEY: {}}, "ImgEncoder_state_dict: expected a state dict .* found list"),
        (
            {IMAGE_KEY: {"conv1.weight": [1.0]}, TEXT_KEY: {}},
            r"ImgEncoder_state_dict: .* 1 non-tensor key \(conv1.weight\)",
        ),
        ({IMAGE_KEY: {}, TEXT_KEY: "weights"}, "TxtEncoder_state_dict: expected a state dict .* found str"),
    ],
)
def test_a_released_file_of_the_wrong_shape_is_one_line(tmp_path, content, message) -> None:
    path = tmp_path / "odd.pth.tar"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=message) as error:
        load_released(tiny_model(tic={"weight": 0}, iap={"weight": 0}), path)
    assert _one_line(error).startswith(str(path))


def test_error_reason_keeps_the_cause_and_drops_torch_advice() -> None:
    advice = (
        "Weights only load failed. In PyTorch 2.6, we changed the default value of the `weights_only` argument "
        "in `torch.load` from `False` to `True`. Re-running `torch.load` with `weights_only` set to `False` will "
        "likely succeed, but it can result in arbitrary code execution. Do it only if you got the file from a "
        "trusted source.\nPlease file an issue with the following so that we can make `weights_only=True` "
        "compatible with your use case: WeightsUnpickler error: \n\nUnsupported operand 110\n\nCheck the "
        "documentation of torch.load to learn more about types accepted by default with weights_only https://x"
    )
    assert error_reason(RuntimeError(advice)) == "Unsupported operand 110"
    assert error_reason(EOFError()) == "EOFError"
    assert (
        error_reason(RuntimeError("failed finding central directory. This is an internal error. If you"))
        == "failed finding central directory"
    )
    assert (
        error_reason(
            RuntimeError(
                "WeightsUnpickler error: Unsupported global: GLOBAL io.open was not an allowed "
                "global by default. Please use `torch.serialization.add_safe_globals([open])`"
            )
        )
        == "Unsupported global: GLOBAL io.open was not an allowed global by default"
    )


def _trained_checkpoint(folder):
    model = tiny_model(seed=5, tic={"weight": 0}, iap={"weight": 0})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(_batch(model))["image_features"].sum().backward()
    optimizer.step()
    return save_checkpoint(folder, model, optimizer, TrainerState(step=1)), model


def test_a_damaged_optimizer_file_is_one_line_naming_it(tmp_path) -> None:
    directory, model = _trained_checkpoint(tmp_path / "ckpt")
    optimizer_file = directory / "optimizer.pt"
    good = optimizer_file.read_bytes()
    state = torch.load(optimizer_file, weights_only=True)
    first = next(iter(state["state"]))
    wrong_shape = {
        **state,
        "state": {**state["state"], first: {**state["state"][first], "exp_avg": torch.zeros(3, 3, 3, 3, 3)}},
    }
    damages = [
        (lambda: optimizer_file.write_bytes(b""), "not a readable torch checkpoint (empty file)"),
        (lambda: optimizer_file.write_bytes(good[: len(good) // 2]), "not a readable torch checkpoint ("),
        (lambda: torch.save([1, 2], optimizer_file), "expected an optimizer state dict"),
        (
            lambda: torch.save({**state, "param_groups": state["param_groups"] * 2}, optimizer_file),
            "does not fit the optimizer (",
        ),
        (lambda: torch.save(wrong_shape, optimizer_file), "does not fit the optimizer (state 'exp_avg' is"),
        (lambda: optimizer_file.unlink(), "missing optimizer.pt"),
    ]
    for damage, message in damages:
        optimizer_file.write_bytes(good)
        damage()
        with pytest.raises(CheckpointError) as error:
            load_training_state(directory, torch.optim.AdamW(model.parameters(), lr=1e-3))
        assert message in _one_line(error) and "optimizer.pt" in str(error.value), message


def test_damaged_model_weights_or_config_are_one_line_naming_the_file(tmp_path) -> None:
    directory, _ = _trained_checkpoint(tmp_path / "ckpt")
    weights = directory / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) - 100])
    with pytest.raises(CheckpointError) as error:
        load_checkpoint_directory(directory)
    assert _one_line(error).startswith(f"{weights}: not readable safetensors weights")
    weights.write_bytes(good)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "vision": {**config["vision"], "width": 16}}))
    with pytest.raises(CheckpointError) as error:
        load_checkpoint_directory(directory)
    assert _one_line(error).startswith(f"{weights} does not match the model: ")
    assert "mis-shaped keys (image_encoder.conv1.weight [4, 3, 3, 3] vs model [8, 3, 3, 3]" in str(error.value)
    (directory / "config.json").write_text(json.dumps({**config, "vision": 7}))
    with pytest.raises(CheckpointError, match="config.json: not a PLIP model config"):
        load_checkpoint_directory(directory)


def test_a_damaged_trainer_state_is_one_line(tmp_path) -> None:
    directory, _ = _trained_checkpoint(tmp_path / "ckpt")
    path = directory / "trainer_state.json"
    for content, message in (
        ('{"step": "3"}', "'step' must be a non-negative integer"),
        ('{"step": -1}', "'step' must be a non-negative integer"),
        ('{"extra": []}', "'extra' must be a JSON object"),
        (b"\xff\xfe", "not valid JSON (not UTF-8 text)"),
        ("[" * 100000, "not valid JSON"),
    ):
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(CheckpointError) as error:
            load_training_state(directory)
        assert _one_line(error).startswith(str(path)) and message in str(error.value)


def test_check_like_refuses_what_would_set_unknown_attributes_or_types() -> None:
    reference = {"base_lrs": [0.1, 0.2], "last_epoch": 3, "lr_lambdas": [None], "flag": False}
    check_like({"base_lrs": [1, 0.5], "last_epoch": 0, "lr_lambdas": [{"x": 1}]}, reference, "scheduler")
    for value, message in (
        ({"base_lrs": [0.1]}, r"scheduler.base_lrs must be a list of 2, got list of 1"),
        ({"last_epoch": 1.5}, "scheduler.last_epoch must be int, got float"),
        ({"flag": 0}, "scheduler.flag must be bool, got int"),
        ({"step": lambda: 0}, r"unknown key\(s\) \['step'\]"),
        ([1], "scheduler must be an object, got list"),
    ):
        with pytest.raises(ValueError, match=message):
            check_like(value, reference, "scheduler")


def _bert_folder(folder, pickled: bool):
    """A saved tiny BertModel: model.safetensors, or pytorch_model.bin (a pickle) when ``pickled``."""
    torch.manual_seed(0)
    bert = BertModel(BertConfig(**TINY_BERT))
    bert.save_pretrained(str(folder))
    if pickled:
        (folder / "model.safetensors").unlink()
        torch.save(bert.state_dict(), folder / "pytorch_model.bin")
    return folder


def test_a_checkpoint_text_model_loads_from_safetensors_only(tmp_path) -> None:
    directory, _ = _trained_checkpoint(tmp_path / "ckpt")
    config = json.loads((directory / "config.json").read_text())
    for pickled in (False, True):
        bert = _bert_folder(directory / f"bert-{pickled}", pickled)
        text = {**config["text"], "pretrained": True, "name_or_path": str(bert), "bert": None}
        (directory / "config.json").write_text(json.dumps({**config, "text": text}))
        if not pickled:
            assert load_checkpoint_directory(directory).text_encoder.hidden_size == 32  # a safetensors folder loads
            continue
        with pytest.raises(CheckpointError) as error:
            load_checkpoint_directory(directory)
        assert "from safetensors weights (a checkpoint's text model never loads pickled ones" in _one_line(error)
    # Chosen by the user rather than by a checkpoint, a pickled folder still loads through transformers.
    assert build_bert(TextConfig(name_or_path=str(directory / "bert-True"))).config.hidden_size == 32


def test_a_crash_between_the_swap_renames_is_recovered(tmp_path) -> None:
    model = tiny_model(tic={"weight": 0}, iap={"weight": 0})
    directory = save_checkpoint(tmp_path / "last", model, trainer_state=TrainerState(step=1))
    # The next save crashed after renaming last/ to last.old/ and before renaming last.partial/ to last/.
    directory.rename(tmp_path / "last.old")
    (tmp_path / "last.partial").mkdir()
    assert recover_checkpoint(directory) == directory and is_complete(directory, training_state=False)
    assert load_training_state(directory).step == 1 and not (tmp_path / "last.old").exists()
    save_checkpoint(
        directory, model, trainer_state=TrainerState(step=2), extra_weights={"head.safetensors": torch.nn.Linear(2, 3)}
    )
    head = torch.nn.Linear(2, 3)
    load_weights(head, directory / "head.safetensors")
    assert load_training_state(directory).step == 2 and not (tmp_path / "last.partial").exists()
    with pytest.raises(CheckpointError, match=r"head.safetensors does not match the model: 2 missing keys"):
        load_weights(torch.nn.Sequential(torch.nn.Linear(2, 3)), directory / "head.safetensors")


def test_every_torch_load_goes_through_the_guard() -> None:
    root = Path(plip.__file__).parent
    calls = {str(p.relative_to(root)): p.read_text().count("torch.load(") for p in root.rglob("*.py")}
    assert {name: count for name, count in calls.items() if count} == {"checkpoint.py": 1}
    assert "weights_only=True" in inspect.getsource(load_torch_file)


def _edited_config(directory, section: str, change: dict) -> None:
    config = json.loads((directory / "config.json").read_text())
    target = config["text"]["bert"] if section == "text.bert" else config[section]
    target.update(change)
    (directory / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "section, change, message",
    [
        ("text.bert", {"hidden_size": "big"}, "text.bert.hidden_size must be an integer from 1 to 4096, got 'big'"),
        ("text.bert", {"num_hidden_layers": 2.5}, "text.bert.num_hidden_layers must be an integer from 1 to 48"),
        ("vision", {"width": 4096}, "vision.width must be an integer from 1 to 256, got 4096"),
        ("text", {"max_length": 50_000_000}, "text.max_length must be an integer from 1 to 512"),
    ],
)
def test_an_out_of_bounds_config_is_one_line_before_any_model_is_built(
    tmp_path, monkeypatch, section, change, message
) -> None:
    # Issue 19: a traceback, 2.6 GB allocated, or the process aborted in the tokenizer's padding.
    directory, _ = _trained_checkpoint(tmp_path / "ckpt")
    _edited_config(directory, section, change)
    built = []
    monkeypatch.setattr("plip.checkpoint.PLIPModel", lambda *args, **kwargs: built.append(args))
    with pytest.raises(CheckpointError) as error:
        load_checkpoint_directory(directory)
    assert _one_line(error).startswith(f"{directory / 'config.json'}: not a PLIP model config (")
    assert message in _one_line(error) and built == []


def test_weights_that_do_not_fit_the_config_are_refused_from_the_header_before_building(tmp_path, monkeypatch):
    directory, _ = _trained_checkpoint(tmp_path / "ckpt")
    _edited_config(directory, "vision", {"width": 256})  # within the bounds: 60M values, the file holds 0.9M
    devices = []
    real = plip.checkpoint.PLIPModel
    monkeypatch.setattr(
        "plip.checkpoint.PLIPModel",
        lambda *args, **kwargs: devices.append(torch.empty(0).device.type) or real(*args, **kwargs),
    )
    with pytest.raises(CheckpointError) as error:
        load_checkpoint_directory(directory)
    assert _one_line(error).startswith(f"{directory / 'model.safetensors'} does not match the model: ")
    assert "image_encoder.conv1.weight [4, 3, 3, 3] vs model [128, 3, 3, 3]" in _one_line(error)
    assert "the file holds" in _one_line(error) and devices == ["meta"]  # only the shapes were built


def test_a_weights_file_declaring_too_many_values_is_refused_from_its_header(tmp_path) -> None:
    directory, _ = _trained_checkpoint(tmp_path / "ckpt")
    header = json.dumps({"w": {"dtype": "F32", "shape": [2**31], "data_offsets": [0, 2**33]}}).encode()
    with open(directory / "model.safetensors", "wb") as stream:  # 8 GB declared, a sparse hole on disk
        stream.write(struct.pack("<Q", len(header)) + header)
        stream.truncate(8 + len(header) + 2**33)
    with pytest.raises(CheckpointError, match=r"holds 2,147,483,648 values, more than a PLIP model may have"):
        load_checkpoint_directory(directory)
