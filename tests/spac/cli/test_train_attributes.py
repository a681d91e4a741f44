"""`spac train-attributes`: flags checked at parse time, a deterministic small run end to end."""
import json

import pytest

from spac.attributes import load_schema
from spac.cli.support import run_main
from spac.cli.train_attributes import build_parser, cli_main, format_table
from spac.predictor import load_predictor
from spac.render.training_source import EVAL_SEED_BASE, MAX_SEED

TINY = ["--depths", "1,1", "--hidden-sizes", "8,16", "--threads", "1"]


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "argument --steps: must be at least 1, got 0"),
    (["--lr", "-1"], "argument --lr: must be a positive number"),
    (["--seed", str(MAX_SEED)], f"argument --seed: must be below {MAX_SEED}"),
    (["--seed", "-1"], "argument --seed: must be >= 0"),
    (["--workers", "-1"], "argument --workers: must be >= 0"),
    (["--device", "nope"], "argument --device: invalid device 'nope'"),
    (["--depths", "1,0"], "argument --depths: expected positive integers"),
    (["--depths", "1,1,1", "--hidden-sizes", "8,16"], "--depths has 3 stages but --hidden-sizes has 2"),
    (["--backbone", "/no/such/resnet", "--depths", "1,1"], "only apply to a preset backbone"),
])
def test_bad_values_exit_2_with_one_line(tmp_path, capsys, argv, message):
    assert run_main("spac train-attributes", cli_main, ["--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spac train-attributes: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv", [[], ["--out", "x", "--steps", "many"], ["--out", "x", "--depths", "1,a"],
                                  ["--out", "x", "--weights-dtype", "int8"]])
def test_bad_flags_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        cli_main(argv)
    assert exit_.value.code == 2
    assert "spac train-attributes: error:" in capsys.readouterr().err


def test_an_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "o").write_text("")
    assert run_main("spac train-attributes", cli_main, ["--out", str(tmp_path / "o")]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err


def test_help_explains_every_flag():
    parser = build_parser()
    for action in parser._actions:
        assert action.help, action.dest


def test_format_table_lists_every_group_and_the_mean():
    report = {"groups": {"gender": {"accuracy": 0.5, "majority_baseline": 0.25}}, "mean_accuracy": 0.5}
    assert format_table(report).splitlines() == [
        "group         accuracy  majority", "gender           0.500     0.250", "mean             0.500"]


def test_training_command_writes_a_loadable_model_and_eval_report_deterministically(tmp_path, capsys):
    argv = ["--steps", "2", "--batch-size", "3", "--eval-identities", "3", "--quiet", *TINY]
    assert cli_main(["--out", str(tmp_path / "a"), *argv]) == 0
    assert cli_main(["--out", str(tmp_path / "b"), *argv, "--workers", "1"]) == 0
    assert capsys.readouterr().out == ""
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    report = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert report["examples"] == 3 and set(report["groups"]) == set(load_schema().group_names)
    assert report["first_identity_seed"] == EVAL_SEED_BASE and report["training"]["seed"] == 0
    assert all(0 <= r["accuracy"] <= 1 for r in report["groups"].values())
    model = load_predictor(tmp_path / "a")
    assert model.config.backbone["hidden_sizes"] == [8, 16]
    assert model.config.training["images"] == 6
    assert model.config.training == report["training"]
