"""The project's one error policy: bad input (a missing or malformed file, a wrong value, an unreadable image)
raises an :class:`InputError`, which the command layer reports in one line with exit code 2; any other
exception is a bug in our code and shows its traceback."""
from __future__ import annotations

import re

# "module.TypeName: message", the last line of an error re-raised from a worker process
_TYPE_PREFIX = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Rejected): ")


class InputError(ValueError):
    """Bad input from a user, a file or a server, described in one line. (A ValueError too, so callers that
    catch ValueError around a parse keep working.)"""


def error_line(exc: BaseException) -> str:
    """One line that says what went wrong: the last non-blank line of the message (an error re-raised from a
    DataLoader or Beam worker carries the worker's traceback above it, and ends with its "Type: message"
    line, whose message is kept), or the exception's type name when the message is empty."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return _TYPE_PREFIX.sub("", lines[-1], count=1) if len(lines) > 1 else lines[-1]
