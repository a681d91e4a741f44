"""spac.sources.caption_files: the three caption-file layouts read into one record type; malformed files
are one-line errors naming the file and the entry index."""

from __future__ import annotations

import json

import pytest

from spac.sources.caption_files import REID_RAW, RSTPREID, CaptionRecord, read_caption_file, read_caption_files

CUHK = [  # CUHK-PEDES reid_raw.json
    {
        "split": "train",
        "captions": ["A man in a red coat.", "The man wears a red coat and jeans."],
        "file_path": "CUHK01/0363004.png",
        "processed_tokens": [["a", "man"], ["the", "man"]],
        "id": 1,
    },
    {
        "split": "test",
        "captions": ["A woman with a black bag."],
        "file_path": "test_query/p10_s1.jpg",
        "processed_tokens": [["a", "woman"]],
        "id": 2,
    },
]
ICFG = [  # ICFG-PEDES ICFG_PEDES.json: same layout, one caption, ids from 0
    {
        "split": "train",
        "captions": ["The woman has long black hair."],
        "file_path": "train/0000/0000_010_01_0303morning_0004_0.jpg",
        "processed_tokens": [["the", "woman"]],
        "id": 0,
    },
]
RSTP = [  # RSTPReid data_captions.json
    {
        "id": 0,
        "img_path": "0000_c14_0031.jpg",
        "captions": ["A man in a grey jacket.", "He wears black shoes."],
        "split": "val",
    },
]


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "name, data, layout",
    [("reid_raw.json", CUHK, REID_RAW), ("ICFG_PEDES.json", ICFG, REID_RAW), ("data_captions.json", RSTP, RSTPREID)],
)
def test_each_layout_reads_into_records(tmp_path, name, data, layout):
    result = read_caption_file(_write(tmp_path, name, data))
    assert result.format == layout
    assert result.source.endswith(name)
    path_key = "file_path" if layout == REID_RAW else "img_path"
    assert result.records == tuple(CaptionRecord(e["id"], e[path_key], tuple(e["captions"]), e["split"]) for e in data)
    assert result.captions == sum(len(e["captions"]) for e in data)


def test_several_files_keep_their_own_layouts(tmp_path):
    files = [_write(tmp_path, "a.json", CUHK), _write(tmp_path, "b.json", RSTP)]
    assert [f.format for f in read_caption_files(files)] == [REID_RAW, RSTPREID]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"images": []}, "expected a JSON list of entries, got a JSON dict"),
        ([], "the file holds no entries"),
        ([{"id": 1, "captions": [], "split": "train"}], "entry 0: neither 'file_path' .* nor 'img_path'"),
        ([3], "entry 0: expected a JSON object, got int"),
        ([CUHK[0], {**CUHK[1], "id": "2"}], "entry 1: 'id' must be an integer"),
        ([CUHK[0], {**CUHK[1], "id": True}], "entry 1: 'id' must be an integer"),
        ([CUHK[0], CUHK[1], {k: v for k, v in CUHK[1].items() if k != "split"}], "entry 2: missing key 'split'"),
        ([CUHK[0], RSTP[0]], r"entry 1: missing key 'file_path' \(the file is in the CUHK-PEDES"),
        ([RSTP[0], {**RSTP[0], "captions": "A man."}], "entry 1: 'captions' must be a list of strings"),
        ([RSTP[0], {**RSTP[0], "captions": ["A man.", None]}], r"entry 1: captions\[1\] must be a string"),
        ([{**RSTP[0], "img_path": ""}], "entry 0: 'img_path' must be a non-empty string"),
        ([{**RSTP[0], "split": 1}], "entry 0: 'split' must be a string"),
    ],
)
def test_malformed_files_are_one_line_errors_naming_file_and_entry(tmp_path, data, message):
    path = _write(tmp_path, "bad.json", data)
    with pytest.raises(ValueError, match=message) as info:
        read_caption_file(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_unreadable_files(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('[{"id": 1,', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken.json: invalid JSON \(.* at line 1\)"):
        read_caption_file(broken)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe[")
    with pytest.raises(ValueError, match="binary.json: not UTF-8 text"):
        read_caption_file(binary)
    with pytest.raises(FileNotFoundError):
        read_caption_file(tmp_path / "missing.json")
