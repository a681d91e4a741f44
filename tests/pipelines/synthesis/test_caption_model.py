"""The synthesis job with --captioner mllm against the tests' chat server: only checked texts reach the shards,
the stage's counters match what the server answered, job.json names the model (a resume with another is
refused), the same answers give the same bytes; a server down at launch, and flags that do not go together,
are one line and exit 2; the Dataflow dry run carries the caption model's handler."""

from __future__ import annotations

import html
import json
import shutil
import socket

import pytest

from common.cli import run_main
from pipelines import synthesize
from pipelines.synthesis.caption_model import CaptionModelHandler
from pipelines.synthesis.job import CaptionModel
from pipelines.synthesis.outputs import REJECTED_EXAMPLES
from shards import iter_samples
from spac.attributes import load_schema
from spac.captioning.captioner import Captioner
from spac.cli.report import cli_main as report_main
from spac.generation.backends import Backend
from spac.generation.checks import REASONS
from spac.generation.prompts import load_instructions
from spac.generation.requests import CaptionRequest, GeneratedText
from tests.pipelines.conftest import EXPECTED, JOB_FLAGS, folder_bytes, run_job
from tests.pipelines.synthesis.conftest import assert_refused_in_one_line
from tests.pipelines.test_synthesize import _dataflow_unavailable, dataflow_dry_run_handlers
from tests.spac.generation.fake_server import FakeChatServer, Reply, text_reply

# What the server answers a request, by its seed (from the sample key and the style): a pure function of the
# request, so every run gets the same answers whatever the order of the requests.
GENDER = "A woman in a long coat walks along the street."
SHORT = "A man walks."
MARKUP = 'A man walks <script>alert("x")</script> along the street.'  # spac report must show it escaped


def _kind(body: dict) -> str:
    return ("good", "good", "gender", "too_short", "http_4xx", "markup")[body["seed"] % 6]


def answer(body: dict) -> Reply:
    kind = _kind(body)
    if kind == "good":  # the seed makes each good text the only one of its words
        return text_reply(f"A man walks along the pavement in picture number {body['seed']}.")
    if kind == "http_4xx":
        return Reply(400, b'{"error": "bad request"}')
    return text_reply({"gender": GENDER, "too_short": SHORT, "markup": MARKUP}[kind])


def _mllm_flags(server: FakeChatServer, *extra: str, model: str = "tiny") -> list[str]:
    return [
        "--captioner",
        "mllm",
        "--mllm_server",
        server.base_url,
        "--mllm_model",
        model,
        "--mllm_batch_size",
        "4",
        *extra,
    ]


@pytest.fixture(scope="module")
def mllm_run(tmp_path_factory, input_folder, colour_predictor):
    output = tmp_path_factory.mktemp("mllm_corpus")
    with FakeChatServer(answer) as server:
        counters = run_job(input_folder, output, colour_predictor, *_mllm_flags(server))
    return output, counters, [body for _, body in server.requests]


def test_only_checked_texts_reach_the_shards_and_the_counters_match_the_answers(mllm_run):
    output, counters, requests = mllm_run
    assert counters["written"] == EXPECTED["written"]
    kinds = [_kind(body) for body in requests]
    assert counters["mllm_requested"] == len(requests)
    assert counters["mllm_kept"] == kinds.count("good") > 0
    assert counters["mllm_rejected_gender"] == kinds.count("gender") > 0
    assert counters["mllm_rejected_too_short"] == kinds.count("too_short") > 0
    assert counters["mllm_failed_http_4xx"] == kinds.count("http_4xx") > 0
    assert counters["mllm_rejected_markup"] == kinds.count("markup") > 0
    asked_first = 2 * EXPECTED["written"]  # two texts per image, then one retry per text not kept
    assert asked_first < len(requests) < 2 * asked_first
    records = [sample["json"] for sample in iter_samples(str(output))]
    assert len(records) == EXPECTED["written"]
    generated = [
        (text, style) for r in records for text, style in zip(r["captions"], r["styles"]) if style.startswith("mllm:")
    ]
    assert len(generated) == counters["mllm_kept"]
    assert all(text.startswith("A man walks along the pavement") for text, _ in generated)
    texts = {text for r in records for text in r["captions"] + r["prompt_caption"]}
    assert GENDER not in texts and SHORT not in texts and MARKUP not in texts
    fallbacks = sum(not style.startswith("mllm:") for r in records for style in r["styles"])
    assert fallbacks == counters["mllm_fallback"] == 2 * EXPECTED["written"] - counters["mllm_kept"]
    assert all(len(r["captions"]) == 2 and len(r["prompt_caption"]) == 1 for r in records)
    assert counters["stage_images_caption"] == EXPECTED["written"]
    assert {r["caption_model"] for r in records} == {"tiny"}  # as job.json's generator.model


