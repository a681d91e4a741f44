"""pipelines.outputs: shard writing and the corpus-wide files."""
from __future__ import annotations

import json
from collections import Counter

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline

from pipelines import corpus_parts, ordering, outputs
from spac.corpus.filters import FilterConfig
from tests.pipelines.colour_predictor import RED
from tests.pipelines.step_helpers import jpeg, record


def test_filter_report_counts_reasons_by_kind(tmp_path):
    letters = [{"path": "/b", "stage": "filter", "reason": "too_few_images"},
               {"path": "/a", "stage": "decode", "reason": "not a decodable image"},
               {"path": "/c", "stage": "decode", "reason": "image too large: 9000x9000 pixels exceed the budget of 1"},
               {"path": "/d", "stage": "decode", "reason": "image too large: 8000x9000 pixels exceed the budget of 1"}]
    counts = Counter(outputs.report_counts(letter) for letter in letters)
    outputs.write_filter_report(counts.items(), str(tmp_path), FilterConfig())
    report = json.loads((tmp_path / "filter_report.json").read_text())
    assert report["filtered"]["too_few_images"] == 1 and report["filtered"]["gender_vote_failed"] == 0
    assert report["dead_lettered"] == {"image too large": 2, "not a decodable image": 1}
    assert outputs.finish_manifest([], str(tmp_path), "synthpedes") is None


def test_dead_letter_file_is_assembled_from_bucket_parts_in_a_fixed_order(tmp_path):
    letters = [{"path": f"/in/{i}.jpg", "stage": "decode", "reason": "not a decodable image"} for i in range(200)]
    files = []
    for order in (letters, letters[::-1]):
        output = tmp_path / f"run{len(files)}"
        with TestPipeline() as pipeline:
            _ = pipeline | beam.Create(order) | outputs.WriteDeadLetterFile(str(output))
        files.append((output / "deadletter.jsonl").read_bytes())
        assert not (output / corpus_parts.PARTS_DIR).exists()  # parts are removed once assembled
    assert files[0] == files[1]
    assert sorted(json.loads(line)["path"] for line in files[0].decode().splitlines()) == sorted(
        letter["path"] for letter in letters)


def test_dataset_json_streams_the_shard_parts_in_index_order(tmp_path):
    corpus_parts.write_part(str(tmp_path), corpus_parts.dataset_part_name(1), '{"id": 2},\n{"id": 3}')
    corpus_parts.write_part(str(tmp_path), corpus_parts.dataset_part_name(0), '{"id": 1}')
    corpus_parts.assemble_dataset_json([1, 0], str(tmp_path), outputs.DATASET_NAME)
    text = (tmp_path / "synthpedes_dataset.json").read_text()
    assert json.loads(text) == [{"id": 1}, {"id": 2}, {"id": 3}] and text.count("\n") == 5  # one entry a line
    assert not (tmp_path / corpus_parts.PARTS_DIR).exists()
    corpus_parts.assemble_dataset_json([], str(tmp_path), outputs.DATASET_NAME)
    assert (tmp_path / "synthpedes_dataset.json").read_text() == "[]\n"


def shard_samples(keys, gender="man"):
    made = [{**record(k, "p1", gender), "jpg": jpeg(RED), "captions": ["a man."], "styles": ["dense"],
             "prompt_caption": ["a person."]} for k in keys]
    return [sample for _, sample in ordering.place_samples(("p1", {"records": made, "placement": [(0, 0)]}), 10)]


def test_write_shard_skips_a_complete_shard_but_not_a_stale_one(tmp_path):
    writer = outputs.WriteShard(str(tmp_path), "synthpedes")
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
    produced = list(outputs.WriteShard(str(tmp_path), "synthpedes").process((0, [twin, second, first])))
    letters = [o.value for o in produced if isinstance(o, beam.pvalue.TaggedOutput)]
    assert letters == [{"path": "/in/zz-twin.jpg", "stage": "write",
                        "reason": f"key k1 already taken by {first['json']['source']}"}]
    stats = json.loads((tmp_path / "synthpedes-000000_stats.json").read_text())
    assert stats["count"] == 2 and stats["first_key"] == "k1"
