"""The --data sources: spec parsing, rendered people's three disjoint identity ranges, spreading a split."""

import argparse

import pytest

from spac.attributes import load_schema
from spac.predictor.data_sources import VALIDATION_SEED_BASE, DataSpec, data_spec, open_source, spread
from spac.predictor.datasets.dataset import LabelledSplit
from spac.render.training_source import EVAL_SEED_BASE, TRAIN_STRIDE


def test_specs_parse_kinds_and_locations():
    assert data_spec("rendered") == DataSpec("rendered") and data_spec("rendered:12") == DataSpec("rendered", "12")
    assert data_spec("PA100K:/data/pa 100k") == DataSpec("pa100k", "/data/pa 100k")
    assert data_spec("mined:C:/x.parquet") == DataSpec("mined", "C:/x.parquet") and str(data_spec("rap:/r")) == "rap:/r"
    for bad in ("cifar:/x", "peta", "rendered:-1", "rendered:x"):
        with pytest.raises(argparse.ArgumentTypeError):
            data_spec(bad)


def test_rendered_people_train_validate_and_evaluate_on_disjoint_identities():
    source = open_source(
        DataSpec("rendered"), load_schema(), seed=2, rendered_count=5, evaluation_count=3, validation_count=4
    )
    assert source.rendered and source.mapping is None
    assert (len(source.train), len(source.val), len(source.test)) == (5, 4, 3)
    assert source.train.first_seed == 2 * TRAIN_STRIDE and source.test.first_seed == EVAL_SEED_BASE
    assert source.val.first_seed == VALIDATION_SEED_BASE > EVAL_SEED_BASE + 10**9
    assert len(open_source(DataSpec("rendered", "7"), load_schema()).train) == 7
    assert source.split("val") is source.val


def test_spread_takes_evenly_spaced_examples(tmp_path):
    split = LabelledSplit("val", [tmp_path / f"{i}.png" for i in range(10)], [{}] * 10)
    part = spread(split, 4)
    assert isinstance(part, LabelledSplit) and [p.stem for p in part.paths] == ["0", "3", "6", "9"]
    assert spread(split, 0) is split and spread(split, 20) is split
    assert spread(list(range(10)), 3) == [0, 4, 9]
