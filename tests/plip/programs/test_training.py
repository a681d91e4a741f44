import argparse
import json

import pytest

from common.cli import CliError
from common.training import SettingsChanged
from plip.programs.training import (
    LossWindow,
    MetricsLog,
    build_optimizer,
    check_resume_settings,
    checkpoint_to_resume,
    freeze_text_layers,
    parse_milestones,
)
from tests.plip._tiny_model import single_thread, tiny_model  # noqa: F401  (autouse fixture)


def test_resumed_metrics_log_drops_later_lines_and_a_line_cut_short_by_a_kill(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"ste', encoding="utf-8")
    MetricsLog(log, resumed_step=2)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2]


def test_frozen_text_layers_get_no_gradient_and_the_text_group_learns_slower():
    model = tiny_model(tic={"weight": 0}, iap={"weight": 0})
    freeze_text_layers(model, 0)
    assert not any(p.requires_grad for p in model.text_encoder.encoder.parameters())
    assert all(p.requires_grad for p in model.image_encoder.parameters())
    fresh = tiny_model(tic={"weight": 0}, iap={"weight": 0})
    freeze_text_layers(fresh, 1)  # the RN-tiny preset mean-pools, so the BERT pooler is unused and frozen too
    groups = {g["name"]: g for g in build_optimizer(fresh, 1.0, 0.1, 0.0).param_groups}
    assert groups["text"]["lr"] == pytest.approx(0.1) and groups["main"]["lr"] == 1.0
    last_layer = fresh.text_encoder.encoder.encoder.layer[-1]
    assert {id(p) for p in groups["text"]["params"]} == {id(p) for p in last_layer.parameters()}


def test_milestones_parse_at_argument_time():
    assert parse_milestones("30, 50.5") == (30.0, 50.5) and parse_milestones("") == ()
    for bad in ("5,2", "0", "a"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_milestones(bad)


def test_loss_window_means_since_its_start():
    window = LossWindow()
    window.add({"loss": 1.0})
    window.add({"loss": 3.0})
    assert window.means() == {"loss": 2.0} and window.steps == 2
    state = window.state()
    carried = LossWindow(**state)  # as a resumed run restores it
    assert carried.means() == window.means() and carried.steps == 2 and carried.seconds() >= state["seconds"]


def test_resume_checks_name_the_first_changed_setting(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert checkpoint_to_resume(tmp_path, named=True) == tmp_path
    assert checkpoint_to_resume(tmp_path / "none", named=False) is None
    with pytest.raises(CliError, match="not a checkpoint folder"):
        checkpoint_to_resume(tmp_path / "none", named=True)
    check_resume_settings(tmp_path, {"seed": 0}, {"seed": 0, "newer": 1})  # a newer setting is not compared
    with pytest.raises(SettingsChanged, match="seed was 0, now 1"):
        check_resume_settings(tmp_path, {"seed": 0}, {"seed": 1})
    with pytest.raises(CliError, match="holds no resume state"):
        check_resume_settings(tmp_path, None, {"seed": 0})
