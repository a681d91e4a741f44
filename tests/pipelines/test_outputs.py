"""pipelines.outputs: shard writing and the corpus-wide files."""
from __future__ import annotations

import json

from pipelines import outputs, transforms
from spac.corpus_filters import FilterConfig
from tests.pipelines.colour_predictor import RED
from tests.pipelines.step_helpers import jpeg, record


def test_whole_corpus_writers_sort_their_input(tmp_path):
    letters = [{"path": "/b", "stage": "filter", "reason": "too_few_images"},
               {"path": "/a", "stage": "decode", "reason": "not a decodable image"}]
    outputs.write_dead_letters(letters, str(tmp_path))
    assert [json.loads(l)["path"] for l in (tmp_path / "deadletter.jsonl").read_text().splitlines()] == ["/a", "/b"]
    outputs.write_filter_report(letters, str(tmp_path), FilterConfig())
    report = json.loads((tmp_path / "filter_report.json").read_text())
    assert report["filtered"]["too_few_images"] == 1 and report["filtered"]["gender_vote_failed"] == 0
    assert report["dead_lettered"] == {"not a decodable image": 1}
    outputs.write_dataset_json([(1, '{"id": 2}'), (0, '{"id": 1}')], str(tmp_path))
    assert json.loads((tmp_path / "synthpedes_dataset.json").read_text()) == [{"id": 1}, {"id": 2}]
    assert outputs.finish_manifest([], str(tmp_path), "synthpedes") is None


def shard_samples(keys, gender="man"):
    made = [{**record(k, "p1", gender), "jpg": jpeg(RED), "captions": ["a man."], "styles": ["dense"],
             "prompt_caption": ["a person."]} for k in keys]
    return [transforms.assign_shard(r, sorted(keys), ["p1"], shard_size=10)[1] for r in made]


def test_write_shard_skips_a_complete_shard_but_not_a_stale_one(tmp_path):
    writer = outputs.WriteShard(str(tmp_path), "synthpedes")
    first = list(writer.process((0, shard_samples(["k1", "k2"]))))
    tar = tmp_path / "synthpedes-000000.tar"
    written_at = tar.stat().st_mtime_ns
    assert list(writer.process((0, shard_samples(["k1", "k2"])))) == first
    assert tar.stat().st_mtime_ns == written_at  # complete and the same samples: left alone
    [(index, text)] = writer.process((0, shard_samples(["k1", "k3"])))
    assert index == 0 and json.loads(f"[{text}]")[1]["file_path"] == "p1/k3.jpg"
    assert "k3" in json.loads((tmp_path / "synthpedes-000000_stats.json").read_text())["last_key"]


def test_a_second_file_with_a_taken_key_is_dead_lettered_not_written(tmp_path):
    import apache_beam as beam

    first, second = shard_samples(["k1", "k2"])
    twin = {**second, "__key__": "k1", "json": {**second["json"], "key": "k1", "source": "/in/zz-twin.jpg"}}
    produced = list(outputs.WriteShard(str(tmp_path), "synthpedes").process((0, [twin, second, first])))
    letters = [o.value for o in produced if isinstance(o, beam.pvalue.TaggedOutput)]
    assert letters == [{"path": "/in/zz-twin.jpg", "stage": "write",
                        "reason": f"key k1 already taken by {first['json']['source']}"}]
    stats = json.loads((tmp_path / "synthpedes-000000_stats.json").read_text())
    assert stats["count"] == 2 and stats["first_key"] == "k1"
