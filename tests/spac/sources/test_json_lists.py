"""spac.sources.json_lists: a JSON list's entries read one at a time, whatever the chunk boundaries; faults say
where, after the entries before them."""

from __future__ import annotations

import io
import json

import pytest

from spac.sources.json_lists import DEFAULT_MAX_DEPTH, JsonListError, SkippedEntry, iter_json_list

ENTRIES = [
    {"id": 1, "file_path": "Part1/1/1.jpg", "captions": ["A man, [in] {red}.", 'caf\u00e9 "quoted"']},
    {"id": 2, "nested": {"a": [1, 2.5, None, True]}, "text": "x" * 300},
    12345678901234567890,
    "plain",
    [],
    {},
]


class Tracked(io.BytesIO):
    """Counts the largest read, so a test can see the stream is read in chunks."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        return super().read(size)


def read_all(text: str | bytes, **options) -> list:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return list(iter_json_list(io.BytesIO(data), "data.json", **options))


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("indent", [None, 1])
def test_entries_come_back_whatever_the_chunk_boundaries(chunk_bytes, indent):
    text = json.dumps(ENTRIES, indent=indent, ensure_ascii=False)
    assert read_all(text, chunk_bytes=chunk_bytes) == ENTRIES


def test_the_stream_is_read_in_chunks_and_entries_come_before_the_end():
    data = json.dumps([{"n": n, "pad": "y" * 100} for n in range(2000)]).encode()
    stream = Tracked(data)
    entries = iter_json_list(stream, chunk_bytes=4096)
    assert next(entries) == {"n": 0, "pad": "y" * 100}
    assert stream.tell() <= 4096 * 2  # the first entry came without reading the whole file
    assert sum(1 for _ in entries) == 1999


@pytest.mark.parametrize("text", ["[]", " [ ] \n", "\ufeff[]"])
def test_an_empty_list_has_no_entries(text):
    assert read_all(text) == []


def test_a_bom_and_white_space_are_skipped():
    assert read_all('\ufeff \n[ {"a": 1} ,\n {"b": 2} ]\n') == [{"a": 1}, {"b": 2}]


def test_an_undecodable_byte_spoils_only_its_own_entry():
    data = b'[{"caption": "caf\xe9"}, {"caption": "fine"}]'
    first, second = read_all(data)
    assert isinstance(first, SkippedEntry) and first.index == 0 and "not valid Unicode" in first.reason
    assert second == {"caption": "fine"}


@pytest.mark.parametrize(
    "text, index, message",
    [
        ("", 0, "expected a JSON list ('['), found an empty file"),
        ('{"a": 1}', 0, "expected a JSON list ('['), found '{'"),
        ('[{"a": 1}, {"b": }, {"c": 3}]', 1, "entry 1: invalid JSON (Expecting value"),
        ('[{"a": 1} {"b": 2}]', 1, "expected ',' or ']' after entry 0"),
        ('[{"a": 1}, {"b": 2}', 2, "the file ends inside the list"),
        ('[{"a": 1}, {"b": "cut', 1, "entry 1: invalid JSON (Unterminated string"),
        ('[{"a": 1}] trailing', 1, "text after the end of the list"),
        ('[{"a": 1},]', 1, "entry 1: invalid JSON"),
    ],
)
def test_a_fault_is_one_line_after_the_entries_before_it(text, index, message):
    entries = iter_json_list(io.BytesIO(text.encode()), "data.json", chunk_bytes=4)
    read = []
    with pytest.raises(JsonListError) as caught:
        for entry in entries:
            read.append(entry)
    assert message in str(caught.value) and str(caught.value).startswith("data.json")
    assert "\n" not in str(caught.value) and caught.value.index == index
    assert read == [{"a": 1}, {"b": 2}][: len(read)] and len(read) == min(index, 2)


def test_a_fault_in_the_middle_of_a_big_file_is_found_without_reading_on():
    head = "[" + ",".join(json.dumps({"n": n}) for n in range(100)) + ', {"bad": nope}, '
    stream = Tracked((head + ",".join(['{"n": 0}'] * 100000) + "]").encode())
    with pytest.raises(JsonListError, match="entry 100: invalid JSON"):
        list(iter_json_list(stream, chunk_bytes=4096))
    assert stream.tell() <= 3 * 4096


def test_an_entry_longer_than_the_limit_is_skipped_and_the_reading_goes_on():
    text = json.dumps([{"a": 1}, {"b": "z" * 5000}, {"c": 3}])
    first, skipped, third = iter_json_list(io.BytesIO(text.encode()), chunk_bytes=256, max_entry_chars=1000)
    assert (first, third) == ({"a": 1}, {"c": 3})
    assert skipped.index == 1 and skipped.reason.startswith("longer than 1000 characters")


def test_deep_nesting_is_one_skipped_entry():
    (skipped,) = read_all("[" + "[" * 100000 + "]" * 100000 + "]")
    assert skipped == SkippedEntry(0, f"nested deeper than {DEFAULT_MAX_DEPTH} levels; the entry starts at character 1")


# ---- issue 19: an entry too big, too deep or not Unicode is one skipped entry; the entries after it go on ----


def _list_of(*entries: str) -> bytes:
    return ("[" + ", ".join(entries) + "]").encode("utf-8")


GOOD = ['{"id": 0}', '{"id": 1}']
AFTER = ['{"id": 4}', '{"id": 5, "caption": "a \\"] } [, quoted"}']


@pytest.mark.parametrize("chunk_bytes", [7, 4096, 1 << 20])
def test_an_extra_key_nested_100000_deep_is_one_skipped_entry(chunk_bytes):
    before = [*GOOD, '{"id": 2}']
    deep = '{"id": 3, "extra": ' + '{"k": [' * 50000 + "1" + "]}" * 50000 + "}"
    entries = list(iter_json_list(io.BytesIO(_list_of(*before, deep, *AFTER)), "d.json", chunk_bytes=chunk_bytes))
    assert [e["id"] for e in entries if isinstance(e, dict)] == [0, 1, 2, 4, 5]
    start = len(_list_of(*before)) + 1  # after "[...]" less its "]", and ", "
    assert entries[3] == SkippedEntry(
        3, f"nested deeper than {DEFAULT_MAX_DEPTH} levels; the entry starts at character {start}"
    )
    assert entries[5]["caption"] == 'a "] } [, quoted'


def test_a_50_mb_caption_is_one_skipped_entry():
    big = '{"id": 2, "caption": "' + 'x\\"[{' * (10 << 20) + '"}'  # 50 MB, brackets and escaped quotes inside
    entries = list(iter_json_list(io.BytesIO(_list_of(*GOOD, big, *AFTER)), chunk_bytes=1 << 20))
    assert [e["id"] for e in entries if isinstance(e, dict)] == [0, 1, 4, 5]
    assert entries[2].index == 2 and entries[2].reason.startswith("longer than 16777216 characters")


@pytest.mark.parametrize(
    "entry, kept",
    [
        (b'{"caption": "caf\xff"}', False),  # a raw byte that is not UTF-8
        (b'{"caption": "\\ud800 alone"}', False),  # a lone surrogate escape
        (b'{"caption": "x", "\\udc00": 1}', False),  # in a key
        (b'{"caption": ["a", {"b": "\\udfff"}]}', False),  # nested
        (b'{"caption": "\\ud83d\\ude00"}', True),  # a pair: one emoji
        (b'{"caption": "\\\\ud800"}', True),  # an escaped backslash, then the letters ud800
    ],
)
def test_what_is_yielded_always_encodes_as_utf_8(entry, kept):
    first, entry_read, last = iter_json_list(io.BytesIO(b"[1, " + entry + b", 2]"))
    assert (first, last) == (1, 2)
    if kept:
        json.dumps(entry_read, ensure_ascii=False).encode("utf-8")
    else:
        assert isinstance(entry_read, SkippedEntry) and entry_read.index == 1
        assert "not valid Unicode" in entry_read.reason


def test_a_number_over_the_digit_limit_is_one_skipped_entry():
    first, skipped, last = read_all("[1, " + "9" * 5000 + ", 2]", chunk_bytes=64)
    assert (first, last) == (1, 2) and skipped.index == 1 and "4300 digits" in skipped.reason


@pytest.mark.parametrize("depth, skipped", [(DEFAULT_MAX_DEPTH, False), (DEFAULT_MAX_DEPTH + 1, True)])
def test_the_depth_limit_is_exact_and_the_same_at_any_stack_depth(depth, skipped):
    text = "[" + "[" * depth + "]" * depth + "]"

    def read_from(frames: int) -> list:
        return read_all(text) if frames == 0 else read_from(frames - 1)

    for frames in (0, 500):  # the C scanner's own limit depends on the caller's stack: ours does not
        (entry,) = read_from(frames)
        assert isinstance(entry, SkippedEntry) is skipped


def test_a_file_that_ends_inside_a_skipped_entry_is_a_one_line_fault():
    with pytest.raises(JsonListError, match="entry 1: the file ends inside the entry"):
        read_all('[{"a": 1}, ' + "[" * 1000 + '"unterminated', chunk_bytes=16)
