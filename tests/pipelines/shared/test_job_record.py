"""Rerunning the job into an existing output folder: job.json, resume, refusal, --overwrite, the exact manifest."""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path

import pytest

from common.cli import run_main
from pipelines import synthesize
from pipelines.shared import shard_sink
from pipelines.synthesis.job import fingerprint, make_job
from shards import verify_corpus
from tests.pipelines.conftest import EXPECTED, JOB_FLAGS, folder_bytes, run_job


def copy_corpus(first_run, tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    shutil.copytree(first_run[0], corpus)  # keeps modification times
    return corpus


def refused(input_folder: Path, corpus: Path, predictor: Path, capsys, *extra: str) -> str:
    """The one-line error of a run that must stop before writing anything."""
    before = folder_bytes(corpus)
    argv = [
        "--runner=DirectRunner",
        "--input",
        str(input_folder),
        "--output",
        str(corpus),
        "--predictor",
        str(predictor),
        *JOB_FLAGS,
        *extra,
    ]
    assert run_main(synthesize.PROG, synthesize.cli_main, argv) == 2
    assert folder_bytes(corpus) == before
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(synthesize.PROG)
    return err


def test_job_json_records_corpus_settings_only(first_run, colour_predictor, input_folder):
    output, _ = first_run
    text = (output / "job.json").read_text()
    record = json.loads(text)
    assert text == json.dumps(record, indent=2, sort_keys=True) + "\n"
    assert (record["shard_size"], record["seed"], record["min_images"], record["max_images"]) == (4, 7, 3, 6)
    assert record["input"]["root"] == str(input_folder)
    weights = hashlib.sha256((colour_predictor / "model.safetensors").read_bytes()).hexdigest()
    assert record["predictor"]["weights_sha256"] == weights
    assert not {"output", "runner", "direct_num_workers", "torch_threads", "batch_size", "device"} & set(record)


def test_rerun_with_same_settings_rewrites_no_shard(first_run, tmp_path, input_folder, colour_predictor):
    corpus = copy_corpus(first_run, tmp_path)
    before = folder_bytes(corpus)
    shard_times = {p.name: p.stat().st_mtime_ns for p in corpus.glob("synthpedes-*")}
    counters = run_job(input_folder, corpus, colour_predictor, "--torch_threads", "1")  # a runner-only flag differs
    assert counters.get("written", 0) == 0 and counters["already_complete"] == EXPECTED["written"]
    assert folder_bytes(corpus) == before
    assert {p.name: p.stat().st_mtime_ns for p in corpus.glob("synthpedes-*")} == shard_times


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--shard_size", "5"], ["shard_size was 4, now 5"]),
        (["--seed", "8", "--max_images", "5"], ["max_images was 6, now 5; seed was 7, now 8"]),
        (["--styles", "dense,narrative"], ["styles was None, now"]),
    ],
)
def test_other_settings_are_refused_naming_them(
    first_run, tmp_path, input_folder, colour_predictor, capsys, flags, named
):
    err = refused(input_folder, copy_corpus(first_run, tmp_path), colour_predictor, capsys, *flags)
    assert all(name in err for name in named) and "--overwrite" in err


def test_a_sentences_library_is_a_corpus_setting(first_run, tmp_path, input_folder, colour_predictor, capsys):
    library = tmp_path / "lib.yaml"
    library.write_text(Path(str(resources.files("templates").joinpath("sentences.yaml"))).read_text())
    err = refused(input_folder, copy_corpus(first_run, tmp_path), colour_predictor, capsys, "--sentences", str(library))
    assert "sentences" in err and "--overwrite" in err
    # by contents and mode, not location: the same file elsewhere gives the same record
    other = tmp_path / "elsewhere" / "lib.yaml"
    other.parent.mkdir()
    shutil.copy(library, other)
    records = [
        fingerprint(
            make_job(
                synthesize.parse_known_args(
                    ["--input", str(input_folder), "--predictor", str(colour_predictor), "--sentences", flag]
                )[0],
                None,
            )
        )
        for flag in (str(library), str(other), f"+{library}")
    ]
    assert records[0] == records[1] != records[2]
    assert records[0]["sentences"] == {"mode": "replace", "sha256": hashlib.sha256(library.read_bytes()).hexdigest()}


def test_inference_run_settings_stay_out_of_the_fingerprint(input_folder, colour_predictor):
    """Batch sizes and model sharing change how the job runs, not the corpus: a resume may change them."""
    base = ["--input", str(input_folder), "--predictor", str(colour_predictor)]
    run_flags = ["--batch_size", "8", "--max_batch_size", "64", "--share_model", "--model_copies", "2"]
    records = [fingerprint(make_job(synthesize.parse_known_args(base + flags)[0], None)) for flags in ([], run_flags)]
    assert records[0] == records[1]


def test_other_predictor_files_are_refused(first_run, tmp_path, input_folder, colour_predictor, capsys):
    other = tmp_path / "predictor"
    shutil.copytree(colour_predictor, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(config, indent=4))  # same model, other bytes: not provably equal
    err = refused(input_folder, copy_corpus(first_run, tmp_path), other, capsys)
    assert "cannot resume from --output" in err and "predictor." in err


