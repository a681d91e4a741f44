"""pipelines.shared.corpus_parts: corpus-wide files streamed from parts."""

from __future__ import annotations

import json

from pipelines.shared import corpus_parts
from shards import layout


def test_dataset_json_streams_the_shard_parts_in_index_order(tmp_path):
    corpus_parts.write_part(str(tmp_path), corpus_parts.dataset_part_name(1), '{"id": 2},\n{"id": 3}')
    corpus_parts.write_part(str(tmp_path), corpus_parts.dataset_part_name(0), '{"id": 1}')
    corpus_parts.assemble_dataset_json([1, 0], str(tmp_path), layout.DATASET_NAME)
    text = (tmp_path / "synthpedes_dataset.json").read_text()
    assert json.loads(text) == [{"id": 1}, {"id": 2}, {"id": 3}] and text.count("\n") == 5  # one entry a line
    assert not (tmp_path / corpus_parts.PARTS_DIR).exists()
    corpus_parts.assemble_dataset_json([], str(tmp_path), layout.DATASET_NAME)
    assert (tmp_path / "synthpedes_dataset.json").read_text() == "[]\n"
