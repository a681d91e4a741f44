"""The synthesis job with --predictor mllm against the tests' chat server: the attributes in the shards are the
ones the server answered (off-schema ones unknown, counted), job.json records how they were asked, flags that do
not go together are one line and exit 2."""

from __future__ import annotations

import base64
import io
import json
import tarfile

import pytest
from PIL import Image, ImageStat

from common.cli import run_main
from pipelines import synthesize
from pipelines.synthesis.attribute_model import AttributeModelHandler
from shards import iter_samples
from spac.attributes import UNKNOWN
from tests.pipelines.conftest import EXPECTED, run_job
from tests.pipelines.test_synthesize import _dataflow_unavailable, dataflow_dry_run_handlers
from tests.spac.generation.fake_server import FakeChatServer, json_answers

SEEN = {
    "gender": "woman",
    "hair": "long black hair",
    "upper": "red coat",
    "lower": "blue jeans",
    "shoes": "white sneakers",
    "belongings": UNKNOWN,
}


def _off_schema(jpeg: bytes) -> bool:
    """The green people's answers are off the schema (the input folder has red and green people)."""
    with Image.open(io.BytesIO(jpeg)) as image:
        red, green, _ = ImageStat.Stat(image.convert("RGB")).mean
    return green > red


def _jpeg_of(body: dict) -> bytes:
    url = body["messages"][-1]["content"][0]["image_url"]["url"]
    return base64.b64decode(url.removeprefix("data:image/jpeg;base64,"))


def _jpegs(output) -> list[tuple[str, bytes]]:
    """(key, the JPEG bytes as stored) of every sample in the shards."""
    pairs = []
    for shard in sorted(output.rglob("*.tar")):
        with tarfile.open(shard) as tar:
            pairs += [(m.name.removesuffix(".jpg"), tar.extractfile(m).read()) for m in tar if m.name.endswith(".jpg")]
    return pairs


def answer(body: dict) -> dict:
    return {**SEEN, "shoes": "glass slippers"} if _off_schema(_jpeg_of(body)) else SEEN


@pytest.fixture(scope="module")
def asked_run(tmp_path_factory, input_folder):
    output = tmp_path_factory.mktemp("mllm_attributes")
    with FakeChatServer(json_answers(answer)) as server:
        counters = run_job(
            input_folder, output, "mllm", "--mllm_server", server.base_url, "--mllm_model", "tiny",
            "--mllm_batch_size", "4",
        )  # fmt: skip
    return output, counters, [body for _, body in server.requests], server.base_url


def test_the_shards_carry_the_attributes_the_server_answered(asked_run):
    output, counters, requests, _ = asked_run
    assert counters["decoded"] == EXPECTED["decoded"] == len(requests)  # every decoded image asked once
    assert all("response_format" in body for body in requests)  # the captions stay the templates'
    records = {sample["__key__"]: sample["json"] for sample in iter_samples(str(output))}
    assert records and len(records) == counters["written"]
    values = {key: {g: e["value"] for g, e in r["attributes"].items()} for key, r in records.items()}
    assert {v["gender"] for v in values.values()} == {"woman"}  # the scripted value, not the demo model's "man"
    # each sample's own answer: unknown shoes exactly where its image's answer was off the schema
    expected = {key: {**SEEN, "shoes": UNKNOWN} if _off_schema(jpeg) else SEEN for key, jpeg in _jpegs(output)}
    assert values == expected
    assert {v["shoes"] for v in values.values()} == {"white sneakers", UNKNOWN}  # both kinds reached a shard
    for record in records.values():
        for group, entry in record["attributes"].items():
            assert entry["confidence"] == (0.0 if entry["value"] == UNKNOWN and SEEN[group] != UNKNOWN else 1.0)
    assert counters["mllm_attributes_off_schema"] == sum(_off_schema(_jpeg_of(body)) for body in requests) > 0


def test_job_json_records_the_model_and_how_it_was_asked(asked_run):
    output, _, _, base_url = asked_run
    fingerprint = json.loads((output / "job.json").read_text())
    text = json.dumps(fingerprint)
    model = fingerprint["attribute_model"]
    assert model["asked"] == "json_schema" and model["prompts_version"] >= 1
    assert list(model["prompt_files_sha256"]) == ["templates/prompts/attributes.yaml"]  # the questions asked
    assert model["generator"] == {"kind": "server", "model": "tiny", "decoding": model["generator"]["decoding"]}
    assert fingerprint["information"] == {"mllm_server": base_url}
    assert "generator" not in fingerprint  # no caption model: the captions are the templates'
    assert "mllm" in text


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--predictor", "mllm"], "--predictor mllm needs --mllm_model"),
        (["--predictor", "mllm", "--mllm_model", "tiny", "--mllm_texts", "2"], "--mllm_texts needs --captioner mllm"),
        (
            ["--predictor", "mllm", "--mllm_model", "tiny", "--identity_cleaning", "on"],
            "--identity_cleaning needs a trained --predictor",
        ),
    ],
)
def test_flags_that_do_not_go_together_are_one_line_and_exit_2(tmp_path, capsys, flags, message):
    argv = ["--runner=DirectRunner", "--input", str(tmp_path), "--output", str(tmp_path / "out"), *flags]
    assert run_main(synthesize.PROG, synthesize.cli_main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err


@pytest.mark.slow  # ~20 s on a loaded machine: a model loaded in the worker, 425 phrases scored per image
def test_a_model_in_process_gives_the_attributes_of_a_small_run(tmp_path, input_folder):
    pytest.importorskip("torch")
    from tests.spac.generation.tiny_vlm import build_tiny_vlm

    model = build_tiny_vlm(tmp_path / "model")
    flags = ("--mllm_model", str(model), "--mllm_batch_size", "4", "--min_images", "1", "--limit", "6")
    counters = run_job(input_folder, tmp_path / "out", "mllm", *flags)
    records = [sample["json"] for sample in iter_samples(str(tmp_path / "out"))]
    assert len(records) == counters["written"] > 0
    for record in records:
        assert all(0 < entry["confidence"] <= 1 for entry in record["attributes"].values())
        assert {entry["value"] for entry in record["attributes"].values()} != {UNKNOWN}  # no threshold in the job
    asked = json.loads((tmp_path / "out" / "job.json").read_text())["attribute_model"]
    assert asked["asked"] == "likelihood" and "model.safetensors" in asked["generator"]["files_sha256"]


@pytest.mark.skipif(
    _dataflow_unavailable() is not None, reason="Dataflow graph check needs the 'dataflow' extra (apache-beam[gcp])"
)
def test_dataflow_dry_run_with_the_attribute_model_server(input_folder):
    """Translated offline (the server is not reached): the predictor's RunInference holds our handler, with the
    --mllm_batch_size batches and the job's model sharing."""
    handlers = dataflow_dry_run_handlers(
        input_folder, "--predictor", "mllm", "--mllm_server", "http://10.0.0.9:8000/v1", "--mllm_model",
        "Qwen/Qwen2-VL-2B-Instruct", "--mllm_batch_size", "32",
    )  # fmt: skip
    [keyed] = handlers  # template captions: one RunInference
    batching = keyed.batch_elements_kwargs()
    assert (batching["min_batch_size"], batching["max_batch_size"]) == (32, 32)
    assert keyed.share_model_across_processes()
    assert isinstance(keyed._unkeyed, AttributeModelHandler)  # Beam's KeyedModelHandler keeps it there
