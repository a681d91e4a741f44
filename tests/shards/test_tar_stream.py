"""TarStream against tarfile's own streaming read (what the reader used before it parsed headers itself):
the same headers, offsets, data and errors, on our shards and on every other kind of tar."""

import gzip
import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shards import tar_stream
from shards.tar_stream import TarStream
from tests.shards.corpus_factory import write_corpus

EVERYTHING = 1 << 30


def _reference(data, read_limit=EVERYTHING):
    """tarfile alone: every header, the data of the regular members up to ``read_limit`` bytes (the others
    skipped unread), and the error that ends the stream (the reader's end checks included)."""
    seen = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|*") as archive:
            for info in archive:
                archive.members = []
                body = archive.extractfile(info).read() if info.isreg() and info.size <= read_limit else None
                seen.append((info.name, info.type, info.size, info.offset_data, info.isreg(), body))
            if archive.fileobj.tell() != archive.offset + tarfile.BLOCKSIZE:
                raise tarfile.ReadError("cut short: no end-of-archive block")
            while chunk := archive.fileobj.read(1 << 16):
                if chunk.strip(b"\0"):
                    raise tarfile.ReadError("a damaged header, or data after the end of the archive")
    except Exception as exc:
        return seen, f"{type(exc).__name__}: {exc}"
    return seen, None


class _Trickle(io.RawIOBase):
    """A stream that returns at most ``step`` bytes a read (a pipe or socket may)."""

    def __init__(self, data, step=700):
        self.data, self.at, self.step = data, 0, step

    def read(self, size=-1):
        size = self.step if size < 0 else min(size, self.step)
        chunk = self.data[self.at : self.at + size]
        self.at += len(chunk)
        return chunk


def _ours(data, read_limit=EVERYTHING, trickle=False):
    seen = []
    try:
        archive = TarStream(_Trickle(data) if trickle else io.BytesIO(data))
        for header in archive:
            body = archive.read_data() if header.regular and header.size <= read_limit else None
            seen.append((*header, body))
    except Exception as exc:
        return seen, f"{type(exc).__name__}: {exc}"
    return seen, None


@pytest.fixture(scope="module")
def our_shard(tmp_path_factory):
    directory = tmp_path_factory.mktemp("corpus")
    write_corpus(str(directory), 1, 4)
    return (directory / "synthpedes-000000.tar").read_bytes()


