"""The entries of a JSON list read one at a time from a byte stream: a multi-gigabyte
``synthpedes_dataset.json`` is never held whole.

:func:`iter_json_list` decodes the stream incrementally (UTF-8, a leading BOM skipped; an undecodable
byte becomes a lone surrogate, so only the entry holding it is spoiled) and hands each element of the
top-level list to the standard library's C-accelerated ``json`` scanner as soon as the buffer holds it
whole. Memory stays at one read chunk plus one entry. A JSON list has no safe split points (a bracket
or a newline may sit inside a string), so one reader reads it from the start; callers spread the
entries afterwards.

An entry of a valid list that cannot go on is yielded in its place as a :class:`SkippedEntry` (its index
and a one-line reason), and the reading goes on with the next entry: an entry longer than
``max_entry_chars`` or nested deeper than ``max_depth`` (skipped at the character level, its brackets counted
outside its strings, never built: memory stays at two read chunks), a number over Python's digit limit,
or a text that is not valid Unicode (an undecodable byte, a lone ``"\ud800"`` escape). Such text is not
replaced by U+FFFD: a caption changed without a word would be a corrupt sample, and one dead letter per
entry keeps the count honest. So every entry yielded encodes as UTF-8.

When the text stops being a JSON list (invalid JSON, text cut short) the entries before the fault have
been yielded and :class:`JsonListError` says where: the index of the entry it stopped at and the character
offset.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO, NamedTuple

from common.errors import InputError, error_line

CHUNK_BYTES = 1 << 20
DEFAULT_MAX_ENTRY_CHARS = 16 << 20
DEFAULT_MAX_DEPTH = 64  # a released or CUHK-PEDES entry is 2 deep; the C scanner's own limit moves with the stack
# an error this far before the end of the buffer cannot come from the entry being cut at the buffer's end
_TRUNCATION_MARGIN = 64
_SPACE = re.compile(r"[ \t\n\r]*")
_SURROGATE = re.compile("[\ud800-\udfff]")
# a surrogate in the text (an undecodable byte) or escaped (maybe lone): only then is the entry walked
_MAYBE_SURROGATE = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")
_NOT_UNICODE = "a text that is not valid Unicode (an undecodable byte or a lone surrogate escape)"
# tokens of the skipping scan: inside a string; inside the entry's brackets; at the entry's own level
_IN_STRING = re.compile(r'["\\]')
_NESTED = re.compile(r'"|[\[{]+|[\]}]+')
_TOP = re.compile(r'"|[\[{]+|[\]},]')


class JsonListError(InputError):
    """The stream is not (or stops being) a JSON list; ``index`` is the entry it stopped at."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


class SkippedEntry(NamedTuple):
    """An entry of the list that was not built, in its place among the entries; ``reason`` is one line."""

    index: int
    reason: str


class _Buffer:
    """Decoded text read ahead of the parser, compacted as the parser moves on."""

    def __init__(self, stream: BinaryIO, chunk_bytes: int) -> None:
        self._stream, self._chunk = stream, chunk_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="surrogateescape")
        self.text, self.pos, self.consumed, self.eof = "", 0, 0, False

    def fill(self) -> None:
        data = self._stream.read(self._chunk)
        if self.pos > self._chunk:  # drop what the parser has passed
            self.consumed += self.pos
            self.text, self.pos = self.text[self.pos :], 0
        if data:
            self.text += self._decoder.decode(data)
        else:
            self.text += self._decoder.decode(b"", final=True)
            self.eof = True

    def skip_space(self) -> str | None:
        """The next character after white space (None at the end of the text)."""
        while True:
            self.pos = _SPACE.match(self.text, self.pos).end()
            if self.pos < len(self.text):
                return self.text[self.pos]
            if self.eof:
                return None
            self.fill()

    def offset(self, pos: int | None = None) -> int:
        return self.consumed + (self.pos if pos is None else pos)