def test_the_filter_report_holds_the_stage_counters_and_a_few_rejected_texts_per_reason(mllm_run):
    output, counters, _ = mllm_run
    report = json.loads((output / "filter_report.json").read_text())["caption_model"]
    assert report["counters"] == {name: n for name, n in counters.items() if name.startswith("mllm_")}
    examples = report["rejected_examples"]
    assert sorted(examples) == ["gender", "markup", "too_short"]  # a failed request (http_4xx) has no text
    for reason, texts in examples.items():
        assert len(texts) == min(REJECTED_EXAMPLES, counters[f"mllm_rejected_{reason}"])
        assert {t["text"] for t in texts} == {{"gender": GENDER, "too_short": SHORT, "markup": MARKUP}[reason]}
        assert all(t["style"].startswith("mllm:") for t in texts)
        assert [(t["key"], t["style"]) for t in texts] == sorted((t["key"], t["style"]) for t in texts)


def test_spac_report_shows_the_stage_counters_and_the_rejected_texts_escaped(mllm_run, tmp_path):
    output, counters, _ = mllm_run
    page = tmp_path / "page.html"
    assert report_main([str(output), "--output", str(page), "--samples", "0", "--quiet"]) == 0
    text = page.read_text()
    assert ">Caption model</h2>" in text
    assert f'<td>mllm_rejected_markup</td><td class="n">{counters["mllm_rejected_markup"]:,}</td>' in text
    assert f'<td>mllm_kept</td><td class="n">{counters["mllm_kept"]:,}</td>' in text
    assert "<td>model</td><td>tiny</td>" in text
    assert "<script>alert" not in text and html.escape(MARKUP, quote=True) in text
    assert html.escape(SHORT) in text


def test_a_template_corpus_has_no_caption_model_part_nor_field(first_run):
    output, _ = first_run
    assert "caption_model" not in json.loads((output / "filter_report.json").read_text())
    assert all("caption_model" not in sample["json"] for sample in iter_samples(str(output)))


def test_job_json_names_the_model_and_prompts_and_a_resume_with_another_model_is_refused(
    mllm_run, tmp_path, input_folder, colour_predictor, capsys
):
    output, _, _ = mllm_run
    recorded = json.loads((output / "job.json").read_text())
    assert recorded["generator"]["kind"] == "server" and recorded["generator"]["model"] == "tiny"
    assert recorded["generator"]["decoding"]["temperature"] == 0.0
    assert recorded["generation"]["texts_per_image"] == 2 and recorded["generation"]["prompt_files_sha256"]
    resumed = tmp_path / "corpus"
    shutil.copytree(output, resumed)
    with FakeChatServer(answer, models=("tiny", "other")) as server:
        argv = [
            "--runner=DirectRunner",
            "--input",
            str(input_folder),
            "--output",
            str(resumed),
            "--predictor",
            str(colour_predictor),
            *JOB_FLAGS,
            *_mllm_flags(server, model="other"),
        ]
        assert run_main(synthesize.PROG, synthesize.cli_main, argv) == 2
        assert server.requests == []  # refused before any work
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot resume" in err and "generator.model was 'tiny', now 'other'" in err
    assert "information" not in err  # the other address is no reason to refuse


