import json

import pytest
import torch

from spac.attributes import load_schema
from spac.cli.support import run_main
from spac.predictor import PredictorConfig, build_predictor, load_predictor
from spac.train_attributes import (EVAL_SEED_BASE, MAX_SEED, TRAIN_STRIDE, attribute_loss, build_parser, cli_main,
                                   label_indices, train_step)

TINY = ["--depths", "1,1", "--hidden-sizes", "8,16", "--threads", "1"]


@pytest.fixture(scope="module")
def schema():
    return load_schema()


def test_label_indices_follow_the_schema_labels_with_unknown_as_zero(schema):
    visible = {"gender": "woman", "hair": "unknown", "upper": "red jacket", "lower": "unknown",
               "shoes": "black boots", "belongings": "phone"}
    indices = label_indices(visible, schema).tolist()
    assert indices[1] == indices[3] == 0
    assert [schema.groups[i].labels[k] for i, k in enumerate(indices)] == list(visible.values())


def test_attribute_loss_is_the_sum_of_group_cross_entropies():
    logits = {"a": torch.tensor([[2.0, 0.0]]), "b": torch.tensor([[0.0, 0.0, 0.0]])}
    targets = torch.tensor([[1, 2]])
    expected = torch.log(1 + torch.exp(torch.tensor(2.0))) + torch.log(torch.tensor(3.0))
    assert torch.allclose(attribute_loss(logits, targets), expected)


def test_a_few_training_steps_lower_the_loss_on_a_fixed_batch(schema):
    torch.manual_seed(0)
    config = PredictorConfig.for_schema(schema, {"depths": [1, 1], "hidden_sizes": [8, 16], "embedding_size": 8,
                                                 "layer_type": "basic"})
    model = build_predictor(config, schema)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(8, 3, 256, 128, generator=generator)
    targets = torch.stack([torch.randint(len(g.labels), (8,), generator=generator) for g in schema.groups], dim=1)
    losses = [train_step(model, optimizer, pixels, targets) for _ in range(12)]
    assert losses[-1] < 0.6 * losses[0]


def test_evaluation_identities_never_overlap_training_identities():
    assert EVAL_SEED_BASE > (MAX_SEED - 1) * TRAIN_STRIDE + (TRAIN_STRIDE - 1)


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be at least 1"),
    (["--lr", "-1"], "--lr must be a positive number"),
    (["--seed", str(MAX_SEED)], "--seed must be in"),
    (["--depths", "1,1,1", "--hidden-sizes", "8,16"], "--depths has 3 stages but --hidden-sizes has 2"),
    (["--backbone", "/no/such/resnet", "--depths", "1,1"], "only apply to a preset backbone"),
    (["--device", "nope"], "invalid device 'nope'"),
])
def test_bad_values_exit_2_with_one_line(tmp_path, capsys, argv, message):
    assert run_main("spac train-attributes", cli_main, ["--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("argv", [[], ["--out", "x", "--steps", "many"], ["--out", "x", "--depths", "1,a"],
                                  ["--out", "x", "--weights-dtype", "int8"]])
def test_bad_flags_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        cli_main(argv)
    assert exit_.value.code == 2
    assert "spac train-attributes: error:" in capsys.readouterr().err


def test_help_explains_every_flag():
    parser = build_parser()
    for action in parser._actions:
        assert action.help, action.dest


def test_training_command_writes_a_loadable_model_and_eval_report_deterministically(tmp_path):
    argv = ["--steps", "2", "--batch-size", "3", "--eval-identities", "3", "--quiet", *TINY]
    assert cli_main(["--out", str(tmp_path / "a"), *argv]) == 0
    assert cli_main(["--out", str(tmp_path / "b"), *argv]) == 0
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    report = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert report["identities"] == 3 and set(report["groups"]) == set(load_schema().group_names)
    assert all(0 <= r["accuracy"] <= 1 for r in report["groups"].values())
    model = load_predictor(tmp_path / "a")
    assert model.config.backbone["hidden_sizes"] == [8, 16]
    assert model.config.training["images"] == 6
