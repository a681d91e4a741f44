"""`spac train-attributes`: flags checked at parse time; small deterministic runs on rendered people, on PA-100K
files mixed with rendered people (validation, early stopping, balancing, checkpoints, an exact --resume) and from a
locally saved pretrained backbone, offline."""

import json

import pytest

from common.cli import run_main
from spac.attributes import load_schema
from spac.cli.train_attributes import build_parser, cli_main, format_table
from spac.predictor.datasets.pa100k import write_pa100k
from spac.predictor.model import load_predictor
from spac.render.training_source import EVAL_SEED_BASE, MAX_SEED, training_people

TINY = ["--depths", "1,1", "--hidden-sizes", "8,16", "--threads", "1", "--image-size", "64x32"]


@pytest.fixture(scope="module")
def pa100k(tmp_path_factory):
    root = tmp_path_factory.mktemp("pa100k")
    people = training_people(3, 12)
    write_pa100k(
        root,
        {
            "train": [people[i] for i in range(8)],
            "val": [people[i] for i in range(8, 10)],
            "test": [people[i] for i in range(10, 12)],
        },
    )
    return root


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steps", "0"], "argument --steps: must be at least 1, got 0"),
        (["--lr", "-1"], "argument --lr: must be a positive number"),
        (["--seed", str(MAX_SEED)], f"argument --seed: must be below {MAX_SEED}"),
        (["--seed", "-1"], "argument --seed: must be >= 0"),
        (["--workers", "-1"], "argument --workers: must be >= 0"),
        (["--device", "nope"], "argument --device: invalid device 'nope'"),
        (["--depths", "1,0"], "argument --depths: expected positive integers"),
        (["--depths", "1,1,1", "--hidden-sizes", "8,16"], "--depths has 3 stages but --hidden-sizes has 2"),
        (["--backbone", "/no/such/resnet", "--depths", "1,1"], "only apply to a preset backbone"),
        (["--data", "cifar:/x"], "argument --data: unknown data kind 'cifar'"),
        (["--data", "pa100k"], "argument --data: pa100k needs a location"),
        (["--data", "rendered:0"], "argument --data: rendered:N needs a positive count"),
        (["--image-size", "256"], "argument --image-size: expected HEIGHTxWIDTH"),
        (["--patience", "2"], "--patience needs --eval-every"),
        (["--precision", "fp16"], "--precision fp16 needs --device cuda"),
        (["--data", "pa100k:/no/such/folder"], "no PA-100K annotation.mat"),
        (["--data", "mined:/no/labels.parquet"], "needs --images ROOT"),
        (["--data", "rendered", "--data", "rendered"], "the same --data source is given twice"),
    ],
)
def test_bad_values_exit_2_with_one_line(tmp_path, capsys, argv, message):
    assert run_main("spac train-attributes", cli_main, ["--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spac train-attributes: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--out", "x", "--steps", "many"],
        ["--out", "x", "--depths", "1,a"],
        ["--out", "x", "--weights-dtype", "int8"],
        ["--out", "x", "--augment", "hue"],
    ],
)
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
    report = {
        "groups": {
            "gender": {"accuracy": 0.5, "majority_baseline": 0.25},
            "hair": {"accuracy": None, "majority_baseline": None},
        },
        "mean_accuracy": 0.5,
    }
    assert format_table(report).splitlines() == [
        "group         accuracy  majority",
        "gender           0.500     0.250",
        "hair                 -         -",
        "mean             0.500",
    ]


def test_training_on_rendered_people_writes_a_loadable_model_and_eval_report_deterministically(tmp_path, capsys):
    argv = ["--steps", "2", "--batch-size", "3", "--eval-identities", "3", "--quiet", *TINY]
    assert cli_main(["--out", str(tmp_path / "a"), *argv]) == 0
    assert cli_main(["--out", str(tmp_path / "b"), *argv, "--workers", "1"]) == 0
    assert capsys.readouterr().out == ""
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    report = json.loads((tmp_path / "a" / "eval.json").read_text())
    rendered = report["sources"]["rendered"]
    assert rendered["examples"] == 3 and set(rendered["groups"]) == set(load_schema().group_names)
    assert rendered["first_evaluation_seed"] == EVAL_SEED_BASE and report["training"]["seed"] == 0
    assert all(0 <= r["accuracy"] <= 1 for r in rendered["groups"].values())
    model = load_predictor(tmp_path / "a")
    assert model.config.backbone["hidden_sizes"] == [8, 16] and model.config.image_size == (64, 32)
    training = model.config.training
    assert training["images"] == 6 and training["augment"] == "flip" and training["balance"] == "none"
    assert training == report["training"] and not (tmp_path / "a" / "history.json").exists()


