"""pipelines.import_outputs: dead letters by entry, the import report's counts combined across workers."""
from __future__ import annotations

import json

from pipelines.import_job import ImportJob
from pipelines.import_outputs import ImportSummary, import_report, letter_line, write_dead_letters

JOB = ImportJob(format="synthpedes", annotations="/d/synthpedes_dataset.json", images="/d", output="/o", split=None,
                attributes="released", shard_size=10, prefix="synthpedes", max_pixels=1, max_file_bytes=1)


def test_dead_letters_are_sorted_by_entry_number_not_text(tmp_path):
    letters = [{"path": "p", "entry": 10, "stage": "parse", "reason": "r"},
               {"path": "p", "entry": 9, "stage": "decode", "reason": "r"},
               {"path": "x", "stage": "write", "reason": "no entry"}]
    write_dead_letters([letter_line(l) for l in letters], str(tmp_path))
    lines = [json.loads(line) for line in (tmp_path / "deadletter.jsonl").read_text().splitlines()]
    assert [line.get("entry") for line in lines] == [None, 9, 10]


def test_the_summary_combines_across_workers_like_one_pass():
    items = [{"out_of_schema": []}, {"out_of_schema": [["upper", "black cape"], ["lower", "kilt"]]},
             {"out_of_schema": [["upper", "black cape"]]}, {"out_of_schema": [["upper", "poncho"]]}]
    combine = ImportSummary()

    def fold(part):
        accumulator = combine.create_accumulator()
        for item in part:
            accumulator = combine.add_input(accumulator, item)
        return accumulator

    merged = combine.extract_output(combine.merge_accumulators([fold(items[:1]), fold(items[1:3]), fold(items[3:])]))
    assert merged == fold(items)
    report = import_report(merged, [("parse", 2), ("decode", 1)], JOB)
    assert report["samples"] == 4 and report["dead_lettered"] == {"decode": 1, "parse": 2}
    assert report["out_of_schema"]["phrases"] == 4 and report["out_of_schema"]["samples"] == 3
    assert list(report["out_of_schema"]["by_group"]["upper"].items()) == [("black cape", 2), ("poncho", 1)]
    assert report["out_of_schema"]["by_group"]["lower"] == {"kilt": 1}
    assert list(report["out_of_schema"]["by_group"]) == ["gender", "hair", "upper", "lower", "shoes", "belongings"]
