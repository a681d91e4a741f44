"""How a program's settings are made: a frozen dataclass per program (or per group of flags it shares), built
once from the parsed flags and passed instead of the argparse Namespace, so each function says which settings
it reads and none can change them on the way."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any, TypeVar

Settings = TypeVar("Settings")
_JSON_TYPES = (str, int, float, bool, type(None), list, tuple, dict)


def from_flags(cls: type[Settings], args: argparse.Namespace, **given: Any) -> Settings:
    """``cls`` (a dataclass) with each field taken from the flag of its name, except those ``given`` (a nested
    group's settings, a value resolved from several flags)."""
    return cls(**{f.name: given[f.name] if f.name in given else getattr(args, f.name) for f in fields(cls)})


def flag_record(args: argparse.Namespace) -> dict[str, Any]:
    """The flags as given, as JSON-ready values (paths and devices as text): what a run's args.json records."""
    return {name: value if isinstance(value, _JSON_TYPES) else str(value) for name, value in vars(args).items()}
