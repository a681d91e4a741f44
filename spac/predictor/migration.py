"""Carry a trained attribute predictor over to a newer attribute schema without retraining it.

A predictor's heads are factorised (spac.predictor.model): a label's logit is ``item[item] + colour[colour] +
bias[label]``. When every label of the old schema is still a label of the new one (schema version 2 only
adds labels to version 1), the migrated predictor copies the backbone, every item row and colour row by
name and every label's bias by phrase, so each old label keeps exactly its old logit. A label the old
schema lacked (a generic value such as "black hair" or a bare one such as "jeans") gets a new item row or
colour row of zeros, where it has one of its own, and the bias ``NEW_LABEL_BIAS``: its probability is
``exp(-10000)``, i.e. 0, so the migrated model never predicts it and decodes every image exactly as the old
one did. A predictor trained on rendered people never saw those labels anyway; a model that is to learn
them (fine-tuning on labels mined from human captions) should first set their biases to 0.

The migrated config records ``training.migrated_from_schema``; its other provenance is kept as it was.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from common.errors import InputError, error_line
from spac.attributes import Schema, load_schema
from spac.predictor.model import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    AttributePredictor,
    PredictorConfig,
    save_predictor,
    schema_labels,
)

NEW_LABEL_BIAS = -10_000.0  # exactly representable in float16 (the bundled model's storage dtype)


def _head_layout(labels: list[str], group: str, schema: Schema) -> tuple[list[str], list[str]]:
    """The items (head rows 1..n, in order) and the colours (sorted) of a head trained on ``labels``.

    The labels of a group are its values item by item, so the item order is the order of first appearance;
    the phrases are read with ``schema``, which must know every one of them.
    """
    values = [schema.value(group, phrase) for phrase in labels[1:]]
    items = list(dict.fromkeys(v.item for v in values))
    colours = sorted({v.colour for v in values if v.colour is not None})
    return items, colours


def _rows(old: torch.Tensor, old_names: list[str], new_names: list[str], fill: float = 0.0) -> torch.Tensor:
    """``new_names``' rows of ``old`` (whose rows are ``old_names``); names new to it get ``fill``."""
    out = torch.full((len(new_names), *old.shape[1:]), fill, dtype=old.dtype)
    index = {name: i for i, name in enumerate(old_names)}
    for i, name in enumerate(new_names):
        if name in index:
            out[i] = old[index[name]]
    return out


def _check_labels(config: PredictorConfig, schema: Schema, source: str) -> None:
    current = schema_labels(schema)
    if set(config.labels) != set(current):
        raise InputError(f"{source}: its groups {sorted(config.labels)} are not the schema's {sorted(current)}")
    for group, labels in config.labels.items():
        if not labels or labels[0] != "unknown":
            raise InputError(f"{source}: the labels of group {group!r} do not start with 'unknown'")
        lost = [label for label in labels if label not in current[group]]
        if lost:
            raise InputError(
                f"{source}: label {lost[0]!r} of group {group!r} is not in attribute schema version "
                f"{schema.version}; a predictor that loses labels must be retrained, not migrated"
            )


def migrate_state(
    config: PredictorConfig,
    state: dict[str, torch.Tensor],
    schema: Schema,
    source: str = "predictor",
    new_label_bias: float = NEW_LABEL_BIAS,
) -> AttributePredictor:
    """A predictor for ``schema`` made from an older one's config and weights (see the module doc)."""
    _check_labels(config, schema, source)
    training = {**config.training, "migrated_from_schema": config.schema_version}
    new_config = replace(config, schema_version=schema.version, labels=schema_labels(schema), training=training)
    model = AttributePredictor(new_config, schema)
    reference = model.state_dict()
    migrated: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.startswith("backbone."):
            migrated[key] = tensor
    for group in schema.groups:
        old_labels, new_labels = config.labels[group.name], list(group.labels)
        old_items, old_colours = _head_layout(old_labels, group.name, schema)
        new_items, new_colours = _head_layout(new_labels, group.name, schema)
        prefix = f"heads.{group.name}."
        try:
            for part in ("weight", "bias"):
                migrated[f"{prefix}item.{part}"] = _rows(
                    state[f"{prefix}item.{part}"], ["unknown", *old_items], ["unknown", *new_items]
                )
                if new_colours:
                    old = state.get(f"{prefix}colour.{part}")
                    if old is None:  # the old head had no colour term: every colour is new
                        old, old_colours = reference[f"{prefix}colour.{part}"][:0], []
                    migrated[f"{prefix}colour.{part}"] = _rows(old, old_colours, new_colours)
            migrated[f"{prefix}bias"] = _rows(state[f"{prefix}bias"], old_labels, new_labels, new_label_bias)
        except KeyError as exc:
            raise InputError(f"{source}: the weights lack {exc.args[0]!r}") from None
    missing = sorted(set(reference) - set(migrated))
    if missing:
        raise InputError(f"{source}: the weights lack {missing[0]!r}")
    for key, tensor in migrated.items():
        if tensor.shape != reference[key].shape:
            raise InputError(
                f"{source}: {key} has shape {list(tensor.shape)}, the config implies {list(reference[key].shape)}"
            )
    model.load_state_dict({k: v.to(reference[k].dtype) for k, v in migrated.items()})
    return model.eval()


def migrate_predictor(
    source: str | Path, target: str | Path, schema: Schema | None = None, new_label_bias: float = NEW_LABEL_BIAS
) -> Path:
    """Read the predictor directory ``source`` (config.json + model.safetensors, trained on an older schema),
    write it migrated to ``schema`` (default: the bundled one) into ``target``; the weights keep their dtype.

    InputError (one line, naming the file) when it cannot be migrated: unreadable files, labels the new
    schema lacks, or labels that already match it.
    """
    schema = schema if schema is not None else load_schema()
    source, target = Path(source), Path(target)
    config_file, weights_file = source / CONFIG_FILE, source / WEIGHTS_FILE
    for path in (config_file, weights_file):
        if not path.is_file():
            raise InputError(f"{path}: no such file (a predictor directory holds {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        config = PredictorConfig.from_json(config_file.read_text(encoding="utf-8"), str(config_file))
    except UnicodeDecodeError:
        raise InputError(f"{config_file}: not UTF-8 text") from None
    if config.labels == schema_labels(schema):
        raise InputError(
            f"{config_file}: already has the labels of attribute schema version {schema.version}; nothing to migrate"
        )
    try:
        state = load_file(str(weights_file))
    except (SafetensorError, OSError) as exc:
        raise InputError(f"{weights_file}: unreadable weights ({error_line(exc)})") from None
    model = migrate_state(config, state, schema, str(config_file), new_label_bias)
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    dtype = dtypes.pop() if len(dtypes) == 1 else torch.float32
    return save_predictor(model, target, dtype)
