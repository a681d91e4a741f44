"""Stable digests: fixed values on every run and machine, the widths asked for, chunked file hashing."""

import hashlib
import io
import subprocess
import sys

import pytest

from common.digests import file_sha256, stable_hex, stable_int, stream_sha256


def test_stable_int_is_blake2b_over_the_joined_parts():
    data = b"img-1\x1f3\x1fstyle:dense"
    full = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")
    assert stable_int("img-1", 3, "style:dense", bits=64) == full
    assert stable_int("img-1", 3, "style:dense") == full >> 1


@pytest.mark.parametrize("bits", [1, 8, 63, 64])
def test_stable_int_has_the_width_asked_for(bits):
    values = [stable_int("k", i, bits=bits) for i in range(200)]
    assert all(0 <= v < 2**bits for v in values)
    assert max(values) >= 2 ** (bits - 1)  # the top bit is used


def test_stable_int_separates_parts_and_refuses_bad_widths():
    assert stable_int("ab", "c") != stable_int("a", "bc")
    assert stable_int(1, 2) == stable_int("1", "2")
    for bits in (0, 65):
        with pytest.raises(ValueError, match="bits must be 1..64"):
            stable_int("x", bits=bits)


def test_digests_do_not_depend_on_the_process_hash_seed():
    code = "from common.digests import stable_int, stable_hex; print(stable_int('a', 1), stable_hex('a', 1))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": seed}
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {f"{stable_int('a', 1)} {stable_hex('a', 1)}\n"}


def test_stable_hex_is_sha256_over_nul_joined_parts():
    assert stable_hex("key", 0) == hashlib.sha256(b"key\x000").hexdigest()
    assert stable_hex("key", 0) != stable_hex("key", 1)


def test_file_and_stream_sha256(tmp_path):
    data = bytes(range(256)) * 5000
    (tmp_path / "blob").write_bytes(data)
    assert file_sha256(tmp_path / "blob") == hashlib.sha256(data).hexdigest()
    stream = io.BytesIO(data)
    stream.read(10)
    assert stream_sha256(stream) == hashlib.sha256(data[10:]).hexdigest()  # what is left of the stream


def test_stable_int_after_a_prefix_equals_stable_int_of_all_parts() -> None:
    from common.digests import stable_int_after, stable_prefix

    for parts, last in ((("key-1", 0), "style:dense"), (("ünï/cødé", 12345), "library"), ((), "x"), ((7,), 3)):
        prefix = stable_prefix(*parts)
        for bits in (1, 63, 64):
            assert stable_int_after(prefix, last, bits) == stable_int(*parts, last, bits=bits)
    with pytest.raises(ValueError, match="bits"):
        stable_int_after("", "x", 65)


def test_stable_draws_equal_stable_int_of_all_parts_at_64_bits() -> None:
    from common.digests import StableDraws

    for parts, last in ((("key-1", 0), "style:dense"), (("ünï/cødé\udcff", 12345), "library"), ((), "x")):
        draws = StableDraws(*parts)
        assert draws(last.encode()) == stable_int(*parts, last, bits=64)
        assert draws(last.encode()) == stable_int(*parts, last, bits=64)  # a draw leaves the shared hash as it was
