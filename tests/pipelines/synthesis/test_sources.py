"""pipelines.synthesis.sources (and stage_rates): every input kind read through ``read_refs`` in a test pipeline,
dead letters with reasons, --limit, LUPerson-NL, per-stage rates, and the whole job on a webdataset input."""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline as beam_testing

from common.training import changed_settings
from pipelines import synthesize
from pipelines.synthesis import sources, transforms
from pipelines.synthesis.inputs import ref_from_path, resolve_input, shard_samples, wanted_members, webdataset_ref
from pipelines.synthesis.job import fingerprint, make_job
from pipelines.synthesis.stage_rates import INFERENCE_NAMESPACE, format_stage_rates, stage_metrics, stage_rates
from shards.keys import make_key
from tests.pipelines.colour_predictor import GREEN, RED, solid_image
from tests.pipelines.hostile_import import run_in_subprocess
from tests.pipelines.step_helpers import write_tar


def jpeg(colour=RED, size=(64, 160)) -> bytes:
    buffer = io.BytesIO()
    solid_image(colour, size=size).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def sample(key: str, image: bytes | None = None, record: dict | None = None, ext: str = "jpg") -> list:
    members = [(f"{key}.{ext}", image if image is not None else jpeg())] if image is not False else []
    if record is not None:
        members.append((f"{key}.json", json.dumps(record).encode()))
    return members + [(f"{key}.txt", b"a caption")]


_COLLECTED: dict[str, list] = {}  # filled by the in-process DirectRunner (functions pickled by reference)


def _row(ref) -> tuple:
    return ref.source, ref.file_path, ref.identity, ref.key, ref.data is not None


def _keep(name: str, items: list) -> None:
    _COLLECTED[name] = items


def run_read(spec, limit=None, max_bytes=None):
    """(sorted (source, file_path, identity, key, has data) of the refs, dead letters by path, counters)."""
    _COLLECTED.clear()
    pipeline = beam_testing.TestPipeline(options=PipelineOptions(["--runner=DirectRunner"]))
    kwargs = {"max_bytes": max_bytes} if max_bytes else {}
    refs, letters = sources.read_refs(pipeline, spec, limit, **kwargs)
    _ = (
        refs
        | "Rows" >> beam.Map(_row)
        | "CollectRefs" >> beam.combiners.ToList()
        | "KeepRefs" >> beam.Map(lambda rows: _keep("refs", rows))
    )
    _ = (
        letters
        | "CollectLetters" >> beam.combiners.ToList()
        | "KeepLetters" >> beam.Map(lambda rows: _keep("letters", rows))
    )
    result = pipeline.run()
    result.wait_until_finish()
    return (
        sorted(_COLLECTED.get("refs", [])),
        sorted(_COLLECTED.get("letters", []), key=lambda d: d["path"]),
        synthesize.counters(result),
    )


@pytest.fixture()
def img2dataset_folder(tmp_path) -> Path:
    """Two img2dataset-style shards (keys ``<shard><index>``, a json with a ``person`` column) and its
    parquet / stats files beside them, plus bad samples."""
    folder = tmp_path / "shards"
    folder.mkdir()
    write_tar(
        folder / "00000.tar",
        sample("000000000", record={"person": "ann", "url": "u"})
        + sample("000000001", record={"person": 17})
        + sample("000000002", image=False, record={"person": "ann"})  # no image member
        + sample("000000003", record={"url": "u"}),
    )  # no identity field
    write_tar(
        folder / "00001.tar",
        sample("000010000", record={"person": "ann"}, ext="png")
        + sample("000010001", record=None)  # no json member
        + sample("000010002", record={"person": "../up"})  # would leave the root
        + [("000010003.jpg", jpeg()), ("000010003.json", b"{not json")],
    )
    (folder / "00000.parquet").write_bytes(b"PAR1")
    (folder / "00000_stats.json").write_text("{}")
    return folder


def test_webdataset_folder_with_identities_from_a_json_field(img2dataset_folder):
    spec = resolve_input(str(img2dataset_folder), identity_field="person")
    assert spec.format == "webdataset" and spec.pattern.endswith("/*.tar")
    refs, letters, counters = run_read(spec)
    first, second = f"{img2dataset_folder}/00000.tar", f"{img2dataset_folder}/00001.tar"
    assert refs == [
        (f"{first}#000000000", "ann/000000000.jpg", "ann", "ann_000000000", True),
        (f"{first}#000000001", "17/000000001.jpg", "17", "17_000000001", True),
        (f"{second}#000010000", "ann/000010000.png", "ann", make_key("ann/000010000.png"), True),
    ]
    assert [(d["path"], d["stage"]) for d in letters] == [
        (f"{first}#000000002", "read"),
        (f"{first}#000000003", "read"),
        (f"{second}#000010001", "read"),
        (f"{second}#000010002", "read"),
        (f"{second}#000010003", "read"),
    ]
    reasons = [d["reason"] for d in letters]
    assert reasons[0] == "no image member (jpg, jpeg, png, webp)"
    assert "no identity field 'person'" in reasons[1]
    assert "no json member" in reasons[2]
    assert "'..'" in reasons[3]
    assert "not valid UTF-8 JSON" in reasons[4]
    assert counters["read"] == counters["dead_lettered"] == 5 and counters["shards_read"] == 2


