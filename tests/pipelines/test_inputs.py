"""pipelines.inputs: folder layout, keys, manifests."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.inputs import ImageRef, read_manifest, ref_from_path, resolve_input


def test_ref_from_path_reads_the_layout(tmp_path):
    root = str(tmp_path)
    assert ref_from_path(root, f"{root}/Part1/7/1.jpg") == ImageRef(f"{root}/Part1/7/1.jpg", "Part1/7/1.jpg",
                                                                      "Part1/7", "Part1_7_1")
    assert ref_from_path(root, f"{root}/7/1.jpg").identity == "7"
    assert "layout" in ref_from_path(root, f"{root}/a/b/c/d.jpg")


def test_resolve_input(tmp_path):
    assert resolve_input(str(tmp_path)).pattern == f"{tmp_path}/**"
    glob = resolve_input(f"{tmp_path}/Part*/*/*.jpg")
    assert glob.root == str(tmp_path) and glob.pattern.endswith("Part*/*/*.jpg")
    with pytest.raises(ValueError, match="does not exist"):
        resolve_input(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="manifest"):
        resolve_input(str(tmp_path / "missing.csv"))


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_manifest_formats(tmp_path, suffix):
    rows = [{"path": "imgs/0.jpg", "identity": "17"}, {"path": "/abs/x/5.jpg", "identity": "3"}]
    path = tmp_path / f"list.{suffix}"
    if suffix == "csv":
        path.write_text("path,identity\n" + "".join(f"{r['path']},{r['identity']}\n" for r in rows))
    elif suffix == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    refs = read_manifest(str(path))
    assert [(r.source, r.file_path, r.identity) for r in refs] == [
        (f"{tmp_path}/imgs/0.jpg", "imgs/0.jpg", "17"), ("/abs/x/5.jpg", "3/5.jpg", "3")]


def test_manifest_without_identity_is_refused(tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text('{"path": "a.jpg"}\n')
    with pytest.raises(ValueError, match="row 1"):
        read_manifest(str(path))


def test_manifest_rows_stored_under_one_file_path_are_refused(tmp_path):
    path = tmp_path / "list.jsonl"
    rows = [{"path": "/a/x/1.jpg", "identity": "3"}, {"path": "/a/x/1.jpg", "identity": "3"},
            {"path": "/b/x/1.jpg", "identity": "3"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="row 3: /b/x/1.jpg would be stored as 3/1.jpg"):
        read_manifest(str(path))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    assert len(read_manifest(str(path))) == 1  # the same row twice is one image


def _manifest(tmp_path, rows):
    path = tmp_path / "list.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("row", [{"path": "../outside/1.jpg", "identity": "1"},
                                 {"path": "a/../../1.jpg", "identity": "1"},
                                 {"path": "/abs/1.jpg", "identity": "../../etc"}])
def test_manifest_rows_that_would_leave_the_corpus_root_are_refused(tmp_path, row):
    with pytest.raises(ValueError, match="row 1: .*outside the corpus root"):
        read_manifest(_manifest(tmp_path, [row]))


def test_manifest_paths_are_normalised_so_one_file_is_one_image(tmp_path):
    refs = read_manifest(_manifest(tmp_path, [{"path": "a/1.jpg", "identity": "a"},
                                              {"path": "x/../a/./1.jpg", "identity": "a"}]))
    assert [(r.file_path, r.key) for r in refs] == [("a/1.jpg", "a_1")]


def test_a_plain_file_that_is_not_a_manifest_is_refused(tmp_path):
    (tmp_path / "images.txt").write_text("a.jpg\n")
    with pytest.raises(ValueError, match="is a file but not a manifest"):
        resolve_input(str(tmp_path / "images.txt"))
