"""A model's config.json read into a checked dict: bad JSON, a value that is not an object, a missing or unexpected
key, or a field its rule refuses is one line naming the file and the first bad field (an
:class:`~common.errors.InputError` of the caller's class), before anything is built from it."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from common.errors import InputError

# field -> (check, what it must be)
Rules = Mapping[str, tuple[Callable[[Any], bool], str]]


def parse_json(text: str, source: str, error: type[InputError] = InputError) -> Any:
    """``text`` as JSON; else one line of ``error`` naming ``source`` (where the syntax broke, or that it nests
    too deeply for the parser)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{source}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise error(f"{source}: invalid JSON (nested too deeply)") from None


def parse_config(
    text: str, source: str, required: Sequence[str], rules: Rules, error: type[InputError] = InputError
) -> dict[str, Any]:
    """``text`` as a JSON object with every ``required`` key and each field passing its rule; else ``error``
    naming ``source`` (the first missing key in ``required``'s order, the first bad field in the file's)."""
    data = parse_json(text, source, error)
    if not isinstance(data, dict):
        raise error(f"{source}: expected a JSON object")
    missing = [key for key in required if key not in data]
    if missing:
        raise error(f"{source}: missing key {missing[0]!r}")
    check_fields(data, rules, source, error=error)
    return data


def check_fields(
    data: Mapping[str, Any], rules: Rules, source: str, prefix: str = "", error: type[InputError] = InputError
) -> None:
    """Every field of ``data`` known to ``rules`` and passing its check; else ``error`` naming ``source`` and
    the field (``prefix`` + key, as ``backbone.depths`` for a nested object)."""
    for key, value in data.items():
        name = prefix + key
        if key not in rules:
            raise error(f"{source}: unexpected key {name!r}")
        check, expected = rules[key]
        if not check(value):
            raise error(f"{source}: {name!r} must be {expected}, got {json.dumps(value)[:60]}")


def is_int(value: Any, low: int = 1, high: float = float("inf")) -> bool:
    """A JSON integer (not a boolean) from ``low`` to ``high``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def rgb_numbers(value: Any, positive: bool = False) -> bool:
    """Three finite numbers (per RGB channel), all > 0 when ``positive``."""
    return (
        isinstance(value, list)
        and len(value) == 3
        and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not positive)
            for v in value
        )
    )
