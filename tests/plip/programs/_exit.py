"""What a program's ``main`` exits with, whether it returns or argparse exits itself on a wrong flag."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def exit_code(main: Callable[[Sequence[str]], int], argv: Sequence[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse rejects a wrong flag itself
        return exc.code
