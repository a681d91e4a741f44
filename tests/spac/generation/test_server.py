"""The OpenAI-compatible server backend against a real HTTP server of ours (tests/spac/generation/fake_server.py)."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time

import pytest

from common.errors import InputError
from spac.generation.requests import CaptionRequest, DecodingSettings, GeneratedText
from spac.generation.server import MAX_ANSWER_BYTES, OpenAIServerGenerator, ServerUnreachableError, request_seed
from tests.spac.generation.fake_server import FakeChatServer, Reply, scripted, text_reply

JPEG = b"\xff\xd8\xff\xe0 a corpus jpeg \xff\xd9"
KEY_ENV = "SPAC_TEST_MLLM_KEY"
SECRET = "sk-test-secret-0123456789"


def _request(key: str = "p0001_c1_0001", instruction: str = "Describe the person.") -> CaptionRequest:
    return CaptionRequest(
        key=key, image_jpeg=JPEG, system="You describe pedestrians.", instruction=instruction, style_id="dense"
    )


def _generator(server: FakeChatServer, **overrides) -> OpenAIServerGenerator:
    settings = {
        "timeout_s": 2.0,
        "concurrency": 4,
        "retries": 2,
        "backoff_s": 0.01,
        "api_key_env": KEY_ENV,
        **overrides,
    }
    return OpenAIServerGenerator(server.base_url, "tiny", **settings)


def _dead_port_url() -> str:
    with socket.socket() as probe:  # a port that was free a moment ago, with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_a_normal_answer_and_the_request_it_answers():
    decoding = DecodingSettings(max_new_tokens=40, temperature=0.7, seed=3)
    with FakeChatServer(scripted(text_reply(" A woman in a red coat.\n"))) as server:
        [answer] = _generator(server, decoding=decoding).generate([_request()])
    assert answer == GeneratedText("A woman in a red coat.")
    [(_headers, body)] = server.requests
    system, user = body["messages"]
    assert system == {"role": "system", "content": "You describe pedestrians."}
    image, text = user["content"]
    assert image["image_url"]["url"] == "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
    assert text == {"type": "text", "text": "Describe the person."}
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("tiny", 40, 0.7)
    assert body["seed"] == request_seed(decoding, _request())


def test_answers_keep_the_order_of_the_requests_with_several_in_flight():
    requests = [_request(f"k{i}", f"text {i}") for i in range(12)]
    with FakeChatServer() as server:  # echoes each request's instruction
        answers = _generator(server, concurrency=6).generate(requests)
    assert [a.text for a in answers] == [f"echo: text {i}" for i in range(12)]
    assert len(server.requests) == 12


def test_the_seed_depends_on_the_run_seed_key_and_style_only():
    decoding = DecodingSettings(temperature=1.0, seed=5)
    same = CaptionRequest("k", b"other image", "other system", "other text", "dense")
    assert request_seed(decoding, _request("k")) == request_seed(decoding, same)
    assert request_seed(decoding, _request("k")) != request_seed(DecodingSettings(seed=6), _request("k"))
    assert request_seed(decoding, _request("k")) != request_seed(decoding, _request("k2"))


def test_a_5xx_is_retried_then_answered():
    replies = scripted(Reply(503, b"busy"), Reply(500, b"oops"), text_reply("A man with a bag."))
    with FakeChatServer(replies) as server:
        [answer] = _generator(server, retries=2).generate([_request()])
    assert answer == GeneratedText("A man with a bag.")
    assert len(server.requests) == 3


def test_a_5xx_that_persists_becomes_a_failure_after_the_retries():
    with FakeChatServer(scripted(Reply(502, b"bad gateway"))) as server:
        [answer] = _generator(server, retries=2).generate([_request()])
    assert answer == GeneratedText(None, failure="http_5xx")
    assert len(server.requests) == 3


def test_a_4xx_is_not_retried():
    with FakeChatServer(scripted(Reply(400, b'{"error": "bad model"}'), text_reply("never asked"))) as server:
        [answer] = _generator(server, retries=3).generate([_request()])
    assert answer == GeneratedText(None, failure="http_4xx")
    assert len(server.requests) == 1


def test_a_429_says_not_now_and_is_retried():
    with FakeChatServer(scripted(Reply(429, b"slow down"), text_reply("A child."))) as server:
        assert _generator(server).generate([_request()]) == [GeneratedText("A child.")]


def test_a_hang_past_the_timeout_is_a_timeout_failure_in_bounded_time():
    with FakeChatServer(scripted(Reply(hang_s=30.0))) as server:
        start = time.monotonic()
        [answer] = _generator(server, timeout_s=0.3, retries=1).generate([_request()])
        elapsed = time.monotonic() - start
    assert answer == GeneratedText(None, failure="timeout")
    assert len(server.requests) == 2
    assert elapsed < 3.0


def test_an_answer_trickling_in_slower_than_the_timeout_is_a_timeout_failure():
    with FakeChatServer(scripted(Reply(body=text_reply("A man.").body, trickle_s=0.05))) as server:
        start = time.monotonic()
        [answer] = _generator(server, timeout_s=0.5, retries=1).generate([_request()])
        elapsed = time.monotonic() - start
    assert answer == GeneratedText(None, failure="timeout")
    assert elapsed < 3.0


def test_a_connection_closed_without_an_answer_is_retried_then_answered():
    with FakeChatServer(scripted(Reply(close=True), text_reply("A cyclist."))) as server:
        assert _generator(server).generate([_request()]) == [GeneratedText("A cyclist.")]


def test_a_refused_connection_is_a_refused_failure():
    generator = OpenAIServerGenerator(_dead_port_url(), "tiny", retries=1, backoff_s=0.01, timeout_s=2.0)
    assert generator.generate([_request(), _request("k2")]) == [GeneratedText(None, failure="refused")] * 2


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=b"<html>not json</html>"),
        Reply(body=b"\xff\xfe\x00garbage"),
        Reply(body=b"[" * 100_000),  # nesting deep enough to exhaust the parser
        Reply(body=b'{"choices": []}'),
        Reply(body=b'{"choices": "many"}'),
        Reply(body=b'{"object": "chat.completion"}'),
        Reply(body=b'{"choices": [{"message": null}]}'),
        Reply(body=b"[1, 2, 3]"),
        text_reply(None),
        text_reply(42),
        text_reply([{"type": "text", "text": "parts"}]),
        text_reply({"text": "an object"}),
        Reply(body=b" " * (50 * (1 << 20))),  # 50 MB: read no further than the cap
    ],
    ids=[
        "html",
        "not-utf8",
        "deep",
        "no-choices",
        "choices-str",
        "no-choices-key",
        "null-message",
        "list",
        "null-content",
        "int-content",
        "parts-content",
        "object-content",
        "50MB",
    ],
)
def test_a_hostile_answer_is_a_bad_response_never_a_crash(reply):
    with FakeChatServer(scripted(reply)) as server:
        start = time.monotonic()
        [answer] = _generator(server, retries=1).generate([_request()])
    assert answer == GeneratedText(None, failure="bad_response")
    assert len(server.requests) == 2  # a malformed answer is worth one more try
    assert time.monotonic() - start < 5.0


def test_an_answer_just_under_the_cap_is_read():
    text = "x" * (MAX_ANSWER_BYTES - 500)
    with FakeChatServer(scripted(text_reply(text))) as server:
        assert _generator(server).generate([_request()]) == [GeneratedText(text)]


def test_the_api_key_goes_in_the_header_and_nowhere_else(monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeChatServer(scripted(Reply(401, b"who are you"))) as server, caplog.at_level(logging.WARNING):
        generator = _generator(server)
        assert generator.generate([_request()]) == [GeneratedText(None, failure="http_4xx")]
    [(headers, _body)] = server.requests
    assert headers["Authorization"] == f"Bearer {SECRET}"
    assert "http_4xx" in caplog.text and SECRET not in caplog.text
    assert SECRET not in json.dumps(generator.describe()) and SECRET not in repr(generator)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_never_followed_so_the_key_stays_with_the_server_it_was_meant_for(monkeypatch, status):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeChatServer() as elsewhere:
        redirect = Reply(status, b"moved", headers=(("Location", elsewhere.base_url + "/models"),))
        with FakeChatServer(scripted(redirect), models_reply=redirect) as server:
            assert _generator(server).generate([_request()]) == [GeneratedText(None, failure="bad_response")]
            with pytest.raises(ServerUnreachableError, match=f"HTTP {status}"):
                _generator(server).check_reachable()
    assert server.paths == ["/v1/chat/completions", "/v1/models"] and elsewhere.paths == []


def test_a_4xx_explanation_is_logged_in_one_line(caplog):
    explanation = b'{"message": "The model `tiny` does not exist.",\n "code": 404}'
    with FakeChatServer(scripted(Reply(404, explanation))) as server:
        _generator(server).generate([_request(), _request("k2")])
    [record] = caplog.records  # the first failure of a kind only
    said = '{"message": "The model `tiny` does not exist.", "code": 404}'
    assert record.getMessage().endswith(f"(http_4xx): HTTP 404 Not Found: {said}")


def test_no_key_in_the_environment_sends_no_authorization(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with FakeChatServer() as server:
        _generator(server).generate([_request()])
    assert "Authorization" not in server.requests[0][0]


def test_describe_says_what_decides_the_texts():
    generator = OpenAIServerGenerator(
        "http://gpu-box:8000/v1/",
        "HuggingFaceTB/SmolVLM-256M-Instruct",
        decoding=DecodingSettings(max_new_tokens=64, temperature=0.0, seed=1),
    )
    assert generator.describe() == {
        "kind": "server",
        "model": "HuggingFaceTB/SmolVLM-256M-Instruct",
        "decoding": {"max_new_tokens": 64, "temperature": 0.0, "seed": 1},
    }


def test_check_reachable_lists_the_served_models(caplog):
    with FakeChatServer(models=("tiny", "other")) as server, caplog.at_level(logging.WARNING):
        assert _generator(server).check_reachable() == ["tiny", "other"]
        assert caplog.text == ""
        OpenAIServerGenerator(server.base_url, "absent").check_reachable()
    assert "does not list model 'absent'" in caplog.text


def test_check_reachable_on_a_dead_port_is_one_line_naming_the_url_never_the_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    url = _dead_port_url()
    with pytest.raises(ServerUnreachableError) as caught:
        OpenAIServerGenerator(url, "tiny", api_key_env=KEY_ENV, timeout_s=2.0).check_reachable()
    message = str(caught.value)
    assert isinstance(caught.value, InputError)
    assert message.startswith(f"cannot reach the caption-model server at {url}: ")
    assert "\n" not in message and SECRET not in message


def test_check_reachable_refuses_a_server_that_is_not_an_openai_server():
    with FakeChatServer() as server, pytest.raises(ServerUnreachableError, match="HTTP 404"):
        OpenAIServerGenerator(server.base_url.removesuffix("/v1") + "/v2", "tiny").check_reachable()


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=b"not json"),
        Reply(body=b'{"data": "tiny"}'),
        Reply(body=b"[1]"),
        Reply(body=b'{"data": [1, 2]}'),
        Reply(body=b"{}"),
    ],
)
def test_check_reachable_refuses_an_answer_that_is_not_a_model_list(reply):
    with FakeChatServer(models_reply=reply) as server, pytest.raises(ServerUnreachableError) as caught:
        _generator(server).check_reachable()
    assert str(caught.value).startswith(f"cannot reach the caption-model server at {server.base_url}: ")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "url, reason",
    [
        ("ftp://host/v1", "http"),
        ("localhost:8000", "http"),
        ("http://user:sk-secret@host/v1", "credentials"),
        ("http://host/v1?key=sk-secret", "query"),
    ],
)
def test_a_bad_server_url_is_one_line(url, reason):
    with pytest.raises(InputError, match=reason) as caught:
        OpenAIServerGenerator(url, "tiny")
    assert "sk-secret" not in str(caught.value)
