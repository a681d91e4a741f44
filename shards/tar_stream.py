"""The members of a tar stream, header by header: our own parser for plain ustar members, tarfile for the rest.

Why not tarfile alone: its header parsing (``TarInfo.frombuf``: a dozen ``nti``/``nts`` calls and a
byte-by-byte checksum in Python) costs ~20 us a member, 60-75 us for a sample's three members, a quarter
of what decoding the sample's JPEG costs. Our shards hold only regular members under short ASCII names
(webdataset's ``TarWriter`` writes tarfile's default pax format, which adds no pax header for such names
and integer times: every header is a plain ustar block), and one compiled pattern and a zlib checksum
read such a header in 2-3 us.

The parser takes only headers whose every field tarfile would read the same way (see ``_HEADER``)
and leaves everything else to tarfile, for the rest of the stream, replaying the block already read:
pax and GNU long-name headers, sparse and contiguous members, links, directories, base-256 numbers,
a name with a ustar prefix, an odd spelling of a number, a bad checksum, a compressed stream. So the
headers, the data and the errors are tarfile's own on every stream (see the POSIX ustar format and
CPython's ``tarfile`` for the fields).
"""

from __future__ import annotations

import re
import tarfile
import zlib
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, NamedTuple

BLOCKSIZE = tarfile.BLOCKSIZE
_CHUNK = 1 << 16  # how a member's data is skipped: never more than this in memory

# One plain ustar header block, field by field (offsets in bytes): name (0, 100; not empty), mode, uid,
# gid (100, 8 each), size (124, 12), mtime (136, 12), chksum (148, 8), typeflag (156: '0' or NUL, a
# regular file), linkname (157, 100: all NUL), magic + version (257, 8: POSIX or GNU), uname, gname (265,
# 32 each), devmajor, devminor (329, 8 each), then prefix (345, 155) and padding (500, 12) all NUL.
# A number is written as tarfile, GNU tar and bsdtar write it: octal digits filling the field but its
# last byte (NUL or space); the checksum as six digits, NUL, space. Every header that matches, tarfile
# reads the same way; and as only name, uname and gname are free, a matching block sums to under 46,300.
_NUMBER = rb"[0-7]{%d}[\0 ]"
_HEADER = re.compile(
    rb"(?=([^\0]{1,100})).{100}"
    + (_NUMBER % 7) * 3
    + rb"([0-7]{11})[\0 ]"
    + _NUMBER % 11
    + rb"([0-7]{6})\0 "
    + rb"[0\0]\0{100}(?:ustar\x0000|ustar  \0).{64}"
    + rb"(?:[0-7]{7}[\0 ]|\0{8}){2}"
    + rb"\0{167}",
    re.DOTALL,
)
# Stream starts that tarfile's "r|*" may read as compressed (gzip, bzip2, xz; zstd from Python 3.14): a
# tar that starts so goes to tarfile whole, even when its first block is a header we could read.
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\x5d\0\0", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")
# tarfile takes a damaged header in the first block for an error and one further on for the end of the
# archive. Handing it the rest of a stream from a later header, this empty member goes first, so that
# the later header is read as it would have been in the whole stream.
_PLACEHOLDER = tarfile.TarInfo("placeholder").tobuf(tarfile.USTAR_FORMAT)


class TarHeader(NamedTuple):
    """One member's header, as tarfile reads it."""

    name: str
    type: bytes  # the typeflag, as ``tarfile.TarInfo.type``
    size: int
    offset_data: int  # where the member's data starts in the (uncompressed) tar
    regular: bool  # ``tarfile.TarInfo.isreg()``: a regular file, whose data follows the header


