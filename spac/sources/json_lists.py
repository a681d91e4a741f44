"""The entries of a JSON list read one at a time from a byte stream: a multi-gigabyte
``synthpedes_dataset.json`` is never held whole.

:func:`iter_json_list` decodes the stream incrementally (UTF-8, a leading BOM skipped; an undecodable
byte becomes a lone surrogate, so only the entry holding it is spoiled) and hands each element of the
top-level list to the standard library's C-accelerated ``json`` scanner as soon as the buffer holds it
whole. Memory stays at one read chunk plus one entry. A JSON list has no safe split points (a bracket
or a newline may sit inside a string), so one reader reads it from the start; callers spread the
entries afterwards.

When the text stops being a JSON list (invalid JSON, an entry longer than ``max_entry_chars``, text
cut short) the entries before the fault have been yielded and :class:`JsonListError` says where: the
index of the entry it stopped at and the character offset.
"""
from __future__ import annotations

import codecs
import json
import re
from typing import Any, BinaryIO, Iterator

from common.errors import InputError, error_line

CHUNK_BYTES = 1 << 20
DEFAULT_MAX_ENTRY_CHARS = 16 << 20
# an error this far before the end of the buffer cannot come from the entry being cut at the buffer's end
_TRUNCATION_MARGIN = 64
_SPACE = re.compile(r"[ \t\n\r]*")


class JsonListError(InputError):
    """The stream is not (or stops being) a JSON list; ``index`` is the entry it stopped at."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


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
            self.text, self.pos = self.text[self.pos:], 0
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


def _decode_entry(buffer: _Buffer, decoder: json.JSONDecoder, source: str, index: int, max_chars: int) -> Any:
    while True:
        try:
            value, end = decoder.raw_decode(buffer.text, buffer.pos)
            if end < len(buffer.text) or buffer.eof:  # a number at the buffer's end may go on in the next chunk
                buffer.pos = end
                return value
        except json.JSONDecodeError as exc:
            cut_short = exc.msg.startswith("Unterminated string") or exc.pos >= len(buffer.text) - _TRUNCATION_MARGIN
            if buffer.eof or not cut_short:
                raise JsonListError(f"{source}: entry {index}: invalid JSON ({exc.msg} at character "
                                    f"{buffer.offset(exc.pos)})", index) from None
        except (ValueError, RecursionError) as exc:  # an integer over Python's digit limit, deep nesting
            reason = "nested too deeply" if isinstance(exc, RecursionError) else error_line(exc)
            raise JsonListError(f"{source}: entry {index}: invalid JSON ({reason} at character "
                                f"{buffer.offset()})", index) from None
        if len(buffer.text) - buffer.pos > max_chars:
            raise JsonListError(f"{source}: entry {index}: longer than {max_chars} characters (at character "
                                f"{buffer.offset()})", index)
        buffer.fill()


def iter_json_list(stream: BinaryIO, source: str = "<json>", max_entry_chars: int = DEFAULT_MAX_ENTRY_CHARS,
                   chunk_bytes: int = CHUNK_BYTES) -> Iterator[Any]:
    """Each element of the JSON list in ``stream`` (binary, read ``chunk_bytes`` at a time), in order.

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
            yield _decode_entry(buffer, decoder, source, index, max_entry_chars)
            index += 1
            after = buffer.skip_space()
            if after == ",":
                buffer.pos += 1
                continue
            if after == "]":
                buffer.pos += 1
                break
            where = "the file ends inside the list" if after is None else (
                f"expected ',' or ']' after entry {index - 1}, found {after!r} at character {buffer.offset()}")
            raise JsonListError(f"{source}: entry {index}: {where}", index)
    trailing = buffer.skip_space()
    if trailing is not None:
        raise JsonListError(f"{source}: text after the end of the list ({trailing!r} at character "
                            f"{buffer.offset()})", index)
