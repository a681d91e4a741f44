"""Named PLIP models: the presets in plip/configs/*.json and the model built from one.

``create_model("RN-tiny")`` builds a model from a preset; keyword overrides replace fields, nested
dicts merge into the sub-config: ``create_model("RN50", text={"pretrained": False})``. The presets are
described in :mod:`plip.config`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from common.errors import InputError
from plip.config import PLIPConfig
from plip.model import PLIPModel


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied; a nested dict merges into the sub-dict it replaces."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged


def list_models() -> list[str]:
    """Names of the bundled presets (file names in plip/configs/ without .json)."""
    files = resources.files("plip").joinpath("configs").iterdir()
    return sorted(f.name[: -len(".json")] for f in files if f.name.endswith(".json"))


def get_config(name: str, **overrides: Any) -> PLIPConfig:
    """The preset ``name`` with ``overrides`` applied (nested dicts merge into sections)."""
    if name not in list_models():
        raise InputError(f"unknown PLIP model {name!r} (choose from {', '.join(list_models())})")
    text = resources.files("plip").joinpath("configs", f"{name}.json").read_text(encoding="utf-8")
    return PLIPConfig.from_dict(merge_overrides(json.loads(text), overrides))


def create_model(name: str, **overrides: Any) -> PLIPModel:
    """Build the PLIP model of preset ``name``; pretrained text weights load from a local path."""
    return PLIPModel(get_config(name, **overrides))