def test_brace_pattern_with_identities_from_the_key(tmp_path):
    for index in range(3):
        write_tar(
            tmp_path / f"train-{index:05d}.tar",
            [m for n in range(2) for m in sample(f"{index:04d}_{n:02d}")] + sample(f"x{index}"),
        )
    pattern = str(tmp_path / "train-{00000..00003}.tar")  # the fourth shard does not exist
    spec = resolve_input(pattern, identity_pattern=r"^(\d+)_")
    assert (spec.format, spec.pattern, spec.root) == ("webdataset", pattern, str(tmp_path))
    refs, letters, _ = run_read(spec)
    assert [(r[1], r[2]) for r in refs] == [
        (f"{i:04d}/{i:04d}_{n:02d}.jpg", f"{i:04d}") for i in range(3) for n in range(2)
    ]
    by_path = {d["path"]: d["reason"] for d in letters}
    assert set(by_path) == {f"{tmp_path}/train-{i:05d}.tar#x{i}" for i in range(3)} | {f"{tmp_path}/train-00003.tar"}
    assert by_path[f"{tmp_path}/train-00000.tar#x0"] == r"key 'x0' does not match --identity_pattern '^(\\d+)_'"
    assert by_path[f"{tmp_path}/train-00003.tar"].startswith("cannot open the shard")


