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


def test_a_local_model_is_described_by_its_files_without_loading_it(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    described = Backend(str(tmp_path)).describe()
    assert described["kind"] == "in_process" and list(described["files_sha256"]) == ["config.json"]


def test_a_server_url_it_cannot_use_is_one_line():
    with pytest.raises(InputError, match="must be http"):
        Backend("tiny", "ftp://host/v1").describe()


def test_check_reachable_asks_a_server_and_never_a_local_model(tmp_path):
    Backend(str(tmp_path)).check_reachable()  # nothing to reach: the model is checked when it loads
    with FakeChatServer() as server:
        Backend("tiny", server.base_url).check_reachable()
        assert server.paths == ["/v1/models"]
    with pytest.raises(ServerUnreachableError, match="cannot reach"):
        Backend("tiny", server.base_url, timeout_s=2).check_reachable()
