"""`spac mine-templates`: the three caption layouts in, a sentence library that loads out, and what became
of every caption printed; bad input is one line and exit 2."""

from __future__ import annotations

import re

import pytest

from spac.attributes import load_schema
from spac.captioning.library import load_library
from spac.cli.main import main
from spac.mining.templates import TemplateMiner, library_yaml
from spac.sources.caption_files import read_caption_file
from tests.spac.mining_files import human_images, write_caption_files


def test_every_layout_mined_into_one_library(tmp_path, capsys):
    files = write_caption_files(tmp_path)
    assert [read_caption_file(f).format for f in files] == ["reid_raw", "reid_raw", "rstpreid"]
    out = tmp_path / "sentences.yaml"
    assert main(["mine-templates", *map(str, files), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(captions read|masked|kept|dropped)\s+(\d+)$", printed, re.M)}
    total = sum(len(c) for c in human_images())
    assert counts["captions read"] == total == counts["kept"] + counts["dropped"]
    reasons = [int(m[1]) for m in re.finditer(r"^  \S.*?\s+(\d+)$", printed, re.M)]
    assert sum(reasons) == counts["dropped"] and counts["kept"] >= 15
    assert "near-duplicate" in printed and "from the bundled library" in printed
    library = load_library(out, load_schema())
    assert f"wrote {counts['kept']} mined sentences ({len(library.sentences)} in all) to {out}" in printed
    # the same library as the miner makes from the captions in that order, under a header naming the sources
    text = out.read_text()
    captions = [c for f in files for r in read_caption_file(f).records for c in r.captions]
    body = library_yaml(TemplateMiner().mine(captions))
    assert text.endswith(body[body.index("\nsentences:") :]) and "reid_raw.json (" in text.splitlines()[1]
    assert not list(tmp_path.glob("*.partial"))


def test_a_tighter_threshold_keeps_more(tmp_path, capsys):
    files = list(map(str, write_caption_files(tmp_path)))
    kept = []
    for threshold in ("0.6", "1"):
        assert (
            main(
                [
                    "mine-templates",
                    *files,
                    "--out",
                    str(tmp_path / f"{threshold}.yaml"),
                    "--quiet",
                    "--jaccard",
                    threshold,
                ]
            )
            == 0
        )
        kept.append(int(re.search(r"^kept\s+(\d+)$", capsys.readouterr().out, re.M)[1]))
    assert kept[0] < kept[1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.json", "--out", "lib.yaml"], "missing.json"),
        (["{good}", "--out", "nowhere/lib.yaml"], "no such folder"),
        (["{good}", "--out", "."], "is a directory"),
        (["{good}", "--out", "lib.yaml", "--jaccard", "0"], "Jaccard similarity in (0, 1]"),
        (["{good}", "--out", "lib.yaml", "--jaccard", "2"], "argument --jaccard: must be between 0 and 1"),
        (["{good}", "--out", "lib.yaml", "--refills", "0"], "argument --refills: must be at least 1"),
        (["{bad}", "--out", "lib.yaml"], "entry 0: neither 'file_path'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    good = write_caption_files(tmp_path)[0]
    (tmp_path / "bad.json").write_text('[{"id": 1, "captions": []}]')
    args = [a.replace("{good}", str(good)).replace("{bad}", "bad.json") for a in args]
    assert main(["mine-templates", *args, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spac mine-templates: error: ") and message in err[0], err
    assert not (tmp_path / "lib.yaml").exists()
