import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from plip.programs.dataset_split import main, split_by_identity
from plip.programs.eval_data import read_dataset_json
from tests.plip.pedes_fixtures import make_entries, make_rstpreid_entries

REPO = Path(__file__).resolve().parents[3]


def _write(path: Path, entries) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


def test_no_arguments_splits_the_default_datasets_from_cwd(tmp_path, monkeypatch, capsys):
    _write(tmp_path / "data/CUHK-PEDES/reid_raw.json", make_entries({0: "train", 1: "train", 2: "test", 3: "val"}))
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    folder = tmp_path / "data/CUHK-PEDES"
    assert sorted(p.name for p in folder.iterdir()) == [
        "CUHK-PEDES-test.json",
        "CUHK-PEDES-train.json",
        "CUHK-PEDES-valid.json",
        "reid_raw.json",
    ]
    assert [e["id"] for e in json.loads((folder / "CUHK-PEDES-train.json").read_text())] == [0, 0, 1, 1]
    assert [e["split"] for e in json.loads((folder / "CUHK-PEDES-valid.json").read_text())] == ["val", "val"]
    out = capsys.readouterr().out
    assert "train        4 entries       2 identities" in out
    assert "test         2 entries       1 identities" in out
    assert "ICFG" not in out


def test_output_is_deterministic_and_keeps_entries_unchanged(tmp_path, monkeypatch):
    entries = make_entries({0: "test", 1: "train"})
    _write(tmp_path / "data/ICFG-PEDES/ICFG_PEDES.json", entries)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "data/ICFG-PEDES/ICFG-PEDES-test.json"
    main(["--quiet"])
    first = out.read_bytes()
    main(["--quiet"])
    assert out.read_bytes() == first
    assert json.loads(first) == entries[:2]


def test_file_without_split_is_split_by_identity(tmp_path, capsys):
    entries = make_entries({i % 6: "x" for i in range(6)}, images_per_id=3)
    for entry in entries:
        del entry["split"]
    source = _write(tmp_path / "SYNTH-PEDES/synthpedes_dataset.json", entries)
    args = ["--input", str(source), "--test-fraction", "0.34", "--valid-fraction", "0.17", "--seed", "3"]
    assert main(args) == 0
    splits = {s: json.loads((source.parent / f"SYNTH-PEDES-{s}.json").read_text()) for s in ("train", "test", "valid")}
    ids = {s: {e["id"] for e in entries} for s, entries in splits.items()}
    assert (len(ids["test"]), len(ids["valid"]), len(ids["train"])) == (2, 1, 3)
    assert not (ids["test"] & ids["valid"]) and not (ids["train"] & (ids["test"] | ids["valid"]))
    assert sum(len(e) for e in splits.values()) == len(entries)
    assert "test         6 entries       2 identities" in capsys.readouterr().out
    again = split_by_identity(entries, 0.34, 0.17, seed=3)
    assert {e["id"] for e in again["test"]} == ids["test"]
    other_seeds = [{e["id"] for e in split_by_identity(entries, 0.34, 0.17, seed=s)["test"]} for s in range(8)]
    assert len({frozenset(t) for t in other_seeds}) > 1  # the seed matters


@pytest.mark.parametrize(
    "content, args, message",
    [
        ("[{", [], r"reid_raw.json: not valid JSON \(line 1"),
        (
            json.dumps([{"split": "train", "captions": [], "file_path": "a.jpg", "id": 1}]),
            [],
            "reid_raw.json: entry 0: 'captions' must be a non-empty list of strings",
        ),
        (json.dumps(make_entries({0: "train"})), ["--test-fraction", "0.2"], "apply only to files without it"),
        (
            json.dumps(make_entries({0: "train"}) + [{"captions": ["x"], "file_path": "b.jpg", "id": 2}]),
            [],
            "entry 2: 'split' must be present in all entries or in none",
        ),
        (json.dumps(make_entries({0: "train"})), ["--name", "X"], "--name needs --input"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, content, args, message):
    (tmp_path / "data/CUHK-PEDES").mkdir(parents=True)
    (tmp_path / "data/CUHK-PEDES/reid_raw.json").write_text(content)
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0])


