"""Each step of the job on its own: input listing, keys, decoding, the model handler, shard assignment, writers."""
from __future__ import annotations

import io
import json

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipelines import outputs, transforms
from pipelines.inputs import ImageRef, image_key, read_manifest, ref_from_path, resolve_input
from pipelines.model_handler import SpacPredictorHandler
from shards.sample import KEY_PATTERN
from spac.corpus_filters import FilterConfig
from tests.pipelines.colour_predictor import BLACK, GREEN, PROFILES, RED, solid_image


def split(outputs_):
    """(main outputs, dead letters) of a DoFn's process()."""
    main = [o for o in outputs_ if not isinstance(o, beam.pvalue.TaggedOutput)]
    dead = [o.value for o in outputs_ if isinstance(o, beam.pvalue.TaggedOutput)]
    return main, dead


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


def test_decode_image_good_corrupt_and_not_an_image(tmp_path):
    good, truncated, text = tmp_path / "good.png", tmp_path / "cut.jpg", tmp_path / "notes.jpg"
    solid_image(RED, size=(40, 90)).save(good)
    buffer = io.BytesIO()
    solid_image(RED).save(buffer, format="JPEG")
    truncated.write_bytes(buffer.getvalue()[:200])
    text.write_text("hello")
    decode = transforms.DecodeImage()
    refs = [ImageRef(str(p), f"1/{p.name}", "1", p.stem) for p in (good, truncated, text)]
    images, dead = split([o for ref in refs for o in decode.process(ref)])
    assert len(images) == 1 and Image.open(io.BytesIO(images[0]["jpg"])).size == (128, 256)
    assert [d["path"] for d in dead] == [str(truncated), str(text)]
    assert dead[0]["stage"] == "decode" and dead[0]["reason"].startswith("corrupt")
    assert dead[1]["reason"] == "not a decodable image"


def jpeg(colour) -> bytes:
    buffer = io.BytesIO()
    solid_image(colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_model_handler_pads_batches_so_predictions_do_not_depend_on_batching(colour_predictor):
    handler = SpacPredictorHandler(str(colour_predictor), batch_size=4)
    assert handler.batch_elements_kwargs()["max_batch_size"] == 4
    model = handler.load_model()
    images = [jpeg(c) for c in (RED, GREEN, BLACK)]
    together = list(handler.run_inference(images, model))
    alone = [r for data in images for r in handler.run_inference([data], model)]
    assert [r.inference.attributes for r in together] == [PROFILES[c] for c in (RED, GREEN, BLACK)]
    assert [r.inference for r in together] == [r.inference for r in alone]
    assert together[0].example == images[0] and handler.get_num_bytes(images) == sum(map(len, images))


def record(key, identity, gender="man"):
    attributes = {g: {"value": v, "confidence": 0.9} for g, v in PROFILES[RED].items()}
    attributes["gender"]["value"] = gender
    return {"key": key, "identity": identity, "file_path": f"{identity}/{key}.jpg", "source": f"/in/{key}.jpg",
            "jpg": b"\xff\xd8\xff", "attributes": attributes}


def test_filter_identity_applies_vote_and_reports_reasons():
    records = [record(f"k{i}", "7") for i in range(4)] + [record("k4", "7", gender="woman")]
    kept, dead = split(list(transforms.FilterIdentity(FilterConfig(min_images=3, max_images=3)).process(
        ("7", records))))
    assert len(kept) == 3 and {r["attributes"]["gender"]["value"] for r in kept} == {"man"}
    assert sorted(d["reason"] for d in dead) == ["over_identity_cap"] * 2


def test_assign_shard_blocks_of_sorted_keys():
    keys = ["a", "b", "c", "d", "e"]
    captioned = {**record("d", "p2"), "captions": ["x", "y"], "styles": ["s1", "s2"], "prompt_caption": ["z"]}
    index, sample = transforms.assign_shard(captioned, keys, ["p1", "p2"], shard_size=2)
    assert index == 1 and sample["__key__"] == "d" and sample["json"]["id"] == 1
    assert outputs.released_entry(sample["json"])["attributes"] == [
        "man,short black hair,red t-shirt,blue jeans,white sneakers,black backpack"]


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
