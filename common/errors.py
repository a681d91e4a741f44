"""The project's one error policy: bad input (a missing or malformed file, a wrong value, an unreadable image)
raises an :class:`InputError`, which the command layer reports in one line with exit code 2; any other
exception is a bug in our code and shows its traceback."""

from __future__ import annotations

import re

# An error re-raised from a DataLoader or Beam worker carries the worker's traceback, and its last line is
# "module.TypeName: message".
_TRACEBACK = "Traceback (most recent call last)"
_TYPE_PREFIX = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Rejected): ")


class InputError(ValueError):
    """Bad input from a user, a file or a server, described in one line. (A ValueError too, so callers that
    catch ValueError around a parse keep working.)"""


def error_line(exc: BaseException) -> str:
    """One line that says what went wrong: the first non-blank line of the message (libraries such as
    transformers, torch and pyarrow state the reason first and append advice); for an error re-raised from a
    worker, whose message carries the worker's traceback, the message of its last "Type: message" line; the
    exception's type name when the message is empty."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if any(_TRACEBACK in line for line in lines):
        return _TYPE_PREFIX.sub("", lines[-1], count=1)
    return lines[0]