def _tar(members, fmt=tarfile.USTAR_FORMAT, **options):
    """A tar of ``(TarInfo or name, data)`` members written by tarfile."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt, **options) as archive:
        for info, data in members:
            info = info if isinstance(info, tarfile.TarInfo) else tarfile.TarInfo(info)
            if info.isreg():
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def _kind(name, type_, **fields):
    info = tarfile.TarInfo(name)
    info.type = type_
    for field, value in fields.items():
        setattr(info, field, value)
    return info


def _with_checksum(block):
    """The header block with its checksum field recomputed (tarfile's own spelling)."""
    block = bytearray(block)
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % tarfile.calc_chksums(bytes(block))[0]
    return bytes(block)


def _base256_size(data, size):
    """``data`` (a ustar tar) with its first member's size field rewritten in GNU base-256."""
    block = bytearray(data[:512])
    block[124:136] = b"\x80" + size.to_bytes(11, "big")
    return _with_checksum(block) + data[512:]


def _signed_checksum(data):
    """``data`` (a tar whose first name has bytes >= 128) with its first header's checksum in the signed
    spelling that some old tars wrote (tarfile accepts either)."""
    block = bytearray(data[:512])
    block[148:156] = b"%06o\0 " % tarfile.calc_chksums(bytes(block))[1]
    return bytes(block) + data[512:]


def _typeflag_nul(data):
    """``data`` with its first member's typeflag NUL (a regular file in old tars; with a name ending in '/',
    a directory)."""
    return _with_checksum(data[:156] + b"\0" + data[157:512]) + data[512:]


def _build_shards(our_shard):
    """Tars of every kind the reader may meet, by name."""
    plain = [(f"k{i}.{m}", bytes([i + 1]) * (i * 300 + len(m))) for i in range(3) for m in ("jpg", "json", "txt")]
    long_name = "x" * 140 + ".jpg"
    prefixed = "d" * 60 + "/" + "x" * 60 + ".jpg"
    odd_kinds = [
        _kind("link.jpg", tarfile.SYMTYPE, linkname="/etc/passwd"),
        _kind("dir", tarfile.DIRTYPE),
        _kind("fifo.jpg", tarfile.FIFOTYPE),
        _kind("hard.jpg", tarfile.LNKTYPE, linkname="k0.jpg"),
    ]
    ustar = _tar(plain)
    return {
        "ours": our_shard,
        "ours gzipped": gzip.compress(our_shard, mtime=0),
        "ustar": ustar,
        "gnu long names": _tar(plain[:3] + [(long_name, b"L" * 700)] + plain[3:], tarfile.GNU_FORMAT),
        "gnu after an empty member": _tar([("empty.txt", b""), (long_name, b"L")] + plain, tarfile.GNU_FORMAT),
        "pax mid-stream": _tar(plain[:4] + [("k\xe9.jpg", b"pax" * 100)] + plain[4:], tarfile.PAX_FORMAT),
        "pax global header": _tar(plain, tarfile.PAX_FORMAT, pax_headers={"comment": "global"}),
        "ustar prefix": _tar(plain[:2] + [(prefixed, b"P" * 10)] + plain[2:]),
        "links, dirs, fifos": _tar(plain[:3] + [(info, b"") for info in odd_kinds] + plain[3:]),
        "contiguous member": _tar(plain[:2] + [(_kind("c.jpg", tarfile.CONTTYPE), b"C" * 900)] + plain[2:]),
        "base-256 size": _base256_size(ustar, len(plain[0][1])),
        "latin-1 name": _tar(plain[:1] + [("k\xe9.jpg", b"n" * 10)] + plain[1:], encoding="latin-1"),
        "signed checksum": _signed_checksum(_tar([("\xe9.jpg", b"s" * 10)] + plain, encoding="latin-1")),
        "v7 header": _with_checksum(ustar[:257] + b"\0" * 8 + ustar[265:512]) + ustar[512:],
        "typeflag NUL": _typeflag_nul(ustar),
        "old directory": _typeflag_nul(_tar([("olddir/", b"")] + plain)),
        "name like a bzip2 stream": _tar([("BZh91AY&SY.jpg", b"b")] + plain),
        "empty": b"",
        "zeros": b"\0" * 10240,
    }


@pytest.fixture(scope="module")
def shards(our_shard):
    return _build_shards(our_shard)


KINDS = sorted(_build_shards(b""))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("read_limit", [EVERYTHING, 500])
def test_every_kind_of_tar_reads_as_tarfile_reads_it(shards, kind, read_limit):
    data = shards[kind]
    expected = _reference(data, read_limit)
    assert _ours(data, read_limit) == expected
    assert _ours(data, read_limit, trickle=True) == expected
    if kind not in ("empty", "zeros", "name like a bzip2 stream"):
        assert expected[1] is None and expected[0]  # the kind is a whole tar with members


def test_the_odd_kinds_are_what_they_claim(shards):
    signed = shards["signed checksum"][:512]
    assert int(signed[148:154], 8) == tarfile.calc_chksums(signed)[1] != tarfile.calc_chksums(signed)[0]
    assert _reference(shards["old directory"])[0][0][:2] == ("olddir", tarfile.DIRTYPE)
    assert _reference(shards["latin-1 name"])[0][1][0] == "k\udce9.jpg"  # not UTF-8: tarfile's surrogates
    assert _reference(shards["typeflag NUL"])[0][0][1:2] == (tarfile.AREGTYPE,)
    assert _reference(shards["name like a bzip2 stream"])[1].startswith("ReadError")
    assert shards["base-256 size"][124] == 0x80 and _reference(shards["base-256 size"])[0][0][2] == 3


def test_base_256_size_is_read_by_tarfile_not_misread():
    data = _base256_size(_tar([("a.jpg", b"x" * 600), ("a.txt", b"t")]), 600)
    seen, error = _ours(data)
    assert error is None and [(name, size, body) for name, _, size, _, _, body in seen] == [
        ("a.jpg", 600, b"x" * 600),
        ("a.txt", 1, b"t"),
    ]


def test_our_writers_shards_never_need_tarfile(our_shard, monkeypatch):
    """webdataset's TarWriter writes plain ustar headers only: our own parser reads every one of them."""

    def refuse(*args, **kwargs):
        raise AssertionError("tarfile was asked to read our own shard")

    monkeypatch.setattr(tarfile, "open", refuse)
    seen, error = _ours(our_shard)
    assert error is None and len(seen) == 12
    assert [name.split(".", 1)[1] for name, *_ in seen] == ["jpg", "json", "txt"] * 4


@pytest.mark.parametrize("kind", ["gnu long names", "pax mid-stream", "links, dirs, fifos", "ours gzipped"])
def test_other_kinds_go_to_tarfile_for_the_rest(shards, monkeypatch, kind):
    opened = []
    real_open = tarfile.open
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: opened.append(k["mode"]) or real_open(*a, **k))
    _ours(shards[kind])
    assert opened == (["r|*"] if kind == "ours gzipped" else ["r|"])


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    cut=st.floats(0, 1),
    flip=st.one_of(st.none(), st.tuples(st.floats(0, 1), st.integers(1, 255))),
    read_limit=st.sampled_from([EVERYTHING, 500, 0]),
    trickle=st.booleans(),
)
def test_property_a_cut_or_damaged_tar_fails_as_tarfile_fails(shards, kind, cut, flip, read_limit, trickle):
    """Cut anywhere (inside a header, its data, its padding, the end blocks), a byte changed anywhere (a
    bad checksum, a damaged number, data after a damaged header): the same members, then the same error."""
    data = shards[kind]
    if flip is not None and data:
        at = int(flip[0] * (len(data) - 1))
        data = data[:at] + bytes([data[at] ^ flip[1]]) + data[at + 1 :]
    data = data[: int(cut * len(data))]
    assert _ours(data, read_limit, trickle) == _reference(data, read_limit)


