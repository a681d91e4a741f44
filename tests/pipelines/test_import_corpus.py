"""The import job on small datasets in the released layouts: SYNTH-PEDES (verbatim phrases, dead letters,
counters that add up, byte-identical reruns, resume, plip pre-training on the result), CUHK-PEDES and
RSTPReid train splits, the Dataflow graph, one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline as beam_testing

from common.cli import run_main
from pipelines import import_corpus
from pipelines.shared.metrics import counter_totals
from pipelines.synthesis.transforms import NAMESPACE as SYNTHESIS_NAMESPACE
from shards import iter_samples, verify_corpus
from spac.language import attribute_spans
from spac.report.reading import job_counters, open_folder, tally_dead_letters
from tests.pipelines.conftest import folder_bytes
from tests.pipelines.import_datasets import (
    CAPE,
    CORRUPT,
    DUPLICATE,
    MALFORMED,
    MISSING,
    SYNTHPEDES_EXPECTED,
    write_cuhk_pedes,
    write_rstpreid,
    write_synthpedes,
)
from tests.pipelines.test_synthesize import _dataflow_unavailable

SHARD_SIZE = "4"


def run_import(dataset: Path, output: Path, *extra: str) -> dict[str, int]:
    argv = [
        "--runner=DirectRunner",
        "--input",
        str(dataset),
        "--output",
        str(output),
        "--shard_size",
        SHARD_SIZE,
        *extra,
    ]
    return import_corpus.counters(import_corpus.run(argv, save_main_session=False))


def adds_up(counters: dict[str, int]) -> None:
    letter_counters = ("malformed", "duplicates", "image_rejected", "mining_failed")
    entry_letters = sum(counters.get(name, 0) for name in letter_counters)
    assert counters.get("dead_lettered", 0) == entry_letters
    assert counters["entries"] == (
        counters.get("skipped_split", 0)
        + entry_letters
        + counters.get("written", 0)
        + counters.get("already_complete", 0)
    )
    assert counters.get("decoded", 0) == counters.get("written", 0) + counters.get("already_complete", 0)


@pytest.fixture(scope="module")
def synthpedes(tmp_path_factory) -> Path:
    return write_synthpedes(tmp_path_factory.mktemp("datasets") / "SYNTH-PEDES")


@pytest.fixture(scope="module")
def imported(tmp_path_factory, synthpedes) -> tuple[Path, dict[str, int]]:
    output = tmp_path_factory.mktemp("imported") / "corpus"
    return output, run_import(synthpedes, output)


def records(corpus: Path) -> dict[str, dict]:
    return {sample["__key__"]: sample["json"] for sample in iter_samples(str(corpus))}


def test_counters_add_up(imported):
    _, counters = imported
    assert {name: counters.get(name, 0) for name in SYNTHPEDES_EXPECTED} == SYNTHPEDES_EXPECTED
    adds_up(counters)


def test_shards_verify_clean_and_keep_the_released_texts(imported, synthpedes):
    output, _ = imported
    assert verify_corpus(str(output)) == []
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["totals"]["samples"] == SYNTHPEDES_EXPECTED["written"]
    assert [shard["count"] for shard in manifest["shards"]] == [4, 3, 3, 3]  # blocks of 4 entries in file order
    found = records(output)
    released = {e["file_path"]: e for e in json.loads((synthpedes / "synthpedes_dataset.json").read_text())[:16]}
    for record in found.values():
        entry = released[record["file_path"]]
        assert record["captions"] == entry["captions"] and record["prompt_caption"] == entry["prompt_caption"]
        assert record["id"] == entry["id"] and record["styles"] == ["synthpedes-1", "synthpedes-2"]
        assert ",".join(record["attributes"][g]["value"] for g in record["attributes"]) == entry["attributes"][0]
        spans = attribute_spans(record["captions"] + record["prompt_caption"])
        assert record["attribute_spans"] == [[list(span) for span in text_spans] for text_spans in spans]
    assert found["Part1_7_2"]["captions"] != ["Listed twice."]  # the first of the duplicates


def test_an_out_of_schema_phrase_is_kept_verbatim_and_counted(imported):
    output, counters = imported
    record = records(output)[CAPE.removesuffix(".jpg").replace("/", "_")]
    assert record["attributes"]["upper"] == {"value": "black cape", "confidence": None, "in_schema": False}
    assert record["attributes"]["lower"] == {"value": "pink shorts", "confidence": None, "in_schema": True}
    report = json.loads((output / "import_report.json").read_text())
    assert report["out_of_schema"]["by_group"]["upper"] == {"black cape": 1}
    assert report["out_of_schema"]["phrases"] == counters["attributes_out_of_schema"] == 1
    assert report["samples"] == SYNTHPEDES_EXPECTED["written"]
    assert report["dead_lettered"] == {"decode": 2, "dedupe": 1, "parse": 1}


def test_the_report_counts_decoded_images_as_the_job_does(imported):
    """Issue 19: a duplicate's letter (stage ``dedupe``) is an image never decoded, in ``spac report`` as in the
    job's own counter (the report subtracted a stage ``duplicate`` no job writes)."""
    output, counters = imported
    folder = open_folder(str(output))
    assert counters["duplicates"] == 1
    assert job_counters(folder, tally_dead_letters(folder))["decoded"] == counters["decoded"]


