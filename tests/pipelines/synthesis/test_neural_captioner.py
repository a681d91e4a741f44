"""The synthesis job with --captioner spac: a tiny saved captioner end to end (the same bytes on a rerun), a
scripted captioner whose contradicting texts never reach a shard while the stage's counters add up (in the
job, filter_report.json and `spac report`), job.json's record of the captioner's files and decoding (a resume
with another captioner is refused in one line), one-line errors for a bad --captioner_model, and the Dataflow
dry run with the captioner's handler."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from common.cli import run_main
from pipelines import synthesize
from pipelines.synthesis import neural_captioner
from pipelines.synthesis.caption_handler import REPORT_FIELD
from pipelines.synthesis.job import NeuralCaptioner
from pipelines.synthesis.neural_captioner import NeuralCaptionerHandler
from shards import iter_samples
from spac.attributes import load_schema
from spac.captioning.captioner import Captioner
from spac.cli.report import cli_main as report_main
from spac.generation.styled import StyledDecoding, StyledWriter
from spac.neural_captioner.files import save_captioner
from tests.pipelines.colour_predictor import PROFILES, RED
from tests.pipelines.conftest import EXPECTED, JOB_FLAGS, folder_bytes, run_job
from tests.pipelines.synthesis.conftest import assert_refused_in_one_line
from tests.pipelines.test_synthesize import _dataflow_unavailable, dataflow_dry_run_handlers
from tests.spac.generation.scripted_captioner import STYLE_NAMES, ScriptedCaptioner
from tests.spac.generation.test_styled import JPEG
from tests.spac.neural_captioner.tiny import tiny_captioner as build_tiny_captioner

# What the scripted captioner writes for an image and style: a pure function of the two, so the counts are
# known from the written records' keys. Every written person is a man in a red t-shirt (tests.pipelines.conftest).
CONTRADICTION = "A man in a blue t-shirt and blue jeans walks along the street."
OTHER_GENDER = "A woman in a red t-shirt walks along the street with her bag."
KINDS = ("good", "contradiction", "good", "gender")


def _kind(key: str, style: int) -> str:
    return KINDS[(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) + style) % len(KINDS)]


def script(key: str, style: int) -> str:
    kind = _kind(key, style)
    if kind == "good":  # each the only one of its words: the number and the style
        number = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
        return f"A man in a red t-shirt walks along the pavement, picture {number} in the {STYLE_NAMES[style]} way."
    return CONTRADICTION if kind == "contradiction" else OTHER_GENDER


def save_tiny_captioner(directory: Path, seed: int = 0) -> Path:
    """An untrained tiny captioner saved with spac's own save_captioner: its texts are random tokens."""
    model = build_tiny_captioner(seed=seed)
    return save_captioner(model, model.tokenizer, directory)


def _spac_flags(model: Path | str, *extra: str) -> list[str]:
    return [
        "--captioner",
        "spac",
        "--captioner_model",
        str(model),
        "--captioner_batch_size",
        "4",
        "--captioner_max_tokens",
        "12",  # an untrained captioner never ends a text: 12 tokens keep the test short
        *extra,
    ]


@pytest.fixture(scope="module")
def tiny_captioner(tmp_path_factory) -> Path:
    return save_tiny_captioner(tmp_path_factory.mktemp("captioner") / "tiny")


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory, input_folder, colour_predictor, tiny_captioner):
    """The job with the tiny captioner's folder (checked and hashed at launch) but the scripted captioner's
    texts (loaded in place of the model by the handler, in this process: DirectRunner's default mode)."""
    output = tmp_path_factory.mktemp("scripted_corpus")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(neural_captioner, "load_captioner", lambda path, device: ScriptedCaptioner(script))
        patch.setattr(neural_captioner, "accelerated", lambda captioner: captioner)  # no model to put on a device
        counters = run_job(input_folder, output, colour_predictor, *_spac_flags(tiny_captioner))
    return output, counters


def test_a_contradicting_text_never_reaches_a_shard_and_the_counters_add_up(scripted_run, tiny_captioner):
    output, counters = scripted_run
    assert counters["written"] == EXPECTED["written"]
    records = [sample["json"] for sample in iter_samples(str(output))]
    kinds = [_kind(r["key"], style) for r in records for style in range(2)]
    assert counters["spac_requested"] == 2 * EXPECTED["written"] == len(kinds)
    assert counters["spac_kept"] == kinds.count("good") > 0
    assert counters["spac_rejected_contradiction"] == kinds.count("contradiction") > 0
    assert counters["spac_rejected_gender"] == kinds.count("gender") > 0
    rejected = sum(n for name, n in counters.items() if name.startswith("spac_rejected_"))
    assert counters["spac_requested"] == counters["spac_kept"] + rejected
    assert counters["spac_fallback"] == rejected
    texts = {text for r in records for text in r["captions"] + r["prompt_caption"]}
    assert CONTRADICTION not in texts and OTHER_GENDER not in texts
    for record in records:
        assert len(record["captions"]) == 2 and len(record["prompt_caption"]) == 1
        assert len(record["attribute_spans"]) == 3
        for style, text in zip(record["styles"], record["captions"]):
            if style.startswith("spac:"):
                assert text == script(record["key"], STYLE_NAMES.index(style[len("spac:") :]))
        assert record["caption_model"] == str(tiny_captioner)
    assert sum(s.startswith("spac:") for r in records for s in r["styles"]) == counters["spac_kept"]
    assert counters["stage_images_caption"] == EXPECTED["written"]


