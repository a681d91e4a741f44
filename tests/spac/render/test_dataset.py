"""A rendered labelled folder: layout, labels and byte-identical reruns."""

import json

from spac.attributes import UNKNOWN, load_schema
from spac.render import render_dataset

SCHEMA = load_schema()


def test_render_dataset_writes_layout_and_labels_deterministically(tmp_path):
    records = render_dataset(tmp_path / "a", 2, 3, seed=5)
    render_dataset(tmp_path / "b", 2, 3, seed=5)
    lines = (tmp_path / "a" / "labels.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == records
    assert [r["file_path"] for r in records] == [f"{i:05d}/{n:03d}.jpg" for i in range(2) for n in range(3)]
    assert [r["id"] for r in records] == [0, 0, 0, 1, 1, 1]
    assert records[0]["attributes"] != records[3]["attributes"]
    for r in records:
        assert SCHEMA.validate(r["attributes"]) == r["attributes"]
        assert all(v in (r["attributes"][g], UNKNOWN) for g, v in r["visible"].items())
        assert (tmp_path / "a" / r["file_path"]).read_bytes() == (tmp_path / "b" / r["file_path"]).read_bytes()
    images = {(tmp_path / "a" / r["file_path"]).read_bytes() for r in records}
    assert len(images) == len(records)