def test_files_of_a_run_without_job_json_are_refused(first_run, tmp_path, input_folder, colour_predictor, capsys):
    corpus = copy_corpus(first_run, tmp_path)
    (corpus / "job.json").unlink()
    assert "without job.json" in refused(input_folder, corpus, colour_predictor, capsys)


def test_overwrite_replaces_the_corpus_and_nothing_else(first_run, tmp_path, input_folder, colour_predictor):
    corpus = copy_corpus(first_run, tmp_path)
    foreign = {
        "README.md": b"my notes\n",
        "synthpedes-draft.tar": b"not a shard name",
        "extra/synthpedes-000000.tar": b"in a subfolder",
    }
    for name, data in foreign.items():
        (corpus / name).parent.mkdir(exist_ok=True)
        (corpus / name).write_bytes(data)
    (corpus / "synthpedes-000004.tar.tmp-0123456789ab").write_bytes(b"a crashed writer's file")
    new_settings = ("--shard_size", "8", "--prefix", "pedes")
    counters = run_job(input_folder, corpus, colour_predictor, *new_settings, "--overwrite")
    assert counters["written"] == EXPECTED["written"]

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "README.md").write_bytes(foreign["README.md"])  # a foreign file alone does not stop a run
    run_job(input_folder, fresh, colour_predictor, *new_settings)
    assert folder_bytes(corpus) == folder_bytes(fresh) | foreign
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert [s["shard"] for s in manifest["shards"]] == [f"pedes-{i:06d}.tar" for i in range(3)]
    assert manifest["totals"]["samples"] == EXPECTED["written"]
    assert json.loads((corpus / "job.json").read_text())["shard_size"] == 8
    assert verify_corpus(str(corpus)) == []


def test_pipeline_manifest_lists_exactly_this_runs_shards(first_run, tmp_path):
    corpus = copy_corpus(first_run, tmp_path)  # five complete shards; a run of three must not list 3 and 4
    shard_sink.finish_manifest([2, 0, 1], str(corpus), "synthpedes")
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert [s["shard"] for s in manifest["shards"]] == [f"synthpedes-{i:06d}.tar" for i in range(3)]
    assert manifest["totals"]["samples"] == 12
    (corpus / "synthpedes-000001_stats.json").unlink()
    with pytest.raises(ValueError, match=r"synthpedes-000001\.tar \(of 3 expected\) is missing"):
        shard_sink.finish_manifest(range(3), str(corpus), "synthpedes")
    with pytest.raises(ValueError, match="not 0..1 without gaps"):
        shard_sink.finish_manifest([0, 2], str(corpus), "synthpedes")


def test_own_files_are_the_jobs_names_and_their_temporaries_only(tmp_path):
    from pipelines.shared.job_record import own_files
    from shards import remote

    for name in (
        "job.json",
        "manifest.json",
        "synthpedes-000000.tar",
        "synthpedes-000000.tar.tmp-1a2b",
        "other-000000.tar",
        "notes.txt",
        "synthpedes_dataset.json",
    ):
        (tmp_path / name).write_text("x")
    fs, root = remote.resolve(str(tmp_path))
    assert own_files(fs, root, {"synthpedes"}) == [
        "job.json",
        "manifest.json",
        "synthpedes-000000.tar",
        "synthpedes-000000.tar.tmp-1a2b",
        "synthpedes_dataset.json",
    ]


def test_job_json_holds_the_method_fingerprint_spac_reports(first_run, colour_predictor):
    from spac.fingerprint import method_fingerprint

    recorded = json.loads((first_run[0] / "job.json").read_text())
    assert {k: recorded[k] for k in method_fingerprint(str(colour_predictor))} == method_fingerprint(
        str(colour_predictor)
    )


def test_a_resume_removes_the_temporaries_a_killed_run_left(first_run, tmp_path, input_folder, colour_predictor):
    output = tmp_path / "corpus"
    shutil.copytree(first_run[0], output)
    (output / "synthpedes-000001.tar.tmp-0a1b2c3d4e5f").write_bytes(b"")
    (output / "manifest.json.tmp-ffffffffffff").write_bytes(b"")
    (output / "notes.tmp-keep").write_text("not ours")
    run_job(input_folder, output, colour_predictor)
    assert sorted(p.name for p in output.glob("*.tmp-*")) == ["notes.tmp-keep"]


def test_the_information_part_is_written_but_never_compared(tmp_path):
    from common.training import SettingsChanged
    from pipelines.shared.job_record import INFORMATION, REMEDY, prepare_output

    (tmp_path / "corpus-000000.tar").write_bytes(b"a shard of the earlier run")
    (tmp_path / "job.json").write_text(json.dumps({"prefix": "corpus", "seed": 7, INFORMATION: {"server": "a"}}))
    prepare_output(str(tmp_path), {"prefix": "corpus", "seed": 7, INFORMATION: {"server": "b"}})  # resumes
    assert json.loads((tmp_path / "job.json").read_text())[INFORMATION] == {"server": "b"}  # where it ran last
    with pytest.raises(SettingsChanged) as refused:
        prepare_output(str(tmp_path), {"prefix": "corpus", "seed": 8, INFORMATION: {"server": "c"}})
    assert str(refused.value).endswith("seed was 7, now 8; rerun with its settings to resume it, " + REMEDY)