def test_the_filter_report_and_spac_report_show_the_stage(scripted_run, tmp_path, tiny_captioner):
    output, counters = scripted_run
    report = json.loads((output / "filter_report.json").read_text())["caption_model"]
    assert report["counters"] == {name: n for name, n in counters.items() if name.startswith("spac_")}
    assert sorted(report["rejected_examples"]) == ["contradiction", "gender"]
    assert {t["text"] for t in report["rejected_examples"]["gender"]} == {OTHER_GENDER}
    page = tmp_path / "page.html"
    assert report_main([str(output), "--output", str(page), "--samples", "0", "--quiet"]) == 0
    text = page.read_text()
    assert f'<td>spac_kept</td><td class="n">{counters["spac_kept"]:,}</td>' in text
    assert f"<td>model</td><td>{tiny_captioner}</td>" in text


def test_job_json_records_the_captioners_files_and_decoding_and_another_captioner_is_refused(
    scripted_run, tmp_path, input_folder, colour_predictor, tiny_captioner, capsys
):
    output, _ = scripted_run
    recorded = json.loads((output / "job.json").read_text())["neural_captioner"]
    files = {
        p.relative_to(tiny_captioner).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in tiny_captioner.rglob("*")
        if p.is_file()
    }
    assert recorded["files_sha256"] == files and {"config.json", "model.safetensors"} < set(files)
    assert recorded["decoding"] == {"temperature": 0.0, "seed": 0, "max_new_tokens": 12}
    assert recorded["model"] == str(tiny_captioner)

    other = tmp_path / "other"
    save_tiny_captioner(other, seed=1)
    for model, extra, named in (
        (other, (), "neural_captioner.files_sha256"),
        (tiny_captioner, ("--captioner_temperature", "0.5"), "neural_captioner.decoding.temperature was 0.0, now 0.5"),
    ):
        corpus = tmp_path / f"corpus-{len(extra)}"
        shutil.copytree(output, corpus)
        argv = [
            "--runner=DirectRunner",
            "--input",
            str(input_folder),
            "--output",
            str(corpus),
            "--predictor",
            str(colour_predictor),
            *JOB_FLAGS,
            *_spac_flags(model, *extra),
        ]
        assert run_main(synthesize.PROG, synthesize.cli_main, argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "cannot resume" in err and named in err


def test_a_tiny_captioner_runs_end_to_end_and_a_rerun_gives_the_same_bytes(
    tmp_path, input_folder, colour_predictor, tiny_captioner
):
    first, second = tmp_path / "first", tmp_path / "second"
    counters = run_job(input_folder, first, colour_predictor, *_spac_flags(tiny_captioner))
    run_job(input_folder, second, colour_predictor, *_spac_flags(tiny_captioner))
    assert counters["written"] == EXPECTED["written"]
    rejected = sum(n for name, n in counters.items() if name.startswith("spac_rejected_"))
    assert counters["spac_requested"] == 2 * EXPECTED["written"] == counters["spac_kept"] + rejected
    assert counters["spac_fallback"] == rejected
    records = [sample["json"] for sample in iter_samples(str(first))]
    assert all(len(r["captions"]) == 2 and len(r["prompt_caption"]) == 1 for r in records)
    assert {r["caption_model"] for r in records} == {str(tiny_captioner)}
    assert folder_bytes(first) == folder_bytes(second)


def test_run_inference_gives_each_record_its_texts_and_keeps_its_other_fields():
    model = NeuralCaptioner("captioner", (), StyledDecoding(), batch_size=2)
    handler = NeuralCaptionerHandler(model, "cpu", None, seed=7)
    attributes = {group: {"value": value, "confidence": 0.9} for group, value in PROFILES[RED].items()}
    records = [{"key": f"k{n}", "identity": "a", "jpg": JPEG, "attributes": attributes} for n in range(3)]
    done = handler.run_inference(records, StyledWriter(ScriptedCaptioner(script), StyledDecoding(), 2))
    assert [r["key"] for r in done] == ["k0", "k1", "k2"] and all(r["identity"] == "a" for r in done)
    for record in done:
        expected = Captioner(load_schema())(PROFILES[RED], record["key"], 7)
        assert record["prompt_caption"] == [expected[-1].text]
        assert len(record["captions"]) == 2 and len(record["attribute_spans"]) == 3
        assert record["caption_model"] == "captioner"
        counters, _ = record[REPORT_FIELD]  # for SplitStageReport, as the mllm stage's records
        assert counters["spac_requested"] == 2


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--captioner", "spac"], "--captioner spac needs --captioner_model"),
        (["--captioner_model", "DIR"], "--captioner_model needs --captioner spac"),
        (["--captioner_temperature", "0.5"], "--captioner_temperature needs --captioner spac"),
        (["--captioner", "spac", "--captioner_model", "MISSING"], "--captioner_model: "),
        (["--captioner", "spac", "--captioner_model", "EMPTY"], "--captioner_model: "),
        (["--captioner", "spac", "--captioner_model", "CAPTIONER", "--mllm_texts", "3"], "--mllm_texts needs"),
        (["--captioner", "spac", "--captioner_model", "CAPTIONER", "--captioner_batch_size", "0"], "batch_size"),
    ],
)
def test_a_bad_captioner_model_or_flag_is_one_line_and_exit_2(
    tmp_path, capsys, colour_predictor, tiny_captioner, flags, message
):
    (tmp_path / "empty").mkdir()
    names = {"MISSING": str(tmp_path / "missing"), "EMPTY": str(tmp_path / "empty"), "CAPTIONER": str(tiny_captioner)}
    flags = [names.get(flag, flag) for flag in flags]
    assert_refused_in_one_line(capsys, tmp_path, colour_predictor, flags, message)