@pytest.mark.parametrize(
    "pattern, reason",
    [
        ("^(a+)+$", "does not match --identity_pattern"),  # Python's re never ends on it; the regex engine at once
        ("^(a|a)+$", "identity pattern timed out after 0.1 s"),  # backtracks without end in either engine
    ],
)
def test_a_backtracking_identity_pattern_cannot_stall_the_job(tmp_path, pattern, reason):
    """Issue 19: one search per key, bounded in time; a timeout is that sample's dead letter, counted."""
    write_tar(tmp_path / "a.tar", sample("aaa") + sample("a" * 40 + "!"))
    code = (
        f"import json\nfrom pipelines.synthesis.inputs import resolve_input\n"
        f"from tests.pipelines.synthesis.test_sources import run_read\n"
        f"print(json.dumps(run_read(resolve_input({str(tmp_path)!r}, identity_pattern={pattern!r}))))"
    )
    done = run_in_subprocess(code, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    refs, letters, counters = json.loads(done.stdout.splitlines()[-1])
    assert [ref[1] for ref in refs] == ["a/aaa.jpg" if pattern == "^(a|a)+$" else "aaa/aaa.jpg"]
    assert [letter["path"] for letter in letters] == [f"{tmp_path}/a.tar#{'a' * 40}!"]
    assert reason in letters[0]["reason"]
    assert counters.get("identity_pattern_timeouts", 0) == (pattern == "^(a|a)+$")


def test_oversized_members_and_a_damaged_shard_are_dead_letters(tmp_path):
    big = jpeg(size=(400, 800))
    write_tar(tmp_path / "a.tar", sample("1-a") + sample("1-b", image=big))
    damaged = write_tar(tmp_path / "b.tar", sample("2-a") + sample("2-b") + sample("2-c"))
    with tarfile.open(damaged) as tar:
        cut = tar.getmember("2-b.jpg").offset_data + 100
    damaged.write_bytes(damaged.read_bytes()[:cut])  # cut inside the second sample's image
    spec = resolve_input(str(tmp_path), identity_pattern=r"^(\d+)-")
    refs, letters, _ = run_read(spec, max_bytes=len(big) - 1)
    assert [r[3] for r in refs] == ["1_1-a", "2_2-a"]
    assert [(d["path"], d["reason"].split(" (")[0]) for d in letters] == [
        (f"{tmp_path}/a.tar#1-b", f"member '1-b.jpg' is larger than {len(big) - 1} bytes"),
        (f"{tmp_path}/b.tar", "unreadable tar after sample '2-a'"),
    ]


def _folder_in_random_order(root: Path, count: int) -> list[str]:
    names = [f"{n:03d}" for n in range(count)]
    random.Random(3).shuffle(names)  # created (and listed by the file system) in no particular order
    for name in names:
        (root / "p").mkdir(exist_ok=True)
        (root / "p" / f"{name}.jpg").write_bytes(b"x")
    return sorted(f"p_{n}" for n in names)


def test_limit_keeps_the_smallest_keys_whatever_the_listing_order(tmp_path):
    keys = _folder_in_random_order(tmp_path, 12)
    refs, _, counters = run_read(resolve_input(str(tmp_path)), limit=5)
    assert [r[3] for r in refs] == keys[:5]
    assert counters["beyond_limit"] == 7
    refs, _, _ = run_read(resolve_input(str(tmp_path)), limit=50)
    assert [r[3] for r in refs] == keys


def test_limit_on_webdataset_shards(tmp_path):
    write_tar(tmp_path / "b.tar", [m for n in (9, 3, 7) for m in sample(f"1-{n}")])
    write_tar(tmp_path / "a.tar", [m for n in (8, 1) for m in sample(f"2-{n}")])
    refs, _, _ = run_read(resolve_input(str(tmp_path), identity_pattern=r"^(\d)-"), limit=3)
    assert [r[3] for r in refs] == ["1_1-3", "1_1-7", "1_1-9"]


def build_luperson_nl(root: Path) -> Path:
    """LUP-NL/extract.py's layout: <country>/<city>/<video>/<pid:06d>_<frame:07d>_<obj:02d>.jpg."""
    images = {
        "China/Beijing/vid_A1": ["000001_0000010_00", "000001_0000020_01", "000002_0000010_02"],
        "Japan/Tokyo/vid-B2": ["000001_0000500_00"],
    }  # pid 1 again: another person, another video
    for video, names in images.items():
        (root / video).mkdir(parents=True)
        for name in names:
            solid_image(GREEN).save(root / video / f"{name}.jpg")
    (root / "Japan/Tokyo/vid-B2/thumbs.db").write_bytes(b"x")
    (root / "README.txt").write_text("beside the countries: ignored\n")
    return root


def test_luperson_nl_layout_scopes_pseudo_labels_by_video(tmp_path):
    root = build_luperson_nl(tmp_path / "lup-nl")
    spec = resolve_input(str(root))
    assert spec.format == "luperson_nl"
    refs, letters, counters = run_read(spec)
    assert [(r[1], r[2]) for r in refs] == [
        ("China/Beijing/vid_A1/000001_0000010_00.jpg", "China/Beijing/vid_A1/000001"),
        ("China/Beijing/vid_A1/000001_0000020_01.jpg", "China/Beijing/vid_A1/000001"),
        ("China/Beijing/vid_A1/000002_0000010_02.jpg", "China/Beijing/vid_A1/000002"),
        ("Japan/Tokyo/vid-B2/000001_0000500_00.jpg", "Japan/Tokyo/vid-B2/000001"),
    ]
    assert len({r[3] for r in refs}) == 4 and not any(r[4] for r in refs)  # read from their paths
    assert [(d["path"], d["reason"].split(" (")[0]) for d in letters] == [
        (f"{root}/Japan/Tokyo/vid-B2/thumbs.db", "file name is not a LUPerson-NL crop name <pid>_<frame>_<obj>.jpg")
    ]
    assert counters["ignored_beside_identities"] == 1
    assert resolve_input(str(root), "folder").format is None  # told otherwise, the folder layout


def test_decoded_webdataset_sample_is_the_same_record_as_a_file(tmp_path):
    shard = write_tar(tmp_path / "s.tar", sample("7-0", image=jpeg(RED)))
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "0.jpg").write_bytes(jpeg(RED))
    spec = resolve_input(str(shard), identity_pattern=r"^(\d+)-")
    with open(shard, "rb") as stream:
        sample_ref = webdataset_ref(str(shard), next(shard_samples(stream, wanted_members(spec), 10**6)), spec)
    decode = transforms.DecodeImage()
    from_file = next(iter(decode.process(ref_from_path(str(tmp_path), str(tmp_path / "7" / "0.jpg")))))
    from_sample = next(iter(decode.process(sample_ref)))
    assert list(from_sample) == list(from_file) == ["key", "identity", "file_path", "source", "jpg"]
    assert from_sample["jpg"] == from_file["jpg"]
    assert (from_sample["source"], from_sample["file_path"], from_sample["key"]) == (
        f"{shard}#7-0",
        "7/7-0.jpg",
        "7_7-0",
    )


