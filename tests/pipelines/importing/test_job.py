"""pipelines.importing.job: the dataset file found, its format told and checked against its first entry,
every bad setting one line before the job starts; job.json's fingerprint."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import pytest

from common.errors import InputError
from pipelines.importing import options
from pipelines.importing.job import fingerprint, make_import_job
from tests.pipelines.import_datasets import write_cuhk_pedes, write_rstpreid, write_synthpedes


def parse(*argv: str) -> argparse.Namespace:
    return options.parser("import").parse_args(list(argv))


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    return {
        "synthpedes": write_synthpedes(root / "SYNTH-PEDES"),
        "cuhk": write_cuhk_pedes(root / "CUHK-PEDES"),
        "rstpreid": write_rstpreid(root / "RSTPReid"),
    }


def test_a_synthpedes_folder_is_found_and_told(datasets, tmp_path):
    job = make_import_job(parse("--input", str(datasets["synthpedes"]), "--output", str(tmp_path)))
    assert job.format == "synthpedes" and job.annotations == str(datasets["synthpedes"] / "synthpedes_dataset.json")
    assert job.images == str(datasets["synthpedes"]) and job.split is None and job.attributes == "released"
    assert job.prefix == "synthpedes"


def test_a_human_captioned_file_defaults_to_its_train_split_imgs_and_mined_attributes(datasets, tmp_path):
    job = make_import_job(parse("--input", str(datasets["cuhk"] / "reid_raw.json"), "--output", str(tmp_path)))
    assert (job.format, job.split, job.attributes, job.prefix) == ("cuhk-pedes", "train", "mine", "cuhkpedes")
    assert job.images == str(datasets["cuhk"] / "imgs")
    job = make_import_job(
        parse(
            "--input",
            str(datasets["rstpreid"]),
            "--output",
            str(tmp_path),
            "--split",
            "all",
            "--attributes",
            "unknown",
            "--prefix",
            "rstp",
        )
    )
    assert (job.format, job.split, job.attributes, job.prefix) == ("rstpreid", None, "unknown", "rstp")


def test_a_renamed_file_is_told_by_its_first_entry(datasets, tmp_path):
    renamed = tmp_path / "mine.json.gz"
    renamed.write_bytes(gzip.compress((datasets["synthpedes"] / "synthpedes_dataset.json").read_bytes()))
    job = make_import_job(
        parse("--input", str(renamed), "--output", str(tmp_path / "out"), "--images", str(datasets["synthpedes"]))
    )
    assert job.format == "synthpedes" and job.images == str(datasets["synthpedes"])


def test_the_format_is_told_by_the_first_entry_the_reader_builds(datasets, tmp_path):
    """Issue 19: a first entry the reader skips (here a raw 0xff byte) is that entry's dead letter in the job,
    not a wrong format at launch."""
    text = (datasets["synthpedes"] / "synthpedes_dataset.json").read_bytes()
    entries = json.loads(text)
    spoiled = json.dumps(entries[0]).encode().replace(b"A man", b"A \xff man", 1)
    renamed = tmp_path / "mine.json"
    renamed.write_bytes(b"[" + spoiled + b"," + json.dumps(entries[1:])[1:].encode())
    job = make_import_job(
        parse("--input", str(renamed), "--output", str(tmp_path / "out"), "--images", str(datasets["synthpedes"]))
    )
    assert job.format == "synthpedes"


def _json(tmp_path: Path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--input", "{tmp}/nowhere"], "does not exist"),
        (["--input", "{tmp}/nowhere.json"], "does not exist"),
        (["--input", "{tmp}"], "holds none of synthpedes_dataset.json"),
        (["--input", "{synthpedes}", "--split", "train"], "SYNTH-PEDES has no splits"),
        (["--input", "{synthpedes}", "--attributes", "mine"], "keeps its released attributes"),
        (["--input", "{synthpedes}", "--format", "cuhk-pedes"], "holds none of reid_raw.json"),
        (["--input", "{synthpedes}/synthpedes_dataset.json", "--format", "rstpreid"], "--format says rstpreid"),
        (["--input", "{cuhk}/reid_raw.json", "--images", "{tmp}/nowhere"], "--images"),
        (["--input", "{synthpedes}", "--prefix", "bad/prefix"], "prefix"),
        (["--input", "{tmp}/ambiguous.json"], "pass --format cuhk-pedes or --format icfg-pedes"),
        (["--input", "{tmp}/object.json"], "expected a JSON list"),
        (["--input", "{tmp}/empty.json"], "holds no entries"),
        (["--input", "{tmp}/odd.json"], "cannot tell the format"),
        (["--input", "{synthpedes}", "--output", ""], "--output is required"),
    ],
)
def test_bad_settings_are_one_line(datasets, tmp_path, flags, message):
    _json(tmp_path, "ambiguous.json", [{"split": "train", "captions": ["x"], "file_path": "a.jpg", "id": 1}])
    _json(tmp_path, "object.json", {"a": 1})
    _json(tmp_path, "empty.json", [])
    _json(tmp_path, "odd.json", [{"name": "x"}])
    names = {"tmp": tmp_path, **{k: v for k, v in datasets.items()}}
    argv = ["--output", str(tmp_path / "out")] + [f.format(**names) for f in flags]
    with pytest.raises(InputError, match=message) as caught:
        make_import_job(parse(*argv))
    assert "\n" not in str(caught.value)


def test_fingerprint_names_the_corpus_settings_not_the_output(datasets, tmp_path):
    one = fingerprint(make_import_job(parse("--input", str(datasets["cuhk"]), "--output", str(tmp_path / "a"))))
    two = fingerprint(make_import_job(parse("--input", str(datasets["cuhk"]), "--output", str(tmp_path / "b"))))
    assert one == two and one["job"] == "import_corpus" and one["split"] == "train"
    three = fingerprint(
        make_import_job(parse("--input", str(datasets["cuhk"]), "--output", str(tmp_path), "--shard_size", "7"))
    )
    assert {k for k in one if one[k] != three[k]} == {"shard_size"}
