"""`spac mine-schema`: noun phrases of caption files in the three layouts, as a table or JSON."""

from __future__ import annotations

import json

import pytest

from spac.cli.main import main

FILES = {
    "reid_raw.json": [
        {
            "split": "train",
            "captions": [
                "A man with black hair in a black jacket and black pants.",
                "He wears a black hat and dark hair.",
            ],
            "file_path": "a.png",
            "processed_tokens": [],
            "id": 1,
        }
    ],
    "ICFG_PEDES.json": [
        {
            "split": "test",
            "captions": ["The woman has a black bag."],
            "file_path": "b.jpg",
            "processed_tokens": [],
            "id": 0,
        }
    ],
    "data_captions.json": [{"id": 3, "img_path": "c.jpg", "captions": ["A lady with purple hair."], "split": "val"}],
}


@pytest.fixture()
def files(tmp_path):
    for name, data in FILES.items():
        (tmp_path / name).write_text(json.dumps(data))
    return [str(tmp_path / name) for name in FILES]


def test_json_report(files, capsys):
    assert main(["mine-schema", *files, "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(f["format"], f["entries"], f["captions"]) for f in report["files"]] == [
        ("reid_raw", 1, 2),
        ("reid_raw", 1, 1),
        ("rstpreid", 1, 1),
    ]
    assert report["captions"] == 4
    hair = report["groups"]["hair"]
    assert (hair["mentions"], hair["covered"], hair["coverage"]) == (3, 1, pytest.approx(1 / 3))
    assert {p["phrase"]: p["value"] for p in hair["phrases"]} == {
        "black hair": "black hair",
        "dark hair": None,
        "purple hair": None,
    }
    assert report["groups"]["lower"]["phrases"] == [{"phrase": "black pants", "count": 1, "value": "black trousers"}]
    assert report["groups"]["other"]["phrases"] == [{"phrase": "black hat", "count": 1, "value": None}]


def test_table_report(files, capsys):
    assert main(["mine-schema", *files, "--top", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"{files[2]}: rstpreid, 1 entries, 1 captions" in out
    assert "hair                 3         1     33.3%         3" in out
    assert "hair (top 2 of 3):" in out and "NOT COVERED" in out


def test_help_explains_every_flag(capsys):
    assert main(["mine-schema", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--json", "--top", "--schema", "--quiet", "CAPTIONS.json", "RSTPReid", "ICFG-PEDES"):
        assert flag in text


@pytest.mark.parametrize(
    "content, argv, message",
    [
        ("[1]", [], "bad.json: entry 0: expected a JSON object, got int"),
        ('{"a": 1}', [], "bad.json: expected a JSON list of entries"),
        ("[", [], "bad.json: invalid JSON"),
        ("[]", ["--top", "0"], "argument --top: must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, argv, message):
    (tmp_path / "bad.json").write_text(content)
    assert main(["mine-schema", str(tmp_path / "bad.json"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spac mine-schema: error: ") and message in err and err.count("\n") == 1
