"""What the `python -m plip.X` commands share: quiet mode and one-line library errors."""
from __future__ import annotations

import argparse
from typing import Callable

from spac.cli.support import CliError


def call_main(main: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run ``main(args)``; a library ValueError (bad data, model or checkpoint) becomes a one-line CliError."""
    if getattr(args, "quiet", False):
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    try:
        return main(args)
    except ValueError as exc:  # data, model and checkpoint errors all derive from ValueError
        # The last line: an error re-raised from a DataLoader worker carries the worker's traceback.
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        raise CliError(lines[-1] if lines else type(exc).__name__) from None
