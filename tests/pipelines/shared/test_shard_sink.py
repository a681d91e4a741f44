"""pipelines.shared.shard_sink: shard writing (complete shards skipped, key collisions dead-lettered), counted
in the job's own namespace."""

from __future__ import annotations

import json

from pipelines.shared import corpus_parts, shard_sink
from pipelines.synthesis import ordering
from tests.pipelines.colour_predictor import RED
from tests.pipelines.step_helpers import jpeg, record

NAMESPACE = "some_job"


def shard_samples(keys, gender="man"):
    made = [
        {
            **record(k, "p1", gender),
            "jpg": jpeg(RED),
            "captions": ["a man."],
            "styles": ["dense"],
            "prompt_caption": ["a person."],
        }
        for k in keys
    ]
    return [sample for _, sample in ordering.place_samples(("p1", {"records": made, "placement": [(0, 0)]}), 10)]


def test_write_shard_skips_a_complete_shard_but_not_a_stale_one(tmp_path):
    writer = shard_sink.WriteShard(str(tmp_path), "synthpedes", NAMESPACE)
    first = list(writer.process((0, shard_samples(["k1", "k2"]))))
    tar = tmp_path / "synthpedes-000000.tar"
    written_at = tar.stat().st_mtime_ns
    assert list(writer.process((0, shard_samples(["k1", "k2"])))) == first
    assert tar.stat().st_mtime_ns == written_at  # complete and the same samples: left alone
    assert list(writer.process((0, shard_samples(["k1", "k3"])))) == [0]
    part = tmp_path / corpus_parts.PARTS_DIR / corpus_parts.dataset_part_name(0)
    assert json.loads(f"[{part.read_text()}]")[1]["file_path"] == "p1/k3.jpg"
    assert "k3" in json.loads((tmp_path / "synthpedes-000000_stats.json").read_text())["last_key"]


def test_a_second_file_with_a_taken_key_is_dead_lettered_not_written(tmp_path):
    import apache_beam as beam

    first, second = shard_samples(["k1", "k2"])
    twin = {**second, "__key__": "k1", "json": {**second["json"], "key": "k1", "source": "/in/zz-twin.jpg"}}
    produced = list(shard_sink.WriteShard(str(tmp_path), "synthpedes", NAMESPACE).process((0, [twin, second, first])))
    letters = [o.value for o in produced if isinstance(o, beam.pvalue.TaggedOutput)]
    assert letters == [
        {"path": "/in/zz-twin.jpg", "stage": "write", "reason": f"key k1 already taken by {first['json']['source']}"}
    ]
    stats = json.loads((tmp_path / "synthpedes-000000_stats.json").read_text())
    assert stats["count"] == 2 and stats["first_key"] == "k1"