def test_a_dataset_mixed_with_rendered_people_validates_checkpoints_and_resumes_exactly(
    tmp_path, pa100k, capsys, monkeypatch
):
    argv = [
        "--data",
        f"pa100k:{pa100k}",
        "--data",
        "rendered",
        "--steps",
        "4",
        "--batch-size",
        "4",
        "--eval-every",
        "2",
        "--patience",
        "3",
        "--val-limit",
        "3",
        "--checkpoint-every",
        "2",
        "--eval-identities",
        "2",
        *TINY,
    ]
    assert cli_main(["--out", str(tmp_path / "straight"), *argv]) == 0
    printed = capsys.readouterr().out
    assert "PA-100K (val, 2 images)" in printed and "rendered (evaluation identities, 2 images)" in printed
    report = json.loads((tmp_path / "straight" / "eval.json").read_text())
    assert set(report["sources"]) == {"rendered", "PA-100K"}
    assert report["sources"]["PA-100K"]["groups"]["hair"]["labelled"] == 0  # PA-100K says nothing of hair
    training = report["training"]
    assert training["augment"] == "full" and training["balance"] == "sqrt" and training["best_step"] in (2, 4)
    history = json.loads((tmp_path / "straight" / "history.json").read_text())
    assert [h["step"] for h in history] == [2, 4]
    assert (tmp_path / "straight" / "checkpoint" / "train_state.pt").is_file()

    # the same run killed during step 3 (after the step-2 checkpoint), then resumed: the same weights
    import spac.predictor.training as training

    real_step, calls = training.train_step, []

    def killed_in_step_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(training, "train_step", killed_in_step_3)
    with pytest.raises(KeyboardInterrupt):
        cli_main(["--out", str(tmp_path / "cut"), *argv, "--quiet"])
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    monkeypatch.setattr(training, "train_step", real_step)
    assert cli_main(["--out", str(tmp_path / "cut"), *argv, "--resume", "--quiet"]) == 0
    assert (tmp_path / "cut" / "model.safetensors").read_bytes() == (
        tmp_path / "straight" / "model.safetensors"
    ).read_bytes()
    assert json.loads((tmp_path / "cut" / "history.json").read_text()) == history


def test_resume_with_other_flags_is_refused_in_one_line(tmp_path, pa100k, capsys):
    argv = [
        "--out",
        str(tmp_path / "o"),
        "--data",
        f"pa100k:{pa100k}",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--checkpoint-every",
        "1",
        "--quiet",
        *TINY,
    ]
    assert cli_main(argv) == 0
    assert run_main("spac train-attributes", cli_main, [*argv, "--resume", "--lr", "0.01"]) == 2
    assert "cannot resume from" in capsys.readouterr().err


def test_a_locally_saved_pretrained_backbone_trains_offline(tmp_path, pa100k, monkeypatch):
    from transformers import ResNetConfig, ResNetModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ResNetModel(
        ResNetConfig(depths=[1, 1], hidden_sizes=[8, 16], embedding_size=8, layer_type="basic")
    ).save_pretrained(tmp_path / "resnet")
    (tmp_path / "resnet" / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]})
    )
    assert (
        cli_main(
            [
                "--out",
                str(tmp_path / "o"),
                "--data",
                f"pa100k:{pa100k}",
                "--backbone",
                str(tmp_path / "resnet"),
                "--steps",
                "2",
                "--batch-size",
                "2",
                "--threads",
                "1",
                "--image-size",
                "64x32",
                "--quiet",
            ]
        )
        == 0
    )
    model = load_predictor(tmp_path / "o")
    assert model.config.pretrained == str(tmp_path / "resnet") and model.config.backbone["hidden_sizes"] == [8, 16]
    assert model.config.mean == (0.485, 0.456, 0.406) and model.config.std == (0.229, 0.224, 0.225)
