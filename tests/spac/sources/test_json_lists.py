"""spac.sources.json_lists: a JSON list's entries read one at a time, whatever the chunk boundaries; faults say
where, after the entries before them."""
from __future__ import annotations

import io
import json

import pytest

from spac.sources.json_lists import JsonListError, iter_json_list

ENTRIES = [{"id": 1, "file_path": "Part1/1/1.jpg", "captions": ["A man, [in] {red}.", "caf\u00e9 \"quoted\""]},
           {"id": 2, "nested": {"a": [1, 2.5, None, True]}, "text": "x" * 300}, 12345678901234567890, "plain", [],
           {}]


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
    assert read_all("\ufeff \n[ {\"a\": 1} ,\n {\"b\": 2} ]\n") == [{"a": 1}, {"b": 2}]


def test_an_undecodable_byte_spoils_only_its_own_text():
    data = b'[{"caption": "caf\xe9"}, {"caption": "fine"}]'
    first, second = read_all(data)
    assert first["caption"] == "caf\udce9" and second == {"caption": "fine"}


@pytest.mark.parametrize("text, index, message", [
    ("", 0, "expected a JSON list ('['), found an empty file"),
    ('{"a": 1}', 0, "expected a JSON list ('['), found '{'"),
    ('[{"a": 1}, {"b": }, {"c": 3}]', 1, "entry 1: invalid JSON (Expecting value"),
    ('[{"a": 1} {"b": 2}]', 1, "expected ',' or ']' after entry 0"),
    ('[{"a": 1}, {"b": 2}', 2, "the file ends inside the list"),
    ('[{"a": 1}, {"b": "cut', 1, "entry 1: invalid JSON (Unterminated string"),
    ('[{"a": 1}] trailing', 1, "text after the end of the list"),
    ('[{"a": 1},]', 1, "entry 1: invalid JSON"),
])
def test_a_fault_is_one_line_after_the_entries_before_it(text, index, message):
    entries = iter_json_list(io.BytesIO(text.encode()), "data.json", chunk_bytes=4)
    read = []
    with pytest.raises(JsonListError) as caught:
        for entry in entries:
            read.append(entry)
    assert message in str(caught.value) and str(caught.value).startswith("data.json")
    assert "\n" not in str(caught.value) and caught.value.index == index
    assert read == [{"a": 1}, {"b": 2}][:len(read)] and len(read) == min(index, 2)


def test_a_fault_in_the_middle_of_a_big_file_is_found_without_reading_on():
    head = "[" + ",".join(json.dumps({"n": n}) for n in range(100)) + ', {"bad": nope}, '
    stream = Tracked((head + ",".join(['{"n": 0}'] * 100000) + "]").encode())
    with pytest.raises(JsonListError, match="entry 100: invalid JSON"):
        list(iter_json_list(stream, chunk_bytes=4096))
    assert stream.tell() <= 3 * 4096


def test_an_entry_longer_than_the_limit_stops_the_reading():
    text = json.dumps([{"a": 1}, {"b": "z" * 5000}, {"c": 3}])
    with pytest.raises(JsonListError, match="entry 1: longer than 1000 characters") as caught:
        list(iter_json_list(io.BytesIO(text.encode()), chunk_bytes=256, max_entry_chars=1000))
    assert caught.value.index == 1


def test_deep_nesting_is_a_one_line_fault():
    with pytest.raises(JsonListError, match="entry 0: invalid JSON"):
        read_all("[" + "[" * 100000 + "]" * 100000 + "]")