def test_the_same_model_at_another_address_resumes_and_job_json_says_where(
    mllm_run, tmp_path, input_folder, colour_predictor
):
    output, counters, _ = mllm_run
    before = json.loads((output / "job.json").read_text())
    assert before["information"]["mllm_server"].startswith("http://127.0.0.1:")
    resumed = tmp_path / "corpus"
    shutil.copytree(output, resumed)
    with FakeChatServer(answer) as server:
        assert server.base_url != before["information"]["mllm_server"]
        again = run_job(input_folder, resumed, colour_predictor, *_mllm_flags(server))
    assert again["already_complete"] == counters["written"] and again.get("written", 0) == 0
    after = json.loads((resumed / "job.json").read_text())
    assert after["information"] == {"mllm_server": server.base_url}
    assert {k: v for k, v in after.items() if k != "information"} == {
        k: v for k, v in before.items() if k != "information"
    }


@pytest.mark.slow  # ~30 s: two worker processes start and load the predictor
def test_the_same_answers_give_the_same_bytes_in_multi_processing_mode(
    mllm_run, tmp_path, input_folder, colour_predictor
):
    """The handler travels to worker processes (pickled) and the stage's texts do not depend on batching."""
    output, counters, _ = mllm_run
    with FakeChatServer(answer) as server:
        again = run_job(
            input_folder,
            tmp_path,
            colour_predictor,
            *_mllm_flags(server, "--mllm_batch_size", "3"),
            "--direct_running_mode=multi_processing",
            "--direct_num_workers=2",
        )
    assert again["mllm_kept"] == counters["mllm_kept"]
    first, second = folder_bytes(output), folder_bytes(tmp_path)
    # job.json's information names the server's URL, and this server listens on another port
    assert json.loads(first.pop("job.json"))["generation"] == json.loads(second.pop("job.json"))["generation"]
    assert second == first


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_server_down_at_launch_is_one_line_and_exit_2_before_any_work(
    tmp_path, input_folder, colour_predictor, capsys
):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    argv = [
        "--runner=DirectRunner",
        "--input",
        str(input_folder),
        "--output",
        str(tmp_path / "out"),
        "--predictor",
        str(colour_predictor),
        "--captioner",
        "mllm",
        "--mllm_server",
        url,
        "--mllm_model",
        "tiny",
    ]
    assert run_main(synthesize.PROG, synthesize.cli_main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"cannot reach the caption-model server at {url}" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["missing", "not_a_model"])
def test_a_model_in_process_that_cannot_load_is_one_line_and_exit_2_before_any_work(
    tmp_path, input_folder, colour_predictor, capsys, where
):
    model = tmp_path / "model"
    if where == "not_a_model":
        model.mkdir()
        (model / "weights.txt").write_text("not a model\n")
    argv = [
        "--runner=DirectRunner",
        "--input",
        str(input_folder),
        "--output",
        str(tmp_path / "out"),
        "--predictor",
        str(colour_predictor),
        "--captioner",
        "mllm",
        "--mllm_model",
        str(model),
    ]
    assert run_main(synthesize.PROG, synthesize.cli_main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"cannot load the caption model '{model}'" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--mllm_model", "tiny"], "--mllm_model needs --captioner mllm"),
        (["--mllm_texts", "3"], "--mllm_texts needs --captioner mllm"),
        (["--captioner", "mllm"], "--captioner mllm needs --mllm_model"),
        (
            ["--captioner", "mllm", "--mllm_model", "tiny", "--mllm_timeout", "5"],
            "--mllm_timeout applies to --mllm_server",
        ),
        (["--captioner", "mllm", "--mllm_model", "tiny", "--mllm_server", "ftp://host/v1"], "--mllm_server: "),
        (
            ["--captioner", "mllm", "--mllm_model", "tiny", "--mllm_server", "http://h/v1", "--mllm_texts", "4"],
            "texts per image must be 1 to 3",
        ),
        (
            [
                "--captioner",
                "mllm",
                "--mllm_model",
                "tiny",
                "--mllm_server",
                "http://h/v1",
                "--mllm_min_words",
                "9",
                "--mllm_max_words",
                "8",
            ],
            "min words",
        ),
        (["--captioner", "gpt"], "--captioner"),
    ],
)
def test_flags_that_do_not_go_together_are_one_line_and_exit_2(tmp_path, capsys, colour_predictor, flags, message):
    assert_refused_in_one_line(capsys, tmp_path, colour_predictor, flags, message)


