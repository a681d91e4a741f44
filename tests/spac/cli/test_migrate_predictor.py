"""`spac migrate-predictor OLD NEW`: a version-1 predictor carried over to the bundled schema."""

from __future__ import annotations

import json

import pytest
import torch

from spac.cli.main import main
from spac.predictor.model import PredictorConfig, build_predictor, load_predictor
from tests.spac.predictor.test_migration import TINY_BACKBONE, version_1_schema


@pytest.fixture()
def old(tmp_path):
    v1 = version_1_schema()
    torch.manual_seed(0)
    build_predictor(PredictorConfig.for_schema(v1, TINY_BACKBONE), v1).save(tmp_path / "old")
    return tmp_path / "old"


def test_migrates_and_reports(old, tmp_path, capsys):
    assert main(["migrate-predictor", str(old), str(tmp_path / "new")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"migrated {old} (schema version 1, 356 labels) to {tmp_path / 'new'} (schema version 2, "
        "425 labels; the 69 new ones at bias -10000, never predicted)"
    )
    assert load_predictor(tmp_path / "new").config.training == {"migrated_from_schema": 1}


def test_in_place_with_another_bias(old, capsys):
    assert main(["migrate-predictor", str(old), str(old), "--new-label-bias", "-50", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    model = load_predictor(old)
    assert float(model.heads["upper"].bias.detach()[model.schema.group("upper").labels.index("white top")]) == -50.0
    assert json.loads((old / "config.json").read_text())["schema_version"] == 2


def test_help_explains_every_flag(capsys):
    assert main(["migrate-predictor", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("old", "new", "--schema", "--new-label-bias", "--quiet"):
        assert flag in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{tmp}/nowhere", "{tmp}/new"], "nowhere/config.json: no such file"),
        (["{old}", "{tmp}/new", "--new-label-bias", "3"], "argument --new-label-bias: must be a negative number"),
        (["{old}", "{old}/config.json"], "exists and is not a directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(old, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, old=old) for a in argv]
    assert main(["migrate-predictor", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spac migrate-predictor: error: ") and message in err and err.count("\n") == 1


def test_a_migrated_predictor_is_not_migrated_twice(old, tmp_path, capsys):
    assert main(["migrate-predictor", str(old), str(tmp_path / "new"), "--quiet"]) == 0
    assert main(["migrate-predictor", str(tmp_path / "new"), str(tmp_path / "again")]) == 2
    assert "nothing to migrate" in capsys.readouterr().err