def test_module_run_without_datasets_exits_2_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "plip.dataset_split"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "python -m plip.dataset_split: error: no dataset found: expected "
        "data/CUHK-PEDES/reid_raw.json, data/ICFG-PEDES/ICFG_PEDES.json or "
        "data/RSTPReid/data_captions.json (or pass --input FILE)\n"
    )


def test_too_many_held_out_identities_is_an_error():
    entries = make_entries({0: "x", 1: "x"})
    with pytest.raises(ValueError, match="2 identities are too few"):
        split_by_identity(entries, 0.5, 0.5, seed=0)


RSTP_SPLITS = {0: "train", 1: "train", 2: "val", 3: "test", 4: "train"}


def test_rstpreid_is_split_beside_its_json_in_the_released_layout(tmp_path, monkeypatch, capsys):
    raw = make_rstpreid_entries(RSTP_SPLITS)
    _write(tmp_path / "data/RSTPReid/data_captions.json", raw)
    _write(tmp_path / "data/CUHK-PEDES/reid_raw.json", make_entries({0: "train", 1: "test"}))
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    folder = tmp_path / "data/RSTPReid"
    assert sorted(p.name for p in folder.iterdir()) == [
        "RSTPReid-test.json",
        "RSTPReid-train.json",
        "RSTPReid-valid.json",
        "data_captions.json",
    ]
    splits = {s: json.loads((folder / f"RSTPReid-{s}.json").read_text()) for s in ("train", "test", "valid")}
    # The released split files' layout, which its loaders read: img_path is file_path, key order as CUHK-PEDES'.
    assert splits["test"] == [
        {"split": "test", "captions": e["captions"], "file_path": e["img_path"], "id": 3} for e in raw if e["id"] == 3
    ]
    assert all(list(e) == ["split", "captions", "file_path", "id"] for entries in splits.values() for e in entries)
    assert [e["id"] for e in splits["train"]] == [0] * 5 + [1] * 5 + [4] * 5
    assert {e["split"] for e in splits["valid"]} == {"val"} and len(splits["valid"]) == 5
    assert (folder / "RSTPReid-test.json").read_text().startswith('[\n    {\n        "split": "test",')  # indent 4
    out = capsys.readouterr().out
    assert "data/RSTPReid/data_captions.json:\n  train       15 entries       3 identities" in out
    assert "CUHK-PEDES-train.json" in out  # the other datasets found are still split
    # The split files read back as they are, and a second run writes the same bytes.
    assert read_dataset_json(folder / "RSTPReid-train.json", require_split=False) == splits["train"]
    first = (folder / "RSTPReid-train.json").read_bytes()
    assert main(["--quiet", "--input", str(folder / "data_captions.json")]) == 0  # --name defaults to RSTPReid
    assert (folder / "RSTPReid-train.json").read_bytes() == first


@pytest.mark.parametrize(
    "change, message",
    [
        ({"img_path": ""}, "data_captions.json: entry 7: 'img_path' must be a non-empty string, got ''"),
        ({"img_path": "/abs/0001.jpg"}, "data_captions.json: entry 7: 'img_path' must be relative"),
        ({"img_path": None}, "data_captions.json: entry 7: 'img_path' must be a non-empty string, got None"),
        ({"id": "1"}, "data_captions.json: entry 7: 'id' must be a non-negative integer, got '1'"),
        ({"captions": "a man"}, "data_captions.json: entry 7: 'captions' must be a non-empty list of strings"),
        ({"split": 3}, "data_captions.json: entry 7: 'split' must be a string"),
    ],
)
def test_a_malformed_rstpreid_entry_is_one_line_naming_index_and_field(tmp_path, monkeypatch, capsys, change, message):
    entries = make_rstpreid_entries(RSTP_SPLITS)
    entries[7].update(change)
    entries[7] = {k: v for k, v in entries[7].items() if v is not None}
    _write(tmp_path / "data/RSTPReid/data_captions.json", entries)
    monkeypatch.chdir(tmp_path)
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and not list((tmp_path / "data/RSTPReid").glob("RSTPReid-*.json"))
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_help_names_every_dataset(capsys):
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Split CUHK-PEDES, ICFG-PEDES, RSTPReid or SYNTH-PEDES JSON files" in out
    assert "RSTPReid/data_captions.json (default: data)" in out
