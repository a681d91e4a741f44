"""The project's command-line conventions, shared by `spac`, `python -m pipelines.*` and `python -m plip.*`:
one-line errors on stderr with exit code 2 (for bad input only: a bug shows its traceback), ``--quiet``, and
argparse ``type=`` checks that reject a bad flag value at parse time (so no program writes its own flag-check
loop)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from common.allocator import keep_freed_memory
from common.errors import InputError, error_line
from common.paths import printable_path

if TYPE_CHECKING:  # torch takes ~1.5 s to import: only a command that resolves a device pays for it
    import torch

DEBUG_VARIABLE = "SPAC_DEBUG"  # =1: every program shows the traceback of a bad-input error too
# A path that is missing or of the wrong kind is bad input too (the OS's one-line message names it).
_BAD_PATH = (FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError, PermissionError)


class CliError(InputError):
    """Bad input from the user (missing file, unreadable image, wrong value): reported in one line, exit 2."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse that reports a wrong flag in one line and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def debugging() -> bool:
    """Whether the environment asks for tracebacks of bad-input errors too (SPAC_DEBUG=1)."""
    return os.environ.get(DEBUG_VARIABLE, "").strip() not in ("", "0")


def run_main(
    prog: str, main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, debug: bool = False
) -> int:
    """Call ``main(argv)``; bad input (an InputError, a missing or wrong-kind path) becomes one line and exit 2.
    Any other exception is a bug in our code and propagates with its traceback, as bad input does too with
    ``debug`` or SPAC_DEBUG=1. Every command runs with the malloc thresholds of :mod:`common.allocator`."""
    keep_freed_memory()
    try:
        return main(argv)
    except (InputError, *_BAD_PATH) as exc:
        if debug or debugging():
            raise
        print(f"{prog}: error: {_bad_input_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # argparse exits on a bad flag (after its one line) and on --help
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)


def _bad_input_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or error_line(exc)}: {printable_path(str(exc.filename))}"  # a name may hold a newline
    return error_line(exc)


def silence_libraries(quiet: bool) -> None:
    """``--quiet``: no progress bars from transformers either."""
    if quiet:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


# ---- argparse type= callables: a bad value is a one-line parse error naming the flag --------------------


def _number(kind: Callable[[str], Any], text: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = _number(int, text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = _number(int, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(float, text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _number(float, text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def unit_float(text: str) -> float:
    """A number in [0, 1] (a ratio, a probability, a threshold)."""
    value = _number(float, text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def name_list(choices: Sequence[str], kind: str) -> Callable[[str], tuple[str, ...]]:
    """An argparse ``type=`` for comma-separated names out of ``choices`` (each kept once, in order);
    ``kind`` names one in the error ("unknown loss 'x' (choose from ...)")."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"{f'unknown {kind} {unknown[0]!r}' if unknown else 'none given'} (choose from {', '.join(choices)})"
            )
        return names

    return parse


def image_size(text: str) -> tuple[int, int]:
    """--image-size HEIGHTxWIDTH, e.g. 256x128 (a model's input size)."""
    height, _, width = text.lower().partition("x")
    if not (height.isdigit() and width.isdigit() and 16 <= int(height) <= 4096 and 8 <= int(width) <= 4096):
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 256x128, got {text!r}")
    return int(height), int(width)


def json_object(text: str) -> dict[str, Any]:
    """A JSON object given on the command line."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def device(text: str) -> torch.device:
    """A --device value (cpu, cuda, cuda:N, auto) checked against this machine."""
    from common.devices import resolve_device

    try:
        return resolve_device(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_quiet_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars or progress messages")
