"""Shared command-line conventions: one-line errors on stderr and exit code 2 for bad input."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence


class CliError(Exception):
    """Bad input from the user (missing file, unreadable image, wrong value): reported in one line, exit 2."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse that reports a wrong flag in one line (plus the usage argparse prints) and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def run_main(prog: str, main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Call ``main(argv)``; turn CliError and plain input errors into a one-line message and exit code 2."""
    try:
        return main(argv)
    except CliError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"{prog}: error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
