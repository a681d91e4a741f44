"""spac.predictor.migration: a predictor trained on schema version 1 is refused by load_predictor, and
migrated to version 2 it predicts exactly what it did (the new labels never); the bundled model is one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from spac.attributes import UNKNOWN, load_schema, parse_schema
from spac.predictor.migration import NEW_LABEL_BIAS, migrate_predictor
from spac.predictor.model import DEFAULT_PREDICTOR_DIR, PredictorConfig, build_predictor, load_predictor

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "spac" / "assets" / "samples"
V1_PREDICTIONS = Path(__file__).resolve().parent / "data" / "v1_predictor_on_samples.json"
TINY_BACKBONE = {"depths": [1, 1], "hidden_sizes": [8, 16], "embedding_size": 8, "layer_type": "basic"}


def version_1_schema():
    """Schema version 1, rebuilt from version 2's file: no generic items, no bare values (its labels exactly)."""
    raw = yaml.safe_load((ROOT / "templates" / "attributes.yaml").read_text(encoding="utf-8"))
    raw["schema_version"] = 1
    for group in raw["groups"]:
        group.pop("bare", None)
        group["items"] = [
            {k: v for k, v in item.items() if k != "bare"} for item in group["items"] if not item.get("generic")
        ]
    return parse_schema(raw, "v1.yaml")


@pytest.fixture(scope="module")
def v1():
    return version_1_schema()


@pytest.fixture()
def old_dir(v1, tmp_path):
    torch.manual_seed(0)
    model = build_predictor(PredictorConfig.for_schema(v1, TINY_BACKBONE, training={"steps": 7}), v1)
    with torch.no_grad():
        for head in model.heads.values():
            head.bias.normal_(0, 3)  # learnt-looking per-value biases
    model.save(tmp_path / "old", dtype=torch.float16)
    return tmp_path / "old"


def _batch(n=6):
    return torch.randn(n, 3, 256, 128, generator=torch.Generator().manual_seed(3))


def test_the_version_1_labels_are_the_specific_values_of_version_2(v1):
    v2 = load_schema()
    for old, new in zip(v1.groups, v2.groups):
        assert list(old.labels) == [UNKNOWN, *(v.phrase for v in new.values if v.specific)]


def test_a_version_1_predictor_is_refused_in_one_line_naming_both_versions(old_dir):
    with pytest.raises(ValueError) as info:
        load_predictor(old_dir)
    message = str(info.value)
    assert "\n" not in message
    assert "schema version 1" in message and "(version 2)" in message
    assert message.endswith("retrain the predictor or migrate it (spac migrate-predictor)")


def test_migration_keeps_every_prediction_and_never_predicts_a_new_label(v1, old_dir, tmp_path):
    migrate_predictor(old_dir, tmp_path / "new")
    old, new = load_predictor(old_dir, schema=v1), load_predictor(tmp_path / "new")
    assert new.config.schema_version == 2
    assert new.config.training == {"steps": 7, "migrated_from_schema": 1}
    batch = _batch()
    assert [p.attributes for p in new.predict_tensors(batch)] == [p.attributes for p in old.predict_tensors(batch)]
    with torch.no_grad():
        old_logits, new_logits = old(batch), new(batch)
    for group in new.schema.groups:
        old_labels = old.config.labels[group.name]
        kept = [group.labels.index(label) for label in old_labels]
        assert torch.allclose(new_logits[group.name][:, kept], old_logits[group.name], atol=1e-4)
        added = [i for i, label in enumerate(group.labels) if label not in old_labels]
        if added:
            assert float(new_logits[group.name][:, added].max()) < NEW_LABEL_BIAS / 2
            assert all(not group.value(group.labels[i]).specific for i in added)
    weights = json.loads((tmp_path / "new" / "config.json").read_text())
    assert weights["labels"] == {g.name: list(g.labels) for g in new.schema.groups}


def test_weights_keep_their_dtype(old_dir, tmp_path):
    from safetensors.torch import load_file

    migrate_predictor(old_dir, tmp_path / "new")
    assert {
        t.dtype for t in load_file(str(tmp_path / "new" / "model.safetensors")).values() if t.is_floating_point()
    } == {torch.float16}


def test_what_cannot_be_migrated_is_a_one_line_error(v1, old_dir, tmp_path):
    migrate_predictor(old_dir, tmp_path / "new")
    with pytest.raises(ValueError, match="already has the labels of attribute schema version 2; nothing to migrate"):
        migrate_predictor(tmp_path / "new", tmp_path / "again")
    config = json.loads((old_dir / "config.json").read_text())
    config["labels"]["upper"].append("plaid kilt")
    (old_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"label 'plaid kilt' of group 'upper' is not in attribute schema version 2"):
        migrate_predictor(old_dir, tmp_path / "other")
    with pytest.raises(ValueError, match="no such file"):
        migrate_predictor(tmp_path / "nowhere", tmp_path / "other")
    (old_dir / "model.safetensors").write_bytes(b"not safetensors")
    config["labels"]["upper"].pop()
    (old_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="model.safetensors: unreadable weights"):
        migrate_predictor(old_dir, tmp_path / "other")


def test_the_bundled_predictor_is_the_migrated_version_1_model_and_predicts_as_it_did():
    config = json.loads((DEFAULT_PREDICTOR_DIR / "config.json").read_text())
    assert config["schema_version"] == 2 and config["training"]["migrated_from_schema"] == 1
    torch.set_num_threads(2)
    model = load_predictor()
    expected = json.loads(V1_PREDICTIONS.read_text())["predictions"]
    records = [json.loads(line) for line in (SAMPLES / "labels.jsonl").read_text().splitlines()]
    predictions = model.predict([Image.open(SAMPLES / r["file_path"]) for r in records])
    got = {r["file_path"]: model.schema.to_released(p.attributes) for r, p in zip(records, predictions)}
    assert got == expected
