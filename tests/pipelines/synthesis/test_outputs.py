"""pipelines.synthesis.outputs: the filter report."""

from __future__ import annotations

import json
from collections import Counter

from pipelines.shared import shard_sink
from pipelines.synthesis import outputs
from spac.corpus.filters import FilterConfig


def test_filter_report_counts_reasons_by_kind(tmp_path):
    letters = [
        {"path": "/b", "stage": "filter", "reason": "too_few_images"},
        {"path": "/a", "stage": "decode", "reason": "not a decodable image"},
        {"path": "/c", "stage": "decode", "reason": "image too large: 9000x9000 pixels exceed the budget of 1"},
        {"path": "/d", "stage": "decode", "reason": "image too large: 8000x9000 pixels exceed the budget of 1"},
    ]
    counts = Counter(outputs.report_counts(letter) for letter in letters)
    outputs.write_filter_report(counts.items(), str(tmp_path), FilterConfig())
    report = json.loads((tmp_path / "filter_report.json").read_text())
    assert report["filtered"]["too_few_images"] == 1 and report["filtered"]["gender_vote_failed"] == 0
    assert report["dead_lettered"] == {"image too large": 2, "not a decodable image": 1}
    assert shard_sink.finish_manifest([], str(tmp_path), "synthpedes") is None


def test_the_caption_model_report_sorts_counters_and_examples_and_enters_the_filter_report(tmp_path):
    examples = [("too_short", [("k2", "mllm:b", "A man."), ("k1", "mllm:a", "A man.")]), ("gender", [])]
    report = outputs.caption_model_report([("mllm_requested", 4), ("mllm_kept", 2)], examples)
    assert list(report["counters"]) == ["mllm_kept", "mllm_requested"]
    assert list(report["rejected_examples"]) == ["gender", "too_short"]
    assert [t["key"] for t in report["rejected_examples"]["too_short"]] == ["k1", "k2"]
    outputs.write_filter_report([], str(tmp_path), FilterConfig(), report)
    assert json.loads((tmp_path / "filter_report.json").read_text())["caption_model"] == report