@pytest.mark.skipif(
    _dataflow_unavailable() is not None, reason="Dataflow graph check needs the 'dataflow' extra (apache-beam[gcp])"
)
def test_dataflow_dry_run_with_a_caption_model_server(input_folder):
    """Translated offline: a dry run does not reach the server (only the workers may), and the caption
    model's handler gets the stage's batch size and the job's model sharing."""
    handlers = dataflow_dry_run_handlers(
        input_folder,
        "--captioner",
        "mllm",
        "--mllm_server",
        "http://10.0.0.9:8000/v1",
        "--mllm_model",
        "Qwen/Qwen2-VL-2B-Instruct",
        "--mllm_batch_size",
        "64",
        "--mllm_concurrency",
        "32",
    )
    assert len(handlers) == 2
    captioning = handlers[1]
    assert isinstance(captioning, CaptionModelHandler)
    assert captioning.batch_elements_kwargs() == {"min_batch_size": 64, "max_batch_size": 64}
    assert captioning.share_model_across_processes() and captioning.model_copies() == 4
    assert captioning._model.backend.concurrency == 32


class _Scripted:
    """A text generator answering every request with a text made of its style."""

    def describe(self) -> dict:
        return {"kind": "scripted", "model": "none"}

    def generate(self, requests: list[CaptionRequest]) -> list[GeneratedText]:
        return [GeneratedText(f"A man walks along the pavement in the {r.style_id} manner.") for r in requests]


def test_run_inference_gives_each_record_its_texts_and_keeps_its_other_fields():
    model = CaptionModel(
        Backend("none", "http://127.0.0.1:9/v1"), texts=2, min_confidence=0.5, min_words=5, max_words=60, batch_size=2
    )
    handler = CaptionModelHandler(model, None, seed=7)
    attributes = {
        "gender": {"value": "man", "confidence": 0.9},
        "hair": {"value": "short black hair", "confidence": 0.9},
    }
    records = [{"key": f"k{n}", "identity": "a", "jpg": b"jpeg", "attributes": attributes} for n in range(2)]
    done = handler.run_inference(records, _Scripted())
    assert [r["key"] for r in done] == ["k0", "k1"] and all(r["identity"] == "a" for r in done)
    for record in done:
        assert len(record["captions"]) == 2 and all(s.startswith("mllm:") for s in record["styles"])
        expected = Captioner(load_schema())({"gender": "man", "hair": "short black hair"}, record["key"], 7)
        assert record["prompt_caption"] == [expected[-1].text]
        assert len(record["attribute_spans"]) == 3
        assert record["caption_model"] == "none"


# One job whose server gives every rejection reason of spac.generation.checks and a failure: the kind of an
# answer is a pure function of the request (its seed, and whether its instruction quotes an example sentence).
EXAMPLE_PREFIX, EXAMPLE_SUFFIX = load_instructions(load_schema()).example.split("{example}")
BAD_TEXTS = {  # reason -> what the server answers (the colour predictor's images are a man in a red t-shirt)
    "empty": "   ",
    "markup": MARKUP,
    "too_short": SHORT,
    "too_long": "A man " + "slowly " * 70 + "walks along the street.",
    "repetition": "The man walks by. The man walks by.",
    "gender": GENDER,
    "contradiction": "A man in a blue t-shirt and blue jeans walks by.",
}
SEED_KINDS = ("good", "good", *BAD_TEXTS, "http_4xx")