def test_dead_letters_name_each_entry_left_out(imported, synthpedes):
    output, _ = imported
    letters = [json.loads(line) for line in (output / "deadletter.jsonl").read_text().splitlines()]
    by_entry = {letter["entry"]: letter for letter in letters}
    assert [letter["entry"] for letter in letters] == sorted(by_entry)
    paths = {
        Path(letter["path"]).relative_to(synthpedes).as_posix(): letter
        for letter in letters
        if letter["stage"] == "decode"
    }
    assert paths[MISSING]["reason"] == "image file not found"
    assert paths[CORRUPT]["reason"].startswith("corrupt or unreadable image")
    [malformed] = [letter for letter in letters if letter["stage"] == "parse"]
    assert malformed["path"] == str(synthpedes / "synthpedes_dataset.json") and "got 5" in malformed["reason"]
    assert malformed["entry"] == 12  # MALFORMED is the 13th entry
    assert MALFORMED == "Part1/20/1.jpg"
    [duplicate] = [letter for letter in letters if letter["stage"] == "dedupe"]
    assert duplicate["entry"] == 16 and "entry 1" in duplicate["reason"] and DUPLICATE == "Part1/7/2.jpg"


def test_a_rerun_in_multi_processing_mode_is_byte_identical(imported, synthpedes, tmp_path):
    output, _ = imported
    counters = run_import(
        synthpedes, tmp_path / "again", "--direct_running_mode=multi_processing", "--direct_num_workers=2"
    )
    assert counters["written"] == SYNTHPEDES_EXPECTED["written"]
    assert folder_bytes(tmp_path / "again") == folder_bytes(output)


