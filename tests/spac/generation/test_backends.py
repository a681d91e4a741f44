"""Backend: the caption model chosen as plain settings, described for job.json without loading a model."""

from __future__ import annotations

import pickle

import pytest

from common.errors import InputError
from spac.generation.backends import Backend
from spac.generation.requests import DecodingSettings
from spac.generation.server import OpenAIServerGenerator, ServerUnreachableError
from tests.spac.generation.fake_server import FakeChatServer


def test_a_server_backend_describes_the_server_and_opens_its_client():
    backend = Backend("tiny", "http://127.0.0.1:9/v1/", decoding=DecodingSettings(temperature=0.7, seed=3))
    assert backend.describe() == {
        "kind": "server",
        "model": "tiny",
        "decoding": {"max_new_tokens": 96, "temperature": 0.7, "seed": 3},
    }
    client = backend.open()
    assert isinstance(client, OpenAIServerGenerator) and client.describe() == backend.describe()
    assert client.base_url == "http://127.0.0.1:9/v1"
    assert pickle.loads(pickle.dumps(backend)) == backend  # a Beam handler carries it to the workers


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    from tests.spac.generation.tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm"))


def test_a_model_in_process_is_checked_at_launch_without_its_weights(tiny_vlm, tmp_path):
    (tiny_vlm.parent / "copy").mkdir()
    for path in tiny_vlm.iterdir():  # the weights left out: the launch check reads config and processor only
        if not path.name.endswith(".safetensors"):
            (tiny_vlm.parent / "copy" / path.name).write_bytes(path.read_bytes())
    Backend(str(tiny_vlm.parent / "copy")).check_reachable()
    (tmp_path / "notes.txt").write_text("not a model\n")
    missing = tmp_path / "no" / "such" / "model"
    for where in (missing, tmp_path):
        with pytest.raises(InputError, match="cannot load the caption model") as caught:
            Backend(str(where)).check_reachable()
        assert "\n" not in str(caught.value)
    Backend(str(missing)).check_reachable(loaded_here=False)  # remote workers may hold a folder this machine lacks
    with pytest.raises(InputError, match="cannot load the caption model"):
        Backend(str(tmp_path)).check_reachable(loaded_here=False)  # a folder here is theirs too: still checked


def test_a_model_that_reads_no_images_is_refused_at_launch(tiny_vlm, tmp_path):
    import json

    config = json.loads((tiny_vlm / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config["text_config"] | {"model_type": "llama"}))
    for path in tiny_vlm.iterdir():
        if path.name != "config.json" and path.is_file():
            (tmp_path / path.name).write_bytes(path.read_bytes())
    with pytest.raises(InputError, match="reads no images"):
        Backend(str(tmp_path)).check_reachable()


def test_a_local_model_is_described_by_its_files_without_loading_it(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    described = Backend(str(tmp_path)).describe()
    assert described["kind"] == "in_process" and list(described["files_sha256"]) == ["config.json"]


def test_a_server_url_it_cannot_use_is_one_line():
    with pytest.raises(InputError, match="must be http"):
        Backend("tiny", "ftp://host/v1").describe()


def test_check_reachable_asks_a_server_only_its_model_list(tmp_path):
    with FakeChatServer() as server:
        Backend("tiny", server.base_url).check_reachable()
        assert server.paths == ["/v1/models"]
    with pytest.raises(ServerUnreachableError, match="cannot reach"):
        Backend("tiny", server.base_url, timeout_s=2).check_reachable()
