"""The whole job on the crafted folder: outputs, counters, readers, determinism across runner modes, resume."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import webdataset as wds
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline as beam_testing

from common.cli import run_main
from pipelines import synthesize
from pipelines.shared.corpus_parts import dead_letter_bucket
from pipelines.shared.dead_letters import letter_line
from shards import iter_samples
from shards.writer import shard_is_complete
from spac.language import attribute_spans
from spac.predictor.model import DEFAULT_PREDICTOR_DIR
from tests.pipelines.conftest import EXPECTED, JOB_FLAGS, folder_bytes, run_job

REPO = Path(__file__).resolve().parents[2]


# Dataflow's graph translation offline (REFERENCE: returns DONE without contacting the service)
DRY_RUN_FLAGS = (
    "--runner=DataflowRunner",
    "--dry_run=True",
    "--project=any",
    "--region=us-central1",
    "--temp_location=gs://any/tmp",
)


def test_counters_add_up(first_run):
    _, counters = first_run
    filtered = {name[len("filtered_") :]: value for name, value in counters.items() if name.startswith("filtered_")}
    assert counters["read"] == EXPECTED["read"]
    assert counters["decoded"] == EXPECTED["decoded"]
    assert counters["dead_lettered"] == EXPECTED["dead_lettered"]
    assert filtered == EXPECTED["filtered"]
    assert counters["written"] == EXPECTED["written"]
    assert counters["read"] == counters["decoded"] + counters["dead_lettered"]
    assert counters["decoded"] == sum(filtered.values()) + counters["written"] + counters.get("already_complete", 0)


def test_manifest_and_shards(first_run):
    output, _ = first_run
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["totals"]["samples"] == EXPECTED["written"]
    assert manifest["totals"]["identities"] == EXPECTED["identities"]
    assert manifest["totals"]["shards"] == EXPECTED["shards"]
    assert [s["count"] for s in manifest["shards"]] == [4] * 5
    for index in range(EXPECTED["shards"]):
        assert shard_is_complete(str(output), index)
        assert (output / f"synthpedes-{index:06d}.parquet").is_file()


def test_shards_read_by_webdataset_and_tar(first_run):
    output, _ = first_run
    urls = str(output / "synthpedes-{000000..000004}.tar")
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("pil"))
    keys = [s["__key__"] for s in samples]
    assert len(keys) == EXPECTED["written"] == len(set(keys))
    records = [s["json"] for s in samples]
    for shard in range(EXPECTED["shards"]):  # keys sorted inside each shard
        in_shard = keys[4 * shard : 4 * shard + 4]
        assert in_shard == sorted(in_shard)
    # an identity's images are contiguous in the corpus order and ids count up along it: shard by shard,
    # the ids never go back, so an identity spans consecutive shards only
    ids_by_shard = [
        sorted({r["id"] for r in records[4 * shard : 4 * shard + 4]}) for shard in range(EXPECTED["shards"])
    ]
    assert all(earlier[-1] <= later[0] for earlier, later in zip(ids_by_shard, ids_by_shard[1:]))
    assert {r["attributes"]["gender"]["value"] for r in records} == {"man"}  # Part1/b's woman was voted over
    assert all(len(r["captions"]) == 2 and len(r["prompt_caption"]) == 1 for r in records)
    assert all(s["jpg"].size == (128, 256) for s in samples)
    names = subprocess.run(
        ["tar", "-tf", str(output / "synthpedes-000000.tar")], capture_output=True, text=True, check=True
    ).stdout.split()
    assert names[:3] == [f"{keys[0]}.jpg", f"{keys[0]}.json", f"{keys[0]}.txt"]


def test_every_record_stores_spac_languages_spans_of_its_texts(first_run):
    output, _ = first_run
    records = [sample["json"] for sample in iter_samples(str(output))]
    assert len(records) == EXPECTED["written"]
    for record in records:
        texts = record["captions"] + record["prompt_caption"]
        assert record["attribute_spans"] == [[list(span) for span in spans] for spans in attribute_spans(texts)]
    assert all(spans for record in records for spans in record["attribute_spans"])


def test_released_dataset_json(first_run):
    output, _ = first_run
    entries = json.loads((output / "synthpedes_dataset.json").read_text())
    assert len(entries) == EXPECTED["written"]
    assert {tuple(sorted(e)) for e in entries} == {("attributes", "captions", "file_path", "id", "prompt_caption")}
    assert entries[0]["file_path"] == "Part1/a/0.jpg" and entries[0]["id"] == 0
    assert entries[0]["attributes"] == ["man,short black hair,red t-shirt,blue jeans,white sneakers,black backpack"]
    assert {e["file_path"].rsplit("/", 1)[0] for e in entries} == {"Part1/a", "Part1/b", "Part2/e", "f"}
    assert sorted({e["id"] for e in entries}) == [0, 1, 2, 3]


def test_dead_letters_and_filter_report(first_run, input_folder):
    output, _ = first_run
    letters = [json.loads(line) for line in (output / "deadletter.jsonl").read_text().splitlines()]
    lines = [letter_line(letter) for letter in letters]
    assert lines == sorted(lines, key=lambda line: (dead_letter_bucket(line), line))  # by hash bucket, then line
    by_path = {Path(letter["path"]).relative_to(input_folder).as_posix(): letter for letter in letters}
    assert by_path["Part1/a/truncated.jpg"]["stage"] == "decode"
    assert by_path["Part1/b/notes.txt"]["reason"] == "not a decodable image"
    assert by_path["Part1/g/extra/0.jpg"]["stage"] == "read"
    assert by_path["f/4.jpg"]["reason"] == "too_many_unknown"
    assert by_path["f/5.jpg"]["reason"] == "upper_and_lower_unknown"
    assert "labels.jsonl" not in by_path
    report = json.loads((output / "filter_report.json").read_text())
    assert report["filtered"] == EXPECTED["filtered"]
    assert sum(report["dead_lettered"].values()) == EXPECTED["dead_lettered"]
    assert report["thresholds"]["max_images"] == 6


def test_identical_in_multi_processing_mode(first_run, tmp_path, input_folder, colour_predictor):
    output, _ = first_run
    counters = run_job(
        input_folder, tmp_path, colour_predictor, "--direct_running_mode=multi_processing", "--direct_num_workers=2"
    )
    assert counters["written"] == EXPECTED["written"]
    assert folder_bytes(tmp_path) == folder_bytes(output)


def _shard_records(output: Path) -> list[dict]:
    import tarfile

    records = []
    for shard in sorted(output.glob("synthpedes-*.tar")):
        with tarfile.open(shard) as tar:
            records += [json.load(tar.extractfile(m)) for m in tar.getmembers() if m.name.endswith(".json")]
    return records


def test_a_mined_sentence_library_gives_the_third_texts(first_run, tmp_path, input_folder, colour_predictor):
    from spac.attributes import load_schema
    from spac.captioning.captioner import Captioner
    from spac.captioning.library import SentencesOption, library_for
    from spac.cli.main import main
    from tests.spac.mining_files import write_caption_files

    library = tmp_path / "mined.yaml"
    assert main(["mine-templates", *map(str, write_caption_files(tmp_path)), "--out", str(library), "--quiet"]) == 0
    output = tmp_path / "corpus"
    counters = run_job(input_folder, output, colour_predictor, "--sentences", str(library))
    assert counters["written"] == EXPECTED["written"]
    schema = load_schema()
    captioner = Captioner(schema, library=library_for(SentencesOption(str(library)), schema))
    records = _shard_records(output)
    default = {r["key"]: r for r in _shard_records(first_run[0])}
    assert len(records) == EXPECTED["written"]
    for r in records:
        expected = captioner({g: a["value"] for g, a in r["attributes"].items()}, r["key"], seed=7)
        assert r["prompt_caption"] == [expected[-1].text] and r["captions"] == [c.text for c in expected[:-1]]
        assert r["captions"] == default[r["key"]]["captions"]  # the style captions do not depend on the library
    assert {r["prompt_caption"][0] for r in records}.isdisjoint({r["prompt_caption"][0] for r in default.values()})
    recorded = json.loads((output / "job.json").read_text())["sentences"]
    assert recorded["mode"] == "replace" and len(recorded["sha256"]) == 64


def test_resume_rewrites_only_missing_shard(first_run, tmp_path, input_folder, colour_predictor):
    output, _ = first_run
    resumed = tmp_path / "corpus"
    shutil.copytree(output, resumed)
    # as if killed after shard 2's tar was published but before its marker, and before the final files
    (resumed / "synthpedes-000002_stats.json").unlink()
    (resumed / "synthpedes-000002.tar").unlink()
    (resumed / "manifest.json").unlink()
    (resumed / "synthpedes_dataset.json").unlink()
    counters = run_job(input_folder, resumed, colour_predictor)
    assert counters["written"] == 4 and counters["already_complete"] == EXPECTED["written"] - 4
    assert folder_bytes(resumed) == folder_bytes(output)


def test_default_command_writes_data_synth_pedes(tmp_path, colour_predictor):
    if not (REPO / "spac" / "assets" / "samples").is_dir():
        pytest.skip("bundled sample images not present")
    command = [sys.executable, "-m", "pipelines.synthesize", "--runner=DirectRunner"]
    if not (DEFAULT_PREDICTOR_DIR / "config.json").is_file():
        command += ["--predictor", str(colour_predictor)]  # until the bundled demo model lands
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    corpus = tmp_path / "data" / "SYNTH-PEDES"
    report = json.loads((corpus / "filter_report.json").read_text())
    released = json.loads((corpus / "synthpedes_dataset.json").read_text())
    printed = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    counts = {name: int(value) for name, value in printed.items() if value.isdigit()}
    filtered = sum(value for name, value in counts.items() if name.startswith("filtered_"))
    assert counts["read"] == 96 == counts["decoded"] + counts["dead_lettered"]
    assert counts["decoded"] == counts["written"] + filtered and counts["written"] == len(released)
    assert filtered == sum(report["filtered"].values())
    assert printed["output"] == "data/SYNTH-PEDES/filter_report.json"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--input", "/no/such/folder"], "does not exist"),
        (["--min_images", "5", "--max_images", "2"], "max_images"),
        (["--gender_vote", "1.5"], "gender_vote"),
        (["--batch_size", "0"], "--batch_size"),
        (["--torch_threads", "0"], "--torch_threads"),
        (["--predictor", "/no/such/model"], "--predictor"),
        (["--styles", "sonnet"], "unknown style 'sonnet'"),
        (["--device", "tpu9"], "--device"),
        (["--prefix", "bad/prefix"], "prefix"),
    ],
)
def test_bad_input_gives_one_line_error(tmp_path, capsys, flags, message, colour_predictor):
    argv = ["--runner=DirectRunner", "--input", str(tmp_path), "--predictor", str(colour_predictor), *flags]
    assert run_main(synthesize.PROG, synthesize.cli_main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and err.startswith(synthesize.PROG)


def test_bad_manifest_row_gives_one_line_error_before_writing(tmp_path, capsys, colour_predictor):
    manifest = tmp_path / "list.jsonl"
    manifest.write_text('{"path": "a.jpg"}\n')
    argv = [
        "--runner=DirectRunner",
        "--input",
        str(manifest),
        "--output",
        str(tmp_path / "out"),
        "--predictor",
        str(colour_predictor),
    ]
    assert run_main(synthesize.PROG, synthesize.cli_main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "row 1" in err and err.startswith(synthesize.PROG)
    assert not (tmp_path / "out").exists()


def _dataflow_unavailable() -> str | None:
    for module in ("google.cloud.storage", "apitools.base.py", "apache_beam.runners.dataflow.dataflow_runner"):
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except ModuleNotFoundError:
            return module
    return None


# the README's GPU command (Dataflow workers with an L4 each), for the dry runs below
GPU_WORKER_FLAGS = [
    "--predictor",
    "/opt/predictor",
    "--device=cuda",
    "--batch_size=128",
    "--max_batch_size=512",
    "--share_model",
    "--model_copies=4",
    "--experiments=use_runner_v2",
    "--machine_type=g2-standard-8",
    "--disk_size_gb=50",
    "--sdk_container_image=us-docker.pkg.dev/any/spac/worker:2.77.0",
    "--num_workers=4",
    "--max_num_workers=16",
    "--dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver",
]


def dataflow_dry_run_handlers(input_folder: Path, *extra: str) -> list:
    """The GPU command with ``extra`` flags, translated for Dataflow offline (--dry_run): the model handler of
    each RunInference in the graph, in graph order."""
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference

    argv = [
        *DRY_RUN_FLAGS,
        "--input",
        str(input_folder),
        "--output",
        "gs://any/out",
        *GPU_WORKER_FLAGS,
        *extra,
    ]
    pipeline = beam.Pipeline(options=PipelineOptions(argv))
    result = synthesize.run(argv, save_main_session=False, test_pipeline=pipeline)
    assert result.state == "DONE"
    handlers = []

    class FindRunInference(beam.pipeline.PipelineVisitor):
        def enter_composite_transform(self, node):
            if isinstance(node.transform, RunInference):
                handlers.append(node.transform._model_handler)

    pipeline.visit(FindRunInference())
    return handlers


@pytest.mark.skipif(
    _dataflow_unavailable() is not None,
    reason=f"Dataflow graph check needs the 'dataflow' extra (apache-beam[gcp]); missing {_dataflow_unavailable()}",
)
def test_dataflow_dry_run_translates_the_graph(input_folder, colour_predictor, tmp_path):
    argv = [
        *DRY_RUN_FLAGS,
        "--input",
        str(input_folder),
        "--output",
        "gs://any/out",
        "--predictor",
        str(colour_predictor),
    ]
    result = synthesize.run(argv, save_main_session=False)
    assert result.state == "DONE"
    assert synthesize.counters(result) == {}


@pytest.mark.skipif(
    _dataflow_unavailable() is not None,
    reason=f"Dataflow graph check needs the 'dataflow' extra (apache-beam[gcp]); missing {_dataflow_unavailable()}",
)
def test_dataflow_dry_run_with_gpu_workers_needs_no_local_gpu(input_folder, colour_predictor):
    """The README's GPU command, translated offline: --device=cuda is the workers' business, and the batching
    and model-sharing flags reach RunInference's handler."""
    handlers = dataflow_dry_run_handlers(input_folder)
    assert len(handlers) == 1
    handler = handlers[0]
    assert handler.batch_elements_kwargs() == {"min_batch_size": 128, "max_batch_size": 512}
    assert handler.share_model_across_processes() and handler.model_copies() == 4
    spac_handler = getattr(handler, "_unkeyed", handler)
    assert (spac_handler._device, spac_handler._batch_size) == ("cuda", 128)