def test_a_rerun_resumes_other_settings_are_refused_or_overwrite(imported, synthpedes, tmp_path, capsys):
    output, _ = imported
    resumed = tmp_path / "corpus"
    shutil.copytree(output, resumed)
    for name in ("synthpedes-000001_stats.json", "synthpedes-000001.tar", "manifest.json", "deadletter.jsonl"):
        (resumed / name).unlink()
    counters = run_import(synthpedes, resumed)
    assert counters["written"] == 3 and counters["already_complete"] == SYNTHPEDES_EXPECTED["written"] - 3
    adds_up(counters)
    assert folder_bytes(resumed) == folder_bytes(output)
    argv = ["--runner=DirectRunner", "--input", str(synthpedes), "--output", str(resumed), "--shard_size", "5"]
    assert run_main(import_corpus.PROG, import_corpus.cli_main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "shard_size was 4, now 5" in err and err.startswith(import_corpus.PROG)
    counters = run_import(synthpedes, resumed, "--shard_size", "5", "--overwrite")
    assert counters["written"] == SYNTHPEDES_EXPECTED["written"] and "already_complete" not in counters
    assert verify_corpus(str(resumed)) == []
    manifest = json.loads((resumed / "manifest.json").read_text())
    assert [shard["count"] for shard in manifest["shards"]] == [5, 3, 4, 1]


def test_plip_pretrain_streams_the_imported_corpus(imported, tmp_path):
    from plip.programs.pretrain import main
    from tests.plip.train_corpus import tiny_flags, write_tiny_text_model

    output, _ = imported
    run_dir = tmp_path / "run"
    argv = [
        "--shards",
        str(output),
        "--out",
        str(run_dir),
        "--ids-per-batch",
        "2",
        "--images-per-id",
        "2",
        "--steps-per-epoch",
        "3",
        "--epochs",
        "1",
        "--max-steps",
        "3",
        "--log-every",
        "1",
        "--lr",
        "1e-3",
        "--warmup-epochs",
        "0.5",
        "--milestones",
        "1",
        "--shuffle-buffer",
        "8",
        *tiny_flags(write_tiny_text_model(tmp_path / "bert")),
    ]
    assert main(argv) == 0
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [line for line in lines if line["kind"] == "train"]
    assert [line["step"] for line in train] == [1, 2, 3]
    assert all(line["loss"] == line["loss"] for line in train)  # not NaN


def test_the_cuhk_pedes_train_split_imports_with_mined_attributes(tmp_path):
    dataset = write_cuhk_pedes(tmp_path / "CUHK-PEDES")
    output = tmp_path / "corpus"
    counters = run_import(dataset, output)
    assert (counters["entries"], counters["skipped_split"], counters["written"]) == (10, 4, 6)
    adds_up(counters)
    assert verify_corpus(str(output)) == []
    found = records(output)
    assert sorted({r["id"] for r in found.values()}) == [1, 2, 3]
    assert all(r["styles"] == ["human", "human"] and r["prompt_caption"] == [] for r in found.values())
    assert all(
        r["attribute_spans"] == [[list(s) for s in spans] for spans in attribute_spans(r["captions"])]
        for r in found.values()
    )
    man = next(r for r in found.values() if r["id"] == 2)
    assert man["attributes"]["upper"] == {"value": "black jacket", "confidence": None}
    assert man["attributes"]["belongings"]["value"] == "black backpack"
    assert man["source"] == str(dataset / "imgs" / man["file_path"])
    assert sorted(p.name for p in output.glob("*.tar")) == ["cuhkpedes-000000.tar", "cuhkpedes-000001.tar"]


def test_the_rstpreid_train_split_imports(tmp_path):
    dataset = write_rstpreid(tmp_path / "RSTPReid")
    output = tmp_path / "corpus"
    counters = run_import(dataset, output, "--attributes", "unknown")
    assert (counters["entries"], counters["skipped_split"], counters["written"]) == (9, 3, 6)
    assert verify_corpus(str(output)) == []
    found = records(output)
    assert sorted({r["id"] for r in found.values()}) == [0, 1]
    assert {e["value"] for r in found.values() for e in r["attributes"].values()} == {"unknown"}


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--shard_sizee", "5"], "unknown flag --shard_sizee"),
        (["--seed", "3"], "unknown flag --seed"),  # a synthesis flag: not this job's
        (["--format", "cuhk-pedes"], "holds none of reid_raw.json"),
    ],
)
def test_bad_input_gives_one_line_error(synthpedes, tmp_path, capsys, flags, message):
    argv = ["--runner=DirectRunner", "--input", str(synthpedes), "--output", str(tmp_path / "out"), *flags]
    assert run_main(import_corpus.PROG, import_corpus.cli_main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and err.startswith(import_corpus.PROG)
    assert not (tmp_path / "out").exists()


def test_the_cli_prints_counters_and_outputs(synthpedes, tmp_path, capsys):
    argv = [
        "--runner=DirectRunner",
        "--input",
        str(synthpedes),
        "--output",
        str(tmp_path / "out"),
        "--shard_size",
        SHARD_SIZE,
    ]
    assert run_main(import_corpus.PROG, import_corpus.cli_main, argv) == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert printed["state"] == "DONE" and printed["written"] == str(SYNTHPEDES_EXPECTED["written"])
    assert printed["skipped_split"] == "0" and printed["output"].endswith("import_report.json")


@pytest.mark.skipif(
    _dataflow_unavailable() is not None, reason="Dataflow graph check needs the 'dataflow' extra (apache-beam[gcp])"
)
def test_dataflow_dry_run_translates_the_graph(synthpedes):
    argv = [
        "--runner=DataflowRunner",
        "--dry_run=True",
        "--project=any",
        "--region=us-central1",
        "--temp_location=gs://any/tmp",
        "--input",
        str(synthpedes),
        "--output",
        "gs://any/out",
    ]
    result = import_corpus.run(argv, save_main_session=False)
    assert result.state == "DONE"
    assert import_corpus.counters(result) == {}


def test_run_builds_the_graph_on_a_given_test_pipeline(synthpedes, tmp_path):
    pipeline = beam_testing.TestPipeline(options=PipelineOptions(["--runner=DirectRunner"]))
    argv = ["--input", str(synthpedes), "--output", str(tmp_path / "out"), "--shard_size", SHARD_SIZE]
    result = import_corpus.run(argv, save_main_session=False, test_pipeline=pipeline)
    found = import_corpus.counters(result)
    assert found["written"] == SYNTHPEDES_EXPECTED["written"]
    # every counter of the job, the shared shard writer's included, is in the job's own namespace
    assert counter_totals(result, import_corpus.NAMESPACE) == found and import_corpus.NAMESPACE == "import_corpus"
    assert counter_totals(result, SYNTHESIS_NAMESPACE) == {}