def _quoted_example(body: dict) -> str | None:
    for line in body["messages"][-1]["content"][-1]["text"].splitlines():
        if line.startswith(EXAMPLE_PREFIX) and line.endswith(EXAMPLE_SUFFIX):
            return line[len(EXAMPLE_PREFIX) : len(line) - len(EXAMPLE_SUFFIX)]
    return None


def _every_reason_kind(body: dict) -> str:
    return "duplicate" if _quoted_example(body) is not None else SEED_KINDS[body["seed"] % len(SEED_KINDS)]


def every_reason_answer(body: dict) -> Reply:
    kind = _every_reason_kind(body)
    if kind == "duplicate":  # the example sentence the instruction quotes, given back word for word
        return text_reply(_quoted_example(body))
    if kind == "http_4xx":
        return Reply(400, b'{"error": "bad request"}')
    if kind == "good":
        return text_reply(f"A man walks along the pavement in picture number {body['seed']}.")
    return text_reply(BAD_TEXTS[kind])


def test_one_job_rejects_every_reason_and_no_rejected_text_reaches_a_shard(tmp_path, input_folder, colour_predictor):
    with FakeChatServer(every_reason_answer) as server:
        counters = run_job(input_folder, tmp_path, colour_predictor, *_mllm_flags(server))
    bodies = [body for _, body in server.requests]
    kinds = [_every_reason_kind(body) for body in bodies]
    report = json.loads((tmp_path / "filter_report.json").read_text())["caption_model"]
    for reason in REASONS:  # each scripted answer rejected for the reason it was written for
        assert counters[f"mllm_rejected_{reason}"] == kinds.count(reason) >= 1, reason
        assert report["counters"][f"mllm_rejected_{reason}"] == counters[f"mllm_rejected_{reason}"]
    assert counters["mllm_failed_http_4xx"] == kinds.count("http_4xx") >= 1
    assert report["counters"] == {name: n for name, n in counters.items() if name.startswith("mllm_")}
    rejected = sum(n for name, n in counters.items() if name.startswith("mllm_rejected_"))
    failed = sum(n for name, n in counters.items() if name.startswith("mllm_failed_"))
    assert counters["mllm_requested"] == len(bodies) == counters["mllm_kept"] + rejected + failed
    assert counters["mllm_kept"] == kinds.count("good") > 0  # a quoted example is never kept
    records = [sample["json"] for sample in iter_samples(str(tmp_path))]
    assert len(records) == counters["written"] == EXPECTED["written"]
    texts = [text for r in records for text in r["captions"] + r["prompt_caption"]]
    # a duplicate repeats a text the image may keep (its library sentence); every other rejected text is nowhere
    assert not set(BAD_TEXTS.values()) & set(texts)
    assert all(len(set(r["captions"] + r["prompt_caption"])) == 3 for r in records)
    assert sum(s.startswith("mllm:") for r in records for s in r["styles"]) == counters["mllm_kept"]
    print("all-reasons job counters:", {name: n for name, n in counters.items() if name.startswith("mllm_")})


def test_styles_restrict_the_style_instructions_as_they_do_the_fallback_captions():
    model = CaptionModel(
        Backend("none", "http://127.0.0.1:9/v1"), texts=2, min_confidence=0.5, min_words=5, max_words=60, batch_size=4
    )
    handler = CaptionModelHandler(model, None, seed=7, styles=["narrative", "dense"])
    attributes = {"gender": {"value": "man", "confidence": 0.9}, "upper": {"value": "red t-shirt", "confidence": 0.9}}
    records = [{"key": f"k{n}", "jpg": b"jpeg", "attributes": attributes} for n in range(8)]
    styles = {style for record in handler.run_inference(records, _Scripted()) for style in record["styles"]}
    assert {"mllm:dense", "mllm:narrative"} <= styles
    assert all(style in ("mllm:dense", "mllm:narrative") or style.startswith("mllm:example:") for style in styles)
