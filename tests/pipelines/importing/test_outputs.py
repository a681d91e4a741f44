"""pipelines.importing.outputs: the import report's counts combined across workers (the dead letters in entry
order: tests/pipelines/shared/test_dead_letters.py)."""

from __future__ import annotations

from pipelines.importing.job import ImportJob
from pipelines.importing.outputs import ImportSummary, import_report

JOB = ImportJob(
    format="synthpedes",
    annotations="/d/synthpedes_dataset.json",
    images="/d",
    output="/o",
    split=None,
    attributes="released",
    shard_size=10,
    prefix="synthpedes",
    max_pixels=1,
    max_file_bytes=1,
)


def test_the_summary_combines_across_workers_like_one_pass():
    items = [
        {"out_of_schema": []},
        {"out_of_schema": [["upper", "black cape"], ["lower", "kilt"]]},
        {"out_of_schema": [["upper", "black cape"]]},
        {"out_of_schema": [["upper", "poncho"]]},
    ]
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
