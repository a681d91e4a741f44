"""pipelines.synthesis.job: flags become a checked Job; each bad setting is one InputError naming it."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from common.cli import run_main
from common.errors import InputError
from pipelines import synthesize
from pipelines.synthesis.job import Job, is_local_runner, make_job


def _args(tmp_path, predictor, *flags):
    args, _ = synthesize.parse_known_args(["--input", str(tmp_path), "--predictor", str(predictor), *flags])
    return args


# the caption-model flags that decide the corpus (how the job runs, e.g. concurrency, is not among them)
MLLM_CORPUS_FLAGS = (
    "--captioner",
    "mllm",
    "--mllm_server",
    "http://h:8000/v1/",
    "--mllm_model",
    "tiny",
    "--mllm_texts",
    "3",
    "--mllm_temperature",
    "0.7",
    "--mllm_seed",
    "5",
    "--mllm_max_words",
    "40",
)


def test_make_job_keeps_the_checked_settings(tmp_path, colour_predictor):
    job = make_job(
        _args(tmp_path, colour_predictor, "--styles", "dense,narrative,dense", "--shard_size", "7"), "DirectRunner"
    )
    assert isinstance(job, Job)
    assert job.styles == ("dense", "narrative") and job.shard_size == 7 and job.device == "cpu"


def test_inference_run_settings_reach_the_job(tmp_path, colour_predictor):
    plain = make_job(_args(tmp_path, colour_predictor), "DirectRunner")
    assert (plain.max_batch_size, plain.share_model, plain.model_copies) == (None, False, None)
    job = make_job(
        _args(tmp_path, colour_predictor, "--batch_size", "64", "--max_batch_size", "256", "--share_model"),
        "DirectRunner",
    )
    assert (job.batch_size, job.max_batch_size, job.share_model, job.model_copies) == (64, 256, True, None)
    copies = make_job(_args(tmp_path, colour_predictor, "--model_copies", "2"), "DirectRunner")
    assert copies.share_model and copies.model_copies == 2  # Beam's semantics: copies are shared copies
    with pytest.raises(InputError, match="--max_batch_size: 16 is below --batch_size 32"):
        make_job(_args(tmp_path, colour_predictor, "--max_batch_size", "16"), "DirectRunner")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--device", "tpu9"], "--device"),
        (["--styles", "sonnet"], "--styles"),
        (["--prefix", "a/b"], "prefix"),
        (["--min_images", "5", "--max_images", "2"], "max_images"),
    ],
)
def test_bad_settings_name_themselves(tmp_path, colour_predictor, flags, message):
    with pytest.raises(InputError, match=message):
        make_job(_args(tmp_path, colour_predictor, *flags), None)


def test_identity_cleaning_settings_are_checked_and_fingerprinted_only_when_on(tmp_path, colour_predictor):
    from pipelines.synthesis.job import fingerprint

    plain = make_job(_args(tmp_path, colour_predictor), "DirectRunner")
    assert plain.cleaning is None and "identity_cleaning" not in fingerprint(plain)
    on = make_job(
        _args(tmp_path, colour_predictor, "--identity_cleaning", "on", "--merge_similarity", "0.9", "--lsh_bits", "12"),
        "DirectRunner",
    )
    assert (on.cleaning.merge_similarity, on.cleaning.lsh_bits, on.cleaning.outlier_similarity) == (0.9, 12, 0.45)
    assert fingerprint(on)["identity_cleaning"]["merge_similarity"] == 0.9
    with pytest.raises(InputError, match="--identity_cleaning: outlier_similarity must be a cosine between -1 and 1"):
        make_job(
            _args(tmp_path, colour_predictor, "--identity_cleaning", "on", "--outlier_similarity", "1.5"),
            "DirectRunner",
        )


def test_caption_model_settings_reach_the_job_and_are_fingerprinted_only_with_mllm(tmp_path, colour_predictor):
    from pipelines.synthesis.job import fingerprint

    plain = make_job(_args(tmp_path, colour_predictor), "DirectRunner")
    assert plain.caption_model is None and not {"generator", "generation"} & set(fingerprint(plain))
    job = make_job(
        _args(tmp_path, colour_predictor, *MLLM_CORPUS_FLAGS, "--mllm_concurrency", "4", "--mllm_batch_size", "8"),
        "DirectRunner",
    )
    model = job.caption_model
    assert (model.texts, model.max_words, model.min_words, model.min_confidence, model.batch_size) == (3, 40, 5, 0.5, 8)
    assert (model.backend.server, model.backend.concurrency, model.backend.decoding.seed) == ("http://h:8000/v1/", 4, 5)
    recorded = fingerprint(job)
    assert recorded["generator"] == {
        "kind": "server",
        "model": "tiny",
        "decoding": {"max_new_tokens": 96, "temperature": 0.7, "seed": 5},
    }
    assert recorded["information"] == {"mllm_server": "http://h:8000/v1"}  # recorded, not compared by a resume
    assert (recorded["generation"]["texts_per_image"], recorded["generation"]["max_words"]) == (3, 40)
    # how the job runs (concurrency, batch) is not a setting of the corpus
    other = make_job(
        _args(tmp_path, colour_predictor, *MLLM_CORPUS_FLAGS),
        "DirectRunner",
    )
    assert fingerprint(other) == recorded


def test_a_sentences_library_is_read_and_checked_at_launch(tmp_path, colour_predictor):
    from spac.cli.main import main
    from tests.spac.mining_files import write_caption_files

    library = tmp_path / "mined.yaml"
    assert main(["mine-templates", *map(str, write_caption_files(tmp_path)), "--out", str(library), "--quiet"]) == 0
    data = library.read_bytes()
    for flag, mode in ((str(library), "replace"), (f"+{library}", "add")):
        job = make_job(_args(tmp_path, colour_predictor, "--sentences", flag), "DirectRunner")
        assert job.sentences.option.path == str(library) and job.sentences.option.mode == mode
        assert job.sentences.text == data.decode() and job.sentences.sha256 == hashlib.sha256(data).hexdigest()
    assert make_job(_args(tmp_path, colour_predictor), "DirectRunner").sentences is None
    broken = tmp_path / "broken.yaml"
    broken.write_text("sentences:\n  none: ['A {gender} wears a red coat.']\n")
    for flag, message in (
        (str(tmp_path / "none.yaml"), "none.yaml: no such file"),
        (str(broken), r"broken.yaml: sentences.none\[0\]: the attribute word 'red'"),
        ("+", "expected PATH"),
    ):
        with pytest.raises(InputError, match=rf"^--sentences: .*{message}"):
            make_job(_args(tmp_path, colour_predictor, "--sentences", flag), "DirectRunner")


def test_remote_runs_check_device_syntax_but_not_local_files(tmp_path):
    args, _ = synthesize.parse_known_args(
        ["--input", str(tmp_path), "--predictor", "/opt/predictor", "--device", "cuda:0"]
    )
    job = make_job(args, "DataflowRunner")  # the workers hold the GPU and the predictor, not this machine
    assert job.device == "cuda:0" and job.predictor == "/opt/predictor"
    with pytest.raises(InputError, match="--predictor"):
        make_job(args, "DirectRunner")


def test_is_local_runner():
    assert is_local_runner(None) and is_local_runner("DirectRunner") and is_local_runner("direct")
    assert not is_local_runner("DataflowRunner")


def _set_config(predictor, **change):
    config = json.loads((predictor / "config.json").read_text())
    (predictor / "config.json").write_text(json.dumps({**config, **change}))


@pytest.mark.parametrize(
    "breaks, words",
    [
        (
            lambda p: (p / "model.safetensors").write_bytes(b"\x80\x04not safetensors"),
            "not a readable safetensors file",
        ),
        (lambda p: _set_config(p, image_size=[256.5, 128]), "'image_size' must be"),
        (lambda p: _set_config(p, bands=2), "config.json implies"),
    ],
)
def test_launch_with_a_broken_predictor_is_one_line_and_writes_nothing(
    tmp_path, capsys, colour_predictor, breaks, words
):
    predictor = shutil.copytree(colour_predictor, tmp_path / "predictor")
    breaks(predictor)
    (tmp_path / "images").mkdir()
    argv = [
        "--runner=DirectRunner",
        "--input",
        str(tmp_path / "images"),
        "--output",
        str(tmp_path / "out"),
        "--predictor",
        str(predictor),
    ]
    assert run_main(synthesize.PROG, synthesize.cli_main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"{synthesize.PROG}: error: --predictor: {predictor}")
    assert words in err
    assert not (tmp_path / "out").exists()
