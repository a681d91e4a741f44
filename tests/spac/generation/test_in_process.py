"""The in-process backend on a tiny random vision-language model built offline by the test (tiny_vlm.py)."""

from __future__ import annotations

import io
import shutil

import pytest
from PIL import Image

from common.digests import file_sha256
from common.errors import InputError
from spac.generation.in_process import CaptionModelError, InProcessGenerator, describe_model
from spac.generation.requests import CaptionRequest, DecodingSettings, GeneratedText
from spac.generation.server import OpenAIServerGenerator
from tests.spac.generation.fake_server import FakeChatServer, served_by
from tests.spac.generation.tiny_vlm import build_tiny_vlm

GREEDY = DecodingSettings(max_new_tokens=6)
SAMPLED = DecodingSettings(max_new_tokens=6, temperature=1.5, seed=7)


def _jpeg(colour: str, size: tuple[int, int] = (24, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def _request(key: str, colour: str, words: int, style: str = "dense") -> CaptionRequest:
    return CaptionRequest(
        key=key,
        image_jpeg=_jpeg(colour),
        system="describe the person",
        instruction=" ".join(["a man wearing a red shirt"] * words),
        style_id=style,
    )


REQUESTS = [_request("k0", "red", 1), _request("k1", "blue", 4), _request("k2", "green", 9, style="example:3")]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm"))


@pytest.fixture(scope="module")
def greedy(model_dir):
    return InProcessGenerator(str(model_dir), device="cpu", decoding=GREEDY, batch_size=4)


def test_a_batch_of_requests_of_different_lengths_gets_one_text_each(greedy):
    answers = greedy.generate(REQUESTS)
    assert len(answers) == 3
    assert all(a.failure is None and isinstance(a.text, str) and a.text for a in answers), answers
    assert greedy._processor.tokenizer.padding_side == "left"


def test_greedy_is_deterministic_and_independent_of_the_batch(model_dir, greedy):
    batched = greedy.generate(REQUESTS)
    assert len({a.text for a in batched}) == 3  # the model tells the requests apart, so the batch could matter
    assert greedy.generate(REQUESTS) == batched
    one_at_a_time = InProcessGenerator(str(model_dir), device="cpu", decoding=GREEDY, batch_size=1)
    assert one_at_a_time.generate(REQUESTS) == batched
    assert greedy.generate(REQUESTS[::-1]) == batched[::-1]


def test_seeded_sampling_repeats_and_does_not_depend_on_the_batch(model_dir):
    sampler = InProcessGenerator(str(model_dir), device="cpu", decoding=SAMPLED, batch_size=4)
    batched = sampler.generate(REQUESTS)
    assert sampler.generate(REQUESTS) == batched
    assert sampler.generate(REQUESTS[::-1]) == batched[::-1]
    assert sampler.generate(REQUESTS[1:2]) == batched[1:2]
    other_seed = InProcessGenerator(
        str(model_dir), device="cpu", batch_size=4, decoding=DecodingSettings(max_new_tokens=6, temperature=1.5, seed=8)
    )
    assert other_seed.generate(REQUESTS) != batched


def test_the_server_backend_through_a_server_running_the_model_gives_the_same_texts(greedy):
    with FakeChatServer(served_by(greedy)) as server:
        through_server = OpenAIServerGenerator(server.base_url, "tiny", decoding=GREEDY, concurrency=3, retries=0)
        assert through_server.generate(REQUESTS) == greedy.generate(REQUESTS)
    asked = sorted(body["messages"][-1]["content"][-1]["text"] for _headers, body in server.requests)
    assert asked == sorted(r.instruction for r in REQUESTS)  # each request once, no retry


def test_an_image_that_does_not_decode_fails_alone(greedy):
    broken = CaptionRequest("bad", b"not a jpeg", "describe the person", "a man", "dense")
    answers = greedy.generate([REQUESTS[0], broken, REQUESTS[1]])
    assert answers[1] == GeneratedText(None, failure="error")
    assert [answers[0], answers[2]] == greedy.generate([REQUESTS[0], REQUESTS[1]])


def test_a_batch_whose_generation_raises_fails_as_a_batch_and_the_next_batch_is_answered(greedy, monkeypatch, caplog):
    real_generate = greedy._model.generate
    calls = []

    def out_of_memory_once(**inputs):
        calls.append(inputs)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore advice")
        return real_generate(**inputs)

    monkeypatch.setattr(greedy._model, "generate", out_of_memory_once)
    requests = REQUESTS * 2  # batch_size 4: a failed batch of 4, then a batch of 2
    answers = greedy.generate(requests)
    assert answers[:4] == [GeneratedText(None, failure="error")] * 4
    assert all(a.text for a in answers[4:])
    assert "CUDA out of memory. Tried to allocate 2.00 GiB" in caplog.text and "more advice" not in caplog.text


def test_describe_has_the_model_files_by_sha256(model_dir, greedy):
    described = greedy.describe()
    assert described["kind"] == "in_process" and described["model"] == str(model_dir)
    assert described["decoding"] == {"max_new_tokens": 6, "temperature": 0.0, "seed": 0}
    files = described["files_sha256"]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    assert files["model.safetensors"] == file_sha256(model_dir / "model.safetensors")


def test_describe_changes_with_the_weights_and_leaves_out_hidden_files(model_dir, tmp_path):
    copy = shutil.copytree(model_dir, tmp_path / "copy")
    (copy / ".cache").mkdir()
    (copy / ".cache" / "download.lock").write_text("bookkeeping")
    assert describe_model(str(copy), GREEDY)["files_sha256"] == describe_model(str(model_dir), GREEDY)["files_sha256"]
    build_tiny_vlm(copy, seed=1)
    changed = describe_model(str(copy), GREEDY)["files_sha256"]
    assert changed["model.safetensors"] != file_sha256(model_dir / "model.safetensors")


def test_a_hub_name_is_described_by_name_only():
    assert describe_model("HuggingFaceTB/SmolVLM-256M-Instruct", GREEDY) == {
        "kind": "in_process",
        "model": "HuggingFaceTB/SmolVLM-256M-Instruct",
        "decoding": {"max_new_tokens": 6, "temperature": 0.0, "seed": 0},
    }


def test_a_folder_that_is_not_a_model_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CaptionModelError) as caught:
        InProcessGenerator(str(tmp_path), device="cpu")
    assert isinstance(caught.value, InputError)
    assert str(caught.value).startswith(f"cannot load the caption model {str(tmp_path)!r}: ")
    assert "\n" not in str(caught.value)