@pytest.mark.parametrize("cut_in", ["first header", "second header", "data", "padding", "end block"])
def test_a_cut_shard_raises_what_tarfile_raises(our_shard, cut_in):
    members = _reference(our_shard)[0]
    first_end = members[0][3] + members[0][2]  # the first member's data ends here, then its padding
    padding = -first_end % 512
    last_end = members[-1][3] + members[-1][2] + -(members[-1][3] + members[-1][2]) % 512
    assert padding > 1
    cut = {
        "first header": 100,
        "second header": members[1][3] - 412,
        "data": members[0][3] + 100,
        "padding": first_end + padding // 2,
        "end block": last_end + 100,
    }[cut_in]
    seen, error = _ours(our_shard[:cut])
    assert (seen, error) == _reference(our_shard[:cut])
    assert (
        error
        == {
            "first header": "ReadError: truncated header",
            "second header": "ReadError: cut short: no end-of-archive block",
            "data": "ReadError: unexpected end of data",
            "padding": "ReadError: unexpected end of data",
            "end block": "ReadError: cut short: no end-of-archive block",
        }[cut_in]
    )


def test_a_bad_checksum_fails_as_tarfile_fails(our_shard):
    second = _reference(our_shard)[0][1][3] - 512
    for at in (0, second):  # the first and the second header
        damaged = our_shard[: at + 148] + b"7" + our_shard[at + 149 :]
        seen, error = _ours(damaged)
        assert (seen, error) == _reference(damaged)
        assert error == (
            "ReadError: bad checksum"
            if at == 0
            else "ReadError: a damaged header, or data after the end of the archive"
        )
        assert len(seen) == (0 if at == 0 else 1)


def test_a_checksum_off_by_the_adler_modulus_is_refused_as_tarfile_refuses_it():
    """A header busy enough to sum past 65521 (here through its linkname) is not one the pattern takes: with a
    checksum that is its sum mod 65521, tarfile finds it bad, and so do we."""
    block = bytearray(_tar([("a.jpg", b"x")])[:512])
    block[0:100] = b"\xff" * 100
    block[157:257] = b"\xff" * 100
    block[265:329] = b"\xff" * 64
    block[148:156] = b" " * 8
    total = tarfile.calc_chksums(bytes(block))[0]
    assert total > 65521
    block[148:156] = b"%06o\0 " % (total - 65521)
    data = bytes(block) + b"x".ljust(512, b"\0") + bytes(1024)
    assert _ours(data) == _reference(data) == ([], "ReadError: bad checksum")


_DIGITS = st.text("01234567", min_size=1, max_size=1)


@settings(max_examples=200, deadline=None)
@given(
    name=st.binary(min_size=100, max_size=100).filter(lambda b: b[0] != 0),
    owners=st.binary(min_size=64, max_size=64),
    digits=st.lists(_DIGITS, min_size=52, max_size=52),
    ends=st.lists(st.sampled_from([b"\0", b" "]), min_size=7, max_size=7),
    magic=st.sampled_from([b"ustar\x0000", b"ustar  \0"]),
)
def test_property_the_checksum_shortcut_equals_tarfiles_sum(name, owners, digits, ends, magic):
    """Adler-32's low half is the byte sum only below 65521: every header the pattern takes sums below it."""
    d = "".join(digits).encode()
    numbers = d[0:7] + ends[0] + d[7:14] + ends[1] + d[14:21] + ends[2] + d[21:32] + ends[3] + d[32:43] + ends[4]
    devices = d[43:50] + ends[5] + b"0000000" + ends[6]
    block = _with_checksum(name + numbers + b" " * 8 + b"0" + b"\0" * 100 + magic + owners + devices + b"\0" * 167)
    assert tar_stream._HEADER.fullmatch(block)
    assert tar_stream._unsigned_checksum(block) == tarfile.calc_chksums(block)[0]


def test_the_checksum_shortcut_holds_for_the_busiest_header_the_pattern_takes():
    block = _with_checksum(
        b"\xff" * 100
        + (b"7777777 " * 3 + b"77777777777 " * 2)
        + b" " * 8
        + b"0"
        + b"\0" * 100
        + b"ustar\x0000"
        + b"\xff" * 64
        + b"7777777 " * 2
        + b"\0" * 167
    )
    assert tar_stream._HEADER.fullmatch(block)
    assert tar_stream._unsigned_checksum(block) == tarfile.calc_chksums(block)[0] > 46_000
