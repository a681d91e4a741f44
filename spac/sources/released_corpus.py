"""Entries of the released SYNTH-PEDES ``synthpedes_dataset.json``, checked one at a time.

An entry is ``{id, file_path, attributes: ["a,b,c,d,e,f"], captions: [2 style captions],
prompt_caption: [1 sentence]}`` (REFERENCE.md section 2). :func:`check_released_entry` checks one and
returns a :class:`ReleasedEntry`. The attribute string is read leniently: its six phrases are kept
verbatim (surrounding white space removed), and a phrase outside our schema is not an error but listed
in ``out_of_schema``, so a released corpus imports whole whatever vocabulary its predictor had. Only a
string that does not hold six non-empty phrases is malformed. Other keys of an entry are ignored.
A malformed entry is a one-line InputError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from common.errors import InputError
from spac.attributes import GROUP_ORDER, Attributes, Schema, load_schema

REQUIRED_KEYS = ("id", "file_path", "attributes", "captions", "prompt_caption")


@dataclass(frozen=True)
class ReleasedAttributes:
    """The six phrases by group, verbatim, and the groups whose phrase the schema does not know."""

    values: Attributes
    out_of_schema: tuple[str, ...]


@dataclass(frozen=True)
class ReleasedEntry:
    id: int
    file_path: str
    attributes: ReleasedAttributes
    captions: tuple[str, ...]
    prompt_caption: tuple[str, ...]


def read_released_attributes(text: str, schema: Schema | None = None) -> ReleasedAttributes:
    """The released ``"a,b,c,d,e,f"`` form, leniently: InputError only when it is not six non-empty phrases
    (:meth:`spac.attributes.Schema.from_released` is the strict reading)."""
    schema = load_schema() if schema is None else schema
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != len(GROUP_ORDER):
        raise InputError(f"expected {len(GROUP_ORDER)} comma-separated attributes, got {len(parts)}: {text[:120]!r}")
    for group, phrase in zip(GROUP_ORDER, parts):
        if not phrase:
            raise InputError(f"attribute {group!r} is empty in {text[:120]!r}")
    values = dict(zip(GROUP_ORDER, parts))
    return ReleasedAttributes(values, tuple(g for g in GROUP_ORDER if values[g] not in schema.group(g)))


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)[:40]


def _texts(entry: dict[str, Any], key: str) -> tuple[str, ...]:
    value = entry[key]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise InputError(f"{key!r} must be a list of strings, got {_shown(value)}")
    return tuple(value)


def check_released_entry(entry: Any, schema: Schema | None = None) -> ReleasedEntry:
    """One entry of ``synthpedes_dataset.json`` as a :class:`ReleasedEntry`; InputError (one line, without
    the file name: the caller knows where the entry is) when it is malformed."""
    if not isinstance(entry, dict):
        raise InputError(f"expected a JSON object, got {type(entry).__name__}")
    for key in REQUIRED_KEYS:
        if key not in entry:
            raise InputError(f"missing key {key!r} (released SYNTH-PEDES entries hold {', '.join(REQUIRED_KEYS)})")
    identity, path = entry["id"], entry["file_path"]
    if not isinstance(identity, int) or isinstance(identity, bool):
        raise InputError(f"'id' must be an integer, got {_shown(identity)}")
    if not isinstance(path, str) or not path.strip():
        raise InputError(f"'file_path' must be a non-empty string, got {_shown(path)}")
    attributes = entry["attributes"]
    if not (isinstance(attributes, list) and len(attributes) == 1 and isinstance(attributes[0], str)):
        raise InputError(f"'attributes' must be a list of one string, got {_shown(attributes)}")
    try:
        released = read_released_attributes(attributes[0], schema)
    except InputError as exc:
        raise InputError(f"'attributes': {exc}") from None
    return ReleasedEntry(identity, path, released, _texts(entry, "captions"), _texts(entry, "prompt_caption"))
