"""`spac mine-labels`: the three caption layouts in, one parquet table of mined labels out."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from spac.cli.main import main

CUHK = [
    {
        "split": "train",
        "captions": [
            "A woman with long black hair in a white top, blue jeans and black shoes.",
            "She wears a white t-shirt and carries a brown bag.",
        ],
        "file_path": "CUHK01/0001.png",
        "processed_tokens": [],
        "id": 1,
    },
    {
        "split": "test",
        "captions": ["A man in a grey hoodie."],
        "file_path": "CUHK01/0002.png",
        "processed_tokens": [],
        "id": 2,
    },
]
ICFG = [
    {
        "split": "train",
        "captions": ["The man wears black pants and no bag."],
        "file_path": "train/0000/1.jpg",
        "processed_tokens": [],
        "id": 0,
    }
]
RSTP = [
    {
        "id": 5,
        "img_path": "0005_c1.jpg",
        "captions": ["A person in a red coat.", "A pedestrian in red."],
        "split": "val",
    }
]


@pytest.fixture()
def files(tmp_path):
    paths = []
    for name, data in (("reid_raw.json", CUHK), ("ICFG_PEDES.json", ICFG), ("data_captions.json", RSTP)):
        (tmp_path / name).write_text(json.dumps(data))
        paths.append(str(tmp_path / name))
    return paths


def test_labels_of_every_layout_into_one_table(files, tmp_path, capsys):
    out = tmp_path / "labels.parquet"
    assert main(["mine-labels", *files, "--out", str(out), "--quiet"]) == 0
    table = pd.read_parquet(out)
    assert list(table.columns) == [
        "file_path",
        "id",
        "split",
        "gender",
        "hair",
        "upper",
        "lower",
        "shoes",
        "belongings",
        "source",
    ]
    assert table["id"].dtype == "int64"
    rows = table.drop(columns="source").to_dict("records")
    assert rows == [
        {
            "file_path": "CUHK01/0001.png",
            "id": 1,
            "split": "train",
            "gender": "woman",
            "hair": "long black hair",
            "upper": "white t-shirt",
            "lower": "blue jeans",
            "shoes": "black shoes",
            "belongings": "brown bag",
        },
        {
            "file_path": "CUHK01/0002.png",
            "id": 2,
            "split": "test",
            "gender": "man",
            "hair": "unknown",
            "upper": "grey hoodie",
            "lower": "unknown",
            "shoes": "unknown",
            "belongings": "unknown",
        },
        {
            "file_path": "train/0000/1.jpg",
            "id": 0,
            "split": "train",
            "gender": "man",
            "hair": "unknown",
            "upper": "unknown",
            "lower": "black trousers",
            "shoes": "unknown",
            "belongings": "nothing",
        },
        {
            "file_path": "0005_c1.jpg",
            "id": 5,
            "split": "val",
            "gender": "unknown",
            "hair": "unknown",
            "upper": "red coat",
            "lower": "unknown",
            "shoes": "unknown",
            "belongings": "unknown",
        },
    ]
    assert list(table["source"]) == [files[0], files[0], files[1], files[2]]
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == ["group", "known", "coverage"]
    assert printed[1].split() == ["gender", "3", "75.0%"] and printed[3].split() == ["upper", "3", "75.0%"]
    assert printed[-1] == f"wrote 4 images' labels to {out}"


def test_help_explains_every_flag(capsys):
    assert main(["mine-labels", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--out", "--schema", "--quiet", "FILE.json"):
        assert flag in text


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda tmp: ["mine-labels", str(tmp / "none.json"), "--out", str(tmp / "o.parquet")],
            "No such file or directory",
        ),
        (
            lambda tmp: ["mine-labels", str(tmp / "bad.json"), "--out", str(tmp / "o.parquet")],
            "bad.json: entry 1: 'id' must be an integer",
        ),
        (lambda tmp: ["mine-labels", str(tmp / "bad.json")], "the following arguments are required: --out"),
        (lambda tmp: ["mine-labels", str(tmp / "bad.json"), "--out", str(tmp / "no" / "o.parquet")], "no such folder"),
        (lambda tmp: ["mine-labels", str(tmp / "bad.json"), "--out", str(tmp)], "is a directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, make, message):
    (tmp_path / "bad.json").write_text(json.dumps([CUHK[0], {**CUHK[1], "id": "x"}]))
    assert main(make(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("spac mine-labels: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o.parquet").exists()
