import json
import random

import numpy as np
import pytest
import torch

from common.errors import InputError
from common.training import (
    PrecisionError,
    SettingsChanged,
    autocast,
    capture_rng_state,
    changed_settings,
    check_precision,
    check_same_settings,
    grad_scaler,
    optimizer_step,
    resolve_precision,
    restore_rng_state,
)

CPU = torch.device("cpu")


def test_auto_precision_is_bf16_on_cuda_and_fp32_on_a_cpu():
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"
    assert check_precision("fp16") == "fp16"  # a name alone: the device is checked where training starts


@pytest.mark.parametrize(
    "name, message",
    [("fp16", "--precision fp16 needs --device cuda"), ("fp8", "precision must be one of fp32, bf16, fp16, got 'fp8'")],
)
def test_a_precision_the_device_cannot_train_in_is_one_line_input_error(name, message):
    for call in (lambda: resolve_precision(name, CPU), lambda: autocast(CPU, name), lambda: grad_scaler(CPU, name)):
        with pytest.raises(PrecisionError, match=message) as caught:
            call()
        assert isinstance(caught.value, InputError)


def test_fp16_autocast_needs_cuda():  # moved from tests/spac/predictor/test_training.py with the autocast helper
    with pytest.raises(ValueError, match="fp16 needs --device cuda"):
        autocast(CPU, "fp16")


def test_autocast_computes_in_the_precision_and_fp32_not_at_all():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast(CPU, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast(CPU, "fp32"):
        assert (a @ b).dtype == torch.float32


def test_a_disabled_scaler_steps_like_the_plain_optimizer_and_clipping_bounds_the_gradient():
    def trained(step):
        torch.manual_seed(0)
        layer = torch.nn.Linear(3, 1)
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
        step(layer, optimizer, (layer(torch.ones(2, 3)) * 100).sum())
        return layer

    def plain(layer, optimizer, loss):
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    scaler = grad_scaler(CPU, "bf16")
    assert not scaler.is_enabled()
    through_kit = trained(lambda layer, optimizer, loss: optimizer_step(loss, optimizer, scaler))
    assert torch.equal(through_kit.weight, trained(plain).weight)
    clipped = trained(lambda layer, optimizer, loss: optimizer_step(loss, optimizer, scaler, clip_grad=1.0))
    start = trained(lambda layer, optimizer, loss: None)
    moved = torch.cat([(clipped.weight - start.weight).flatten(), clipped.bias - start.bias])
    assert moved.norm().item() == pytest.approx(0.1, rel=1e-4)  # lr x a gradient of norm 1


def test_rng_state_restores_all_generators() -> None:  # moved from tests/plip/test_checkpoint.py with the code
    state = capture_rng_state(CPU)
    assert "cuda" not in state  # only for a CUDA device
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(json.loads(json.dumps(state)), CPU)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == draws


def test_a_damaged_rng_state_raises_for_the_caller_to_name_the_file():
    state = capture_rng_state()
    with pytest.raises(ValueError):
        restore_rng_state({**state, "torch": "!!"})
    with pytest.raises(KeyError):
        restore_rng_state({"python": state["python"]})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_cuda_generator_is_captured_and_restored():
    device = torch.device("cuda")
    state = json.loads(json.dumps(capture_rng_state(device)))
    draw = torch.rand(1, device=device).item()
    restore_rng_state(state, device)
    assert torch.rand(1, device=device).item() == draw


def test_changed_settings_name_each_difference_with_both_values():
    saved = {"seed": 1, "input": {"path": "a", "format": "folder"}, "same": 2, "styles": ["x"], "limit": 5}
    current = {"seed": 2, "input": {"path": "b", "format": "folder"}, "same": 2, "styles": ["x", "y"]}
    assert changed_settings(saved, current) == [
        "input.path was 'a', now 'b'",
        "limit was 5, now None",
        "seed was 1, now 2",
        "styles was ['x'], now ['x', 'y']",
    ]
    assert changed_settings(saved, saved) == []


def test_a_resume_with_other_settings_is_refused_in_one_line():
    check_same_settings("runs/a", {"seed": 0}, {"seed": 0})
    with pytest.raises(SettingsChanged) as caught:
        check_same_settings("runs/a", {"seed": 0, "lr": 0.1}, {"seed": 1, "lr": 0.2})
    assert str(caught.value) == (
        "cannot resume from runs/a: lr was 0.1, now 0.2; seed was 0, now 1; resume with the same settings"
    )
    assert isinstance(caught.value, InputError)
    with pytest.raises(SettingsChanged, match=r"seed was 0, now 1; pass --overwrite$"):
        check_same_settings("out", {"seed": 0}, {"seed": 1}, remedy="pass --overwrite")