def test_stage_rates_arithmetic():
    counters = {
        "stage_images_decode": 50,
        "stage_us_decode": 2_000_000,
        "num_inferences": 48,
        "inference_batch_latency_micro_secs": 4_000_000,
        "stage_images_filter": 48,
        "stage_us_filter": 0,
        "stage_images_caption": 20,
        "stage_us_caption": 500_000,
        "stage_images_zzz": 1,
        "stage_us_zzz": 10,
        "read": 50,
    }
    assert stage_rates(counters) == [
        ("decode", 50, 25.0),
        ("inference", 48, 12.0),
        ("filter", 48, 48e6),
        ("caption", 20, 40.0),
        ("zzz", 1, 1e5),
    ]
    assert stage_rates({"read": 3}) == []  # nothing timed (a dry run): no rows
    text = format_stage_rates(stage_rates(counters)).splitlines()
    assert text[0] == "images/s decode: 25.0 (50 images, 2.000 s of worker time)"
    assert text[1] == "images/s inference: 12.0 (48 images, 4.000 s of worker time)"


def test_inference_namespace_is_the_model_handlers():
    from pipelines.synthesis.model_handler import SpacPredictorHandler

    assert SpacPredictorHandler.get_metrics_namespace(None) == INFERENCE_NAMESPACE


def test_the_job_on_a_webdataset_input(tmp_path, colour_predictor):
    shards = tmp_path / "shards"
    shards.mkdir()
    for index, (person, colour) in enumerate((("ann", RED), ("bob", RED), ("cy", GREEN))):
        write_tar(
            shards / f"{index:05d}.tar",
            [
                m
                for n in range(4)
                for m in sample(
                    f"{index:05d}{n:04d}", image=jpeg(colour, size=(48 + 8 * n, 120)), record={"person": person}
                )
            ],
        )
    output = tmp_path / "corpus"
    argv = [
        "--runner=DirectRunner",
        "--input",
        str(shards / "{00000..00002}.tar"),
        "--identity_field",
        "person",
        "--output",
        str(output),
        "--predictor",
        str(colour_predictor),
        "--min_images",
        "3",
        "--shard_size",
        "4",
        "--batch_size",
        "4",
        "--limit",
        "10",
    ]
    result = synthesize.run(argv, save_main_session=False)
    counters = synthesize.counters(result)
    assert counters["read"] == counters["decoded"] == 10 and counters["beyond_limit"] == 2
    entries = json.loads((output / "synthpedes_dataset.json").read_text())
    assert sorted({e["file_path"].split("/")[0] for e in entries}) == ["ann", "bob"]  # cy: 2 images, too few
    record = json.loads((output / "job.json").read_text())
    assert record["input"]["format"] == "webdataset" and record["input"]["identity_field"] == "person"
    assert record["limit"] == 10
    rates = dict((stage, images) for stage, images, _ in stage_rates(stage_metrics(result)))
    assert rates["decode"] == 10 and rates["inference"] == 10


def test_input_settings_and_limit_enter_the_fingerprint(tmp_path, colour_predictor):
    write_tar(tmp_path / "0.tar", sample("1-a"))

    def fingerprint_of(*flags):
        args, _ = synthesize.parse_known_args(
            [
                "--input",
                str(tmp_path / "{0..1}.tar"),
                "--identity_pattern",
                r"^(\d+)-",
                "--predictor",
                str(colour_predictor),
                *flags,
            ]
        )
        return fingerprint(make_job(args, "DirectRunner"))

    limited, whole = fingerprint_of("--limit", "5"), fingerprint_of()
    assert (
        limited["input"]
        == whole["input"]
        == {
            "root": str(tmp_path),
            "pattern": str(tmp_path / "{0..1}.tar"),
            "format": "webdataset",
            "identity_pattern": r"^(\d+)-",
        }
    )
    assert limited["limit"] == 5 and "limit" not in whole  # without --limit, the fingerprint it always had
    assert changed_settings(whole, limited) == ["limit was None, now 5"]


def test_folder_and_manifest_inputs_read_as_before(tmp_path):
    for path in ("Part1/7/0.jpg", "8/1.jpg", "a/b/c/d.jpg"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"x")
    refs, letters, _ = run_read(resolve_input(str(tmp_path)))
    assert [(r[1], r[2], r[3], r[4]) for r in refs] == [
        ("8/1.jpg", "8", "8_1", False),
        ("Part1/7/0.jpg", "Part1/7", "Part1_7_0", False),
    ]
    assert [d["path"] for d in letters] == [f"{tmp_path}/a/b/c/d.jpg"]
    (tmp_path / "list.jsonl").write_text(json.dumps({"path": "8/1.jpg", "identity": "8"}) + "\n")
    refs, letters, _ = run_read(resolve_input(str(tmp_path / "list.jsonl")), limit=1)
    assert refs == [(f"{tmp_path}/8/1.jpg", "8/1.jpg", "8", "8_1", False)] and letters == []
