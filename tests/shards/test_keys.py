"""shards.keys: any path maps to a valid key; distinct paths to distinct keys; clean paths stay readable."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shards.keys import HASH_SEPARATOR, MAX_KEY_LENGTH, is_valid_key, make_key, path_bytes

# Paths as a file system hands them over: any bytes, decoded with surrogateescape like os.listdir does.
raw_paths = st.binary(max_size=300).map(lambda data: data.decode("utf-8", "surrogateescape"))
clean_part = st.from_regex(r"[A-Za-z0-9-]{1,12}", fullmatch=True)


@pytest.mark.parametrize(
    "file_path, key", [("Part1/7/1.jpg", "Part1_7_1"), ("7/1.jpg", "7_1"), ("0001/c1s1-000151.jpg", "0001_c1s1-000151")]
)
def test_clean_jpg_paths_keep_a_readable_key(file_path, key):
    assert make_key(file_path) == key


@pytest.mark.parametrize(
    "file_path",
    [
        "0001/c1s1_000151.jpg",
        "7/1.png",
        "a/b.JPG",
        "../x/1.jpg",
        "/etc/x.jpg",
        "a/b.c.jpg",
        "x/" + "y" * 200 + ".jpg",
        "é/1.jpg",
        "a\udcff/1.jpg",
        "",
    ],
)
def test_other_paths_get_a_hashed_key(file_path):
    key = make_key(file_path)
    assert is_valid_key(key) and re.fullmatch(r"(.+__)?[0-9a-f]{16}", key)


def test_a_crafted_readable_name_cannot_take_a_hashed_key():
    """Before: 'Part1/x/a.png' hashed to 'Part1_x_a_<hex>', which the file 'Part1/x/a/<hex>.jpg' also got."""
    hashed = make_key("Part1/x/a.png")
    digest = hashed.rsplit("_", 1)[-1]
    assert make_key(f"Part1/x/a/{digest}.jpg") != hashed
    assert make_key(f"Part1/x/a-png/{digest}.jpg") != hashed


@settings(max_examples=300, deadline=None)
@given(raw_paths)
def test_any_path_maps_to_a_valid_key(file_path):
    key = make_key(file_path)
    assert is_valid_key(key) and len(key) <= MAX_KEY_LENGTH and "." not in key and "/" not in key


@settings(max_examples=200, deadline=None)
@given(st.lists(raw_paths, min_size=2, max_size=30, unique_by=path_bytes))
def test_distinct_paths_get_distinct_keys(paths):
    assert len({make_key(p) for p in paths}) == len(paths)


@settings(max_examples=200, deadline=None)
@given(st.lists(clean_part, min_size=1, max_size=4))
def test_readable_keys_hold_the_path_parts(parts):
    file_path = "/".join(parts) + ".jpg"
    key = make_key(file_path)
    if len(key) <= MAX_KEY_LENGTH and HASH_SEPARATOR not in key:
        assert key.split("_") == parts


@pytest.mark.parametrize("key", ["../evil", "/etc/x", "a.b", "", "x" * 91, None, "a b"])
def test_unsafe_keys_are_invalid(key):
    assert not is_valid_key(key)