class _Replay:
    """``head``, then the rest of ``stream``: tarfile reads on from bytes already taken off a stream
    that cannot seek back."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head, self._stream = head, stream

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._stream.read(size)
        cut = len(self._head) if size < 0 else size
        data, self._head = self._head[:cut], self._head[cut:]
        return data


def _unsigned_checksum(block: bytes) -> int:
    """tarfile's unsigned checksum of a header block that ``_HEADER`` matched: its bytes summed, the
    checksum field counted as eight spaces.

    Summing 512 bytes in Python costs ~2 us. zlib's Adler-32 holds 1 + the sum mod 65521 in its low
    half: the sum itself, as a matching block sums to under 65520.
    """
    return (zlib.adler32(block) & 0xFFFF) - 1 - sum(block[148:156]) + 8 * ord(" ")


def _end_of_archive(read: Callable[[int], bytes]) -> None:
    """Past the end-of-archive block, only zero padding may follow (tarfile would stop quietly at a
    damaged header too, and take the bytes after it for padding)."""
    while chunk := read(_CHUNK):
        if chunk.strip(b"\0"):
            raise tarfile.ReadError("a damaged header, or data after the end of the archive")


class TarStream:
    """The members of the tar ``stream`` in order: iterate the headers; :meth:`read_data` reads the
    current member's data (once, a regular member's only), which is otherwise skipped unread in small
    reads. The stream is read once, front to back, to its end.

    Raises ``tarfile.ReadError`` (or what the stream raises) when it is not a whole tar: unreadable,
    cut short (no end-of-archive block, a member's data cut), or with data after a damaged header.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._left = 0  # bytes of the current member's data not read yet (our own parser)
        self._archive: tarfile.TarFile | None = None  # tarfile, once it reads the rest
        self._info: Any = None  # tarfile's current member (a TarInfo)

    def _read(self, size: int) -> bytes:
        """``size`` bytes of the stream, fewer only at its end (a raw stream may return short reads)."""
        data = self._stream.read(size)
        while len(data) < size:
            more = self._stream.read(size - len(data))
            if not more:
                break
            data += more
        return data

    def _skip(self, size: int) -> None:
        while size > 0:
            chunk = self._stream.read(min(size, _CHUNK))
            if not chunk:
                raise tarfile.ReadError("unexpected end of data")
            size -= len(chunk)

    def _parse(self, block: bytes, offset: int) -> TarHeader | None:
        """The header in ``block`` (at ``offset``) when it is one we read ourselves, else None."""
        match = _HEADER.fullmatch(block)
        if match is None or int(match[3], 8) != _unsigned_checksum(block):
            return None
        name = match[1].decode(tarfile.ENCODING, "surrogateescape")
        if name.endswith("/"):  # tarfile may read it as a directory (an old tar's)
            return None
        return TarHeader(name, block[156:157], int(match[2], 8), offset + BLOCKSIZE, True)

    def __iter__(self) -> Iterator[TarHeader]:
        offset, block = 0, self._read(BLOCKSIZE)
        header = None if block.startswith(_COMPRESSED) else self._parse(block, 0)
        while header is not None:
            size = self._left = header.size
            yield header
            if self._left:  # not read: skip it
                self._skip(self._left)
            padding = -size % BLOCKSIZE
            offset = header.offset_data + size + padding
            block = self._read(padding + BLOCKSIZE)  # the padding and the next header in one read
            if len(block) < padding:
                raise tarfile.ReadError("unexpected end of data")
            block = block[padding:]
            header = self._parse(block, offset)
        if offset == 0:  # not a plain tar we read: tarfile reads it all (compressed, damaged, other formats)
            yield from self._tarfile(_Replay(block, self._stream), "r|*", 0)
        elif len(block) < BLOCKSIZE:
            raise tarfile.ReadError("cut short: no end-of-archive block")
        elif not block.strip(b"\0"):
            _end_of_archive(self._stream.read)
        else:
            yield from self._tarfile(_Replay(_PLACEHOLDER + block, self._stream), "r|", offset)

    def _tarfile(self, stream: _Replay, mode: str, offset: int) -> Iterator[TarHeader]:
        """tarfile reads the rest of the stream, from ``offset`` on (after the placeholder when > 0)."""
        with tarfile.open(fileobj=stream, mode=mode) as archive:  # type: ignore[call-overload]
            self._archive = archive
            base = offset - len(_PLACEHOLDER) if offset else 0  # where tarfile's offset 0 lies in the stream
            if offset:
                archive.next()
            while (info := archive.next()) is not None:
                archive.members.clear()  # streaming: keep no list of every header seen
                self._info = info
                yield TarHeader(info.name, info.type, info.size, info.offset_data + base, info.isreg())
            # tarfile ends quietly at a missing end-of-archive block (a cut stream) and at a damaged
            # header: only a whole zero block, then zero padding, may follow the last member.
            if archive.fileobj.tell() != archive.offset + BLOCKSIZE:
                raise tarfile.ReadError("cut short: no end-of-archive block")
            _end_of_archive(archive.fileobj.read)

    def read_data(self) -> bytes:
        """The data of the member whose header was yielded last (a regular one)."""
        if self._archive is not None:
            return self._tarfile_data(self._archive, self._info)
        data = self._read(self._left)
        if len(data) != self._left:
            raise tarfile.ReadError("unexpected end of data")
        self._left = 0
        return data

    @staticmethod
    def _tarfile_data(archive: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
        """A plain member's bytes are the next ``info.size`` bytes of tarfile's stream: read them
        directly, without the file object ``extractfile`` builds per member (tarfile's next header read
        seeks on from there). Other regular types (GNU sparse, contiguous) go through ``extractfile``."""
        if (
            info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE)
            or info.sparse is not None
            or archive.fileobj.tell() != info.offset_data
        ):
            return archive.extractfile(info).read()
        data = archive.fileobj.read(info.size)
        if len(data) != info.size:
            raise tarfile.ReadError("unexpected end of data")
        return data