@pytest.mark.skipif(
    _dataflow_unavailable() is not None, reason="Dataflow graph check needs the 'dataflow' extra (apache-beam[gcp])"
)
def test_dataflow_dry_run_with_the_neural_captioner(input_folder):
    """Translated offline: the workers load the captioner from their image (a folder this machine lacks), and
    its handler gets the stage's batch size, the job's device and model sharing."""
    handlers = dataflow_dry_run_handlers(
        input_folder, "--captioner", "spac", "--captioner_model", "/opt/captioner", "--captioner_batch_size", "64"
    )
    assert len(handlers) == 2
    captioning = handlers[1]
    assert isinstance(captioning, NeuralCaptionerHandler)
    assert captioning.batch_elements_kwargs() == {"min_batch_size": 64, "max_batch_size": 64}
    assert captioning.share_model_across_processes() and captioning.model_copies() == 4
    assert captioning._model.path == "/opt/captioner" and captioning._model.files_sha256 == ()
    assert captioning._device == "cuda"


def test_on_cuda_the_captioner_writes_under_autocast(tiny_captioner, monkeypatch):
    """The job's CUDA mode, shown on the CPU: an acceleration with an autocast dtype wraps the captioner, whose
    texts are then written under autocast (here the CPU's bf16); without one it is left as it is."""
    from pipelines.synthesis.model_handler import Acceleration
    from spac.neural_captioner.files import load_captioner

    loaded = load_captioner(tiny_captioner)
    assert neural_captioner.accelerated(loaded) is loaded  # the CPU: nothing changes
    monkeypatch.setattr(neural_captioner, "acceleration_for", lambda device: Acceleration(torch.bfloat16, True))
    wrapped = neural_captioner.accelerated(loaded)
    assert isinstance(wrapped, neural_captioner.Autocast) and wrapped.style_names == loaded.style_names
    seen = []
    original = loaded.caption_images
    monkeypatch.setattr(
        loaded,
        "caption_images",
        lambda *a, **k: (
            seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"))) or original(*a, **k)
        ),
    )
    texts = wrapped.caption_images([Image.open(io.BytesIO(JPEG))], 1, max_new_tokens=4, keys=["k"])
    assert len(texts) == 1 and seen == [(True, torch.bfloat16)] and torch.is_autocast_enabled("cpu") is False


def test_the_captioner_enters_job_json_only_when_chosen_and_its_batch_size_never(
    input_folder, colour_predictor, tiny_captioner
):
    """A template job keeps the fingerprint it always had; the chunk size changes how the job runs, not the corpus."""
    from pipelines.synthesis.job import fingerprint, make_job

    def record(*flags: str) -> dict:
        base = ["--input", str(input_folder), "--predictor", str(colour_predictor), *flags]
        return fingerprint(make_job(synthesize.parse_known_args(base)[0], None))

    assert "neural_captioner" not in record()
    small, large = (
        record(*_spac_flags(tiny_captioner)),
        record(*_spac_flags(tiny_captioner, "--captioner_batch_size", "64")),
    )
    assert small == large and small["neural_captioner"]["checks"] == {
        "min_confidence": 0.5,
        "min_words": 5,
        "max_words": 60,
    }
