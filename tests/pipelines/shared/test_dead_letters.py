"""pipelines.shared.dead_letters: the dead-letter file, assembled from bucket parts in a fixed order."""

from __future__ import annotations

import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from pipelines.importing.outputs import entry_position
from pipelines.shared import corpus_parts, dead_letters


def test_dead_letter_file_is_assembled_from_bucket_parts_in_a_fixed_order(tmp_path):
    letters = [{"path": f"/in/{i}.jpg", "stage": "decode", "reason": "not a decodable image"} for i in range(200)]
    files = []
    for order in (letters, letters[::-1]):
        output = tmp_path / f"run{len(files)}"
        with TestPipeline() as pipeline:
            _ = pipeline | beam.Create(order) | dead_letters.WriteDeadLetterFile(str(output))
        files.append((output / "deadletter.jsonl").read_bytes())
        assert not (output / corpus_parts.PARTS_DIR).exists()  # parts are removed once assembled
    assert files[0] == files[1]
    assert sorted(json.loads(line)["path"] for line in files[0].decode().splitlines()) == sorted(
        letter["path"] for letter in letters
    )


def test_dead_letters_in_a_job_order_are_sorted_by_position_not_text(tmp_path):
    letters = [
        {"path": "p", "entry": 10, "stage": "parse", "reason": "r"},
        {"path": "p", "entry": 9, "stage": "decode", "reason": "r"},
        {"path": "x", "stage": "write", "reason": "no entry"},
        {"path": "p", "entry": 3 * corpus_parts.LETTERS_PER_BLOCK, "stage": "parse", "reason": "r"},
    ]
    with TestPipeline() as pipeline:
        write = dead_letters.WriteDeadLetterFile(str(tmp_path), position_of=entry_position)
        _ = pipeline | beam.Create(letters) | write
    lines = [json.loads(line) for line in (tmp_path / "deadletter.jsonl").read_text().splitlines()]
    assert [line.get("entry") for line in lines] == [None, 9, 10, 3 * corpus_parts.LETTERS_PER_BLOCK]
    assert not (tmp_path / corpus_parts.PARTS_DIR).exists()


def test_a_letter_is_one_json_line_with_sorted_keys_and_no_object_address():
    letter = dead_letters.dead_letter("/in/ü.jpg", "decode", "cannot read <object at 0x7f00ab12>")
    assert dead_letters.letter_line(letter) == (
        '{"path": "/in/ü.jpg", "reason": "cannot read <object>", "stage": "decode"}'
    )


def test_a_letter_takes_only_a_declared_stage_name():
    """Issue 19: the importer wrote 'dedupe' where the report subtracted 'duplicate'; one list now, checked."""
    assert dead_letters.dead_letter("/in/a.jpg", "dedupe", "r")["stage"] == "dedupe"
    with pytest.raises(ValueError, match="'duplicate' is not one of shards.layout.DEAD_LETTER_STAGES"):
        dead_letters.dead_letter("/in/a.jpg", "duplicate", "r")
