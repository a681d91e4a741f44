"""pipelines.inputs: folder layout, keys, manifests."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.inputs import ImageRef, image_key, read_manifest, ref_from_path, resolve_input
from shards.sample import KEY_PATTERN


@pytest.mark.parametrize("file_path, key", [
    ("Part1/7/1.jpg", "Part1_7_1"),
    ("0001/c1s1_000151.jpg", None),   # '_' inside a part: hashed
    ("7/1.png", None),                # not .jpg: hashed, so 7/1.jpg and 7/1.png differ
])
def test_image_key(file_path, key):
    made = image_key(file_path)
    assert KEY_PATTERN.fullmatch(made)
    if key is not None:
        assert made == key
    else:
        assert made != image_key(file_path.replace("_", "-").replace(".png", ".jpg"))


def test_image_keys_stay_unique_and_short():
    paths = ["a_b/c.jpg", "a/b_c.jpg", "a/b-c.jpg", "x/" + "y" * 200 + ".jpg", "x/" + "y" * 201 + ".jpg"]
    keys = [image_key(p) for p in paths]
    assert len(set(keys)) == len(keys) and all(KEY_PATTERN.fullmatch(k) for k in keys)


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