def test_run_builds_the_graph_on_a_given_test_pipeline(tmp_path, input_folder, colour_predictor):
    """Beam's convention: run(..., test_pipeline=...) builds the whole graph on the caller's pipeline."""
    pipeline = beam_testing.TestPipeline(options=PipelineOptions(["--runner=DirectRunner"]))
    argv = [
        "--input",
        str(input_folder),
        "--output",
        str(tmp_path / "out"),
        "--predictor",
        str(colour_predictor),
        *JOB_FLAGS,
    ]
    result = synthesize.run(argv, save_main_session=False, test_pipeline=pipeline)
    found = synthesize.counters(result)
    assert found["written"] == EXPECTED["written"] and found["read"] == EXPECTED["read"]
    assert len(list((tmp_path / "out").glob("*.tar"))) == EXPECTED["shards"]


def test_hostile_names_are_kept_apart_or_dead_lettered(tmp_path, colour_predictor):
    """A name that is not UTF-8 and a name crafted to take another file's old hashed key, among good images."""
    import hashlib

    from tests.pipelines.colour_predictor import RED, solid_image

    root = tmp_path / "in"
    (root / "x" / "a").mkdir(parents=True)
    for n in range(4):
        solid_image(RED).save(root / "x" / f"{n}.jpg")
        solid_image(RED).save(root / "x" / "a" / f"{n}.jpg")
    solid_image(RED).save(root / "x" / "a.png")
    crafted = hashlib.sha256(b"x/a.png").hexdigest()[:12]  # the old key of x/a.png was x_a_<this>
    solid_image(RED).save(root / "x" / "a" / f"{crafted}.jpg")
    with open(os.fsencode(root / "x") + b"/caf\xe9.jpg", "wb") as stream:
        solid_image(RED).save(stream, format="JPEG")
    out = tmp_path / "out"
    argv = [
        "--runner=DirectRunner",
        "--input",
        str(root),
        "--output",
        str(out),
        "--predictor",
        str(colour_predictor),
        *JOB_FLAGS,
    ]
    found = synthesize.counters(synthesize.run(argv, save_main_session=False))
    assert found["read"] == 11 and found["dead_lettered"] == 1 and found["written"] == 10
    stored = {entry["file_path"] for entry in json.loads((out / "synthpedes_dataset.json").read_text())}
    assert {"x/a.png", f"x/a/{crafted}.jpg"} <= stored
    [letter] = [json.loads(line) for line in (out / "deadletter.jsonl").read_text().splitlines()]
    assert letter["path"].endswith("x/caf\\xe9.jpg") and "not valid UTF-8" in letter["reason"]