def _flaw(value: Any, max_depth: int) -> str | None:
    """Why a built entry cannot go on (nested deeper than ``max_depth``, a text that is not valid Unicode)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return _NOT_UNICODE
        elif isinstance(item, (list, dict)):
            if depth == max_depth:
                return f"nested deeper than {max_depth} levels"
            stack.extend((child, depth + 1) for child in (item if isinstance(item, list) else (*item, *item.values())))
    return None


def _built_flaw(buffer: _Buffer, end: int, value: Any, max_chars: int, max_depth: int) -> str | None:
    """Why the entry built from ``buffer.text[buffer.pos:end]`` cannot go on; cheap text checks decide
    whether it is walked at all."""
    if end - buffer.pos > max_chars:
        return f"longer than {max_chars} characters"
    brackets = buffer.text.count("[", buffer.pos, end) + buffer.text.count("{", buffer.pos, end)
    if brackets > max_depth or _MAYBE_SURROGATE.search(buffer.text, buffer.pos, end):
        return _flaw(value, max_depth)
    return None


def _skip_entry(buffer: _Buffer, source: str, index: int) -> None:
    """Move ``buffer.pos`` past one entry without building it, to the ',' or ']' after it: brackets are
    counted (a run of them at a time) outside strings, escapes inside them skipped. JsonListError when the
    file ends first."""
    depth, in_string = 0, False
    while True:
        found = (_IN_STRING if in_string else _NESTED if depth else _TOP).search(buffer.text, buffer.pos)
        if found is None or found.end() == len(buffer.text) and found.group() == "\\":  # more text needed
            buffer.pos = len(buffer.text) if found is None else found.start()
            if buffer.eof:
                raise JsonListError(f"{source}: entry {index}: the file ends inside the entry", index)
            buffer.fill()
            continue
        token, buffer.pos = found.group(), found.end()
        if in_string:
            if token == "\\":
                buffer.pos += 1  # the escaped character, a quote perhaps
            else:
                in_string = False
        elif token == '"':
            in_string = True
        elif token[0] in "[{":
            depth += len(token)
        elif token == "," or len(token) > depth:  # at the entry's own level: the entry has ended
            buffer.pos = found.start() + depth
            return
        else:
            depth -= len(token)


def _skipped(buffer: _Buffer, source: str, index: int, reason: str) -> SkippedEntry:
    start = buffer.offset()
    _skip_entry(buffer, source, index)
    return SkippedEntry(index, f"{reason}; the entry starts at character {start}")


def _decode_entry(
    buffer: _Buffer, decoder: json.JSONDecoder, source: str, index: int, max_chars: int, max_depth: int
) -> Any:
    while True:
        try:
            value, end = decoder.raw_decode(buffer.text, buffer.pos)
            if end < len(buffer.text) or buffer.eof:  # a number at the buffer's end may go on in the next chunk
                flaw = _built_flaw(buffer, end, value, max_chars, max_depth)
                start = buffer.offset()
                buffer.pos = end
                return value if flaw is None else SkippedEntry(index, f"{flaw}; the entry starts at character {start}")
        except json.JSONDecodeError as exc:
            cut_short = exc.msg.startswith("Unterminated string") or exc.pos >= len(buffer.text) - _TRUNCATION_MARGIN
            if buffer.eof or not cut_short:
                raise JsonListError(
                    f"{source}: entry {index}: invalid JSON ({exc.msg} at character {buffer.offset(exc.pos)})", index
                ) from None
        except (ValueError, RecursionError) as exc:  # an integer over Python's digit limit, deep nesting
            reason = f"nested deeper than {max_depth} levels" if isinstance(exc, RecursionError) else error_line(exc)
            return _skipped(buffer, source, index, reason)
        if len(buffer.text) - buffer.pos > max_chars:
            return _skipped(buffer, source, index, f"longer than {max_chars} characters")
        buffer.fill()


def iter_json_list(
    stream: BinaryIO,
    source: str = "<json>",
    max_entry_chars: int = DEFAULT_MAX_ENTRY_CHARS,
    chunk_bytes: int = CHUNK_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Iterator[Any]:
    """Each element of the JSON list in ``stream`` (binary, read ``chunk_bytes`` at a time), in order; in
    place of one that cannot go on (see the module docstring), a :class:`SkippedEntry`.

    JsonListError (an InputError naming ``source``, the entry and the character offset) when the text is
    not a JSON list, or stops being one; the entries before that point have been yielded.
    """
    buffer = _Buffer(stream, chunk_bytes)
    decoder = json.JSONDecoder()
    first = buffer.skip_space()
    if first != "[":
        found = "an empty file" if first is None else f"{first!r}"
        raise JsonListError(f"{source}: expected a JSON list ('['), found {found}", 0)
    buffer.pos += 1
    index = 0
    if buffer.skip_space() == "]":
        buffer.pos += 1
    else:
        while True:
            if buffer.skip_space() is None:
                raise JsonListError(f"{source}: entry {index}: the file ends inside the list", index)
            yield _decode_entry(buffer, decoder, source, index, max_entry_chars, max_depth)
            index += 1
            after = buffer.skip_space()
            if after == ",":
                buffer.pos += 1
                continue
            if after == "]":
                buffer.pos += 1
                break
            where = (
                "the file ends inside the list"
                if after is None
                else (f"expected ',' or ']' after entry {index - 1}, found {after!r} at character {buffer.offset()}")
            )
            raise JsonListError(f"{source}: entry {index}: {where}", index)
    trailing = buffer.skip_space()
    if trailing is not None:
        raise JsonListError(
            f"{source}: text after the end of the list ({trailing!r} at character {buffer.offset()})", index
        )