def test_identity_cleaning_runs_in_the_job_and_enters_job_json(tmp_path, input_folder, colour_predictor):
    counters = run_job(input_folder, tmp_path, colour_predictor, "--identity_cleaning", "on")
    filtered = sum(value for name, value in counters.items() if name.startswith("filtered_"))
    assert counters["decoded"] == filtered + counters.get("cleaned_outliers", 0) + counters["written"]
    # solid colours: Part1/b's one green image among four red ones is foreign; the red identities share a
    # centre and are merged
    assert counters["cleaned_outliers"] == 1 and counters["cleaned_merged_identities"] >= 1
    letters = [json.loads(line) for line in (tmp_path / "deadletter.jsonl").read_text().splitlines()]
    [cleaned] = [letter for letter in letters if letter["stage"] == "clean"]
    assert cleaned["path"].endswith("Part1/b/4.jpg") and cleaned["reason"].startswith("identity cleaning")
    entries = json.loads((tmp_path / "synthpedes_dataset.json").read_text())
    assert len(entries) == counters["written"] and "embedding" not in json.dumps(entries)
    recorded = json.loads((tmp_path / "job.json").read_text())["identity_cleaning"]
    assert recorded["outlier_similarity"] == 0.45 and recorded["merge_similarity"] == 0.8
