"""A vision-language model as the attribute predictor: a server asked for schema-constrained JSON (against the
tests' chat server), and a model in process scoring each group's phrases (the tiny random model)."""

from __future__ import annotations

import json

import pytest

from spac.attributes import UNKNOWN, load_schema
from spac.generation.attributes import (
    ANSWER_TOKENS,
    RETURNED_CONFIDENCE,
    SCHEMA_NAME,
    AskedAttributes,
    ServerAttributeAsker,
    describe_asker,
    open_asker,
    read_answer,
    response_format,
    softmax,
)
from spac.generation.backends import Backend
from spac.generation.prompts import load_attribute_prompts
from spac.generation.requests import CaptionRequest
from spac.generation.server import OpenAIServerGenerator
from tests.spac.generation.fake_server import FakeChatServer, Reply, json_answers, scripted, text_reply

SCHEMA = load_schema()
QUESTIONS = load_attribute_prompts(SCHEMA).questions
JPEG = b"\xff\xd8\xff\xe0 a corpus jpeg \xff\xd9"
SEEN = {
    "gender": "woman",
    "hair": "long black hair",
    "upper": "red coat",
    "lower": "blue jeans",
    "shoes": "white sneakers",
    "belongings": UNKNOWN,
}


def _asker(server: FakeChatServer) -> ServerAttributeAsker:
    client = OpenAIServerGenerator(server.base_url, "tiny", timeout_s=2.0, retries=2, backoff_s=0.01)
    return ServerAttributeAsker(client, SCHEMA)


def test_the_scripted_values_are_the_values_in_the_schema():
    for group, phrase in SEEN.items():
        assert phrase in SCHEMA.group(group)


def test_the_request_carries_the_schema_every_group_an_enum_of_its_phrases_and_unknown():
    with FakeChatServer(json_answers(SEEN)) as server:
        [answer] = _asker(server).ask([JPEG])
    assert answer == AskedAttributes(SEEN, {group: RETURNED_CONFIDENCE for group in SEEN})
    [(_headers, body)] = server.requests
    sent = body["response_format"]
    assert (sent["type"], sent["json_schema"]["name"], sent["json_schema"]["strict"]) == (
        "json_schema",
        SCHEMA_NAME,
        True,
    )
    schema = sent["json_schema"]["schema"]
    assert schema["required"] == list(SCHEMA.group_names) and schema["additionalProperties"] is False
    for group in SCHEMA.groups:
        assert schema["properties"][group.name] == {"type": "string", "enum": list(group.labels)}
    assert UNKNOWN in schema["properties"]["gender"]["enum"]
    assert body["messages"][-1]["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({**SEEN, "upper": "purple cape"}, {**SEEN, "upper": UNKNOWN}),  # not a value of its group
        ({**SEEN, "gender": "red coat"}, {**SEEN, "gender": UNKNOWN}),  # another group's value
        ({**SEEN, "shoes": 7}, {**SEEN, "shoes": UNKNOWN}),  # not a string
        ({k: v for k, v in SEEN.items() if k != "hair"}, {**SEEN, "hair": UNKNOWN}),  # missing
        ({**SEEN, "extra": "woman"}, SEEN),  # an unknown key is ignored
    ],
)
def test_an_off_schema_group_is_unknown_with_no_confidence_and_the_others_are_kept(answer, expected):
    read = read_answer(json.dumps(answer), SCHEMA)
    assert read.attributes == expected
    off = {group for group in expected if expected[group] == UNKNOWN and SEEN[group] != UNKNOWN}
    assert set(read.off_schema) == off
    assert {group for group, c in read.confidences.items() if c == 0.0} == off


@pytest.mark.parametrize("text", ["a woman in a red coat", "", "[1, 2]", '"woman"', "null", "{" * 5000, None])
def test_an_answer_that_is_not_a_json_object_makes_every_group_unknown(text):
    read = read_answer(text, SCHEMA)
    assert read.attributes == dict.fromkeys(SCHEMA.group_names, UNKNOWN)
    assert read.off_schema == SCHEMA.group_names


def test_hostile_server_answers_never_invent_a_value():
    replies = scripted(text_reply("I think it is a woman."), text_reply({"gender": "woman"}), text_reply(None))
    with FakeChatServer(replies) as server:
        answers = _asker(server).ask([JPEG])
        answers += _asker(server).ask([JPEG])
        answers += _asker(server).ask([JPEG])
    assert [a.attributes for a in answers] == [dict.fromkeys(SCHEMA.group_names, UNKNOWN)] * 3
    # a message content that is not text is the client's bad_response (retried, then a failure)
    assert [a.failure for a in answers] == [None, "bad_response", "bad_response"]


def test_a_5xx_then_an_answer_is_the_answer():
    replies = scripted(Reply(503, b"busy"), Reply(502, b"busy"), text_reply(json.dumps(SEEN)))
    with FakeChatServer(replies) as server:
        [answer] = _asker(server).ask([JPEG])
    assert answer.attributes == SEEN and answer.failure is None
    assert len(server.requests) == 3


def test_a_server_that_keeps_failing_gives_unknown_and_the_failure_kind():
    with FakeChatServer(scripted(Reply(500, b"down"))) as server:
        [answer] = _asker(server).ask([JPEG])
    assert answer.attributes == dict.fromkeys(SCHEMA.group_names, UNKNOWN)
    assert answer.failure == "http_5xx" and set(answer.confidences.values()) == {0.0}


def test_the_response_format_is_json_ready_and_lists_each_phrase_once():
    sent = json.loads(json.dumps(response_format(SCHEMA)))
    for group in SCHEMA.groups:
        enum = sent["json_schema"]["schema"]["properties"][group.name]["enum"]
        assert len(enum) == len(set(enum)) == len(group.values) + 1


def test_softmax_sums_to_one_and_keeps_the_order():
    probabilities = softmax([-1.0, -3.0, -0.5, -1000.0])
    assert sum(probabilities) == pytest.approx(1.0)
    assert max(range(4), key=probabilities.__getitem__) == 2 and probabilities[3] == pytest.approx(0.0)


# The in-process path: a tiny random model scores each group's phrases.


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    pytest.importorskip("torch")
    from tests.spac.generation.tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm"))


def _photo(colour: str) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (24, 48), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def _scorer(folder, batch_size: int = 8):
    from spac.generation.in_process import InProcessGenerator

    return InProcessGenerator(str(folder), "cpu", batch_size=batch_size)


def test_a_phrase_score_does_not_depend_on_the_batch_or_its_padding(tiny_model):
    phrases = ["man", "long black hair", "a pair of blue jeans", "woman", "red coat"]  # 1 to 5 words: padded
    batched = _scorer(tiny_model, batch_size=8).phrase_scores(_photo("red"), QUESTIONS["hair"], phrases)
    alone = _scorer(tiny_model, batch_size=1).phrase_scores(_photo("red"), QUESTIONS["hair"], phrases)
    assert batched == pytest.approx(alone, abs=1e-4)
    assert len(set(batched)) == len(phrases)  # a random model still tells them apart
    assert all(score < 0 for score in batched)  # mean log-probabilities


def _full_sequence_score(generator, jpeg: bytes, question: str, phrase: str) -> float:
    """The reference: the mean log-probability of the phrase's tokens, the prompt and phrase read as one."""
    import torch

    from spac.generation.in_process import _decode, _messages

    image = _decode(jpeg)
    request = CaptionRequest("", jpeg, "", question, "attributes")
    prompt = generator._processor.apply_chat_template(_messages(request), add_generation_prompt=True)
    whole = generator._processor(text=[f"{prompt} {phrase}"], images=[[image]], return_tensors="pt")
    prompt_length = generator._processor(text=[prompt], images=[[image]], return_tensors="pt")["input_ids"].shape[1]
    with torch.inference_mode():
        log_probs = torch.log_softmax(generator._model(**whole).logits[0, :-1].float(), dim=-1)
    targets = whole["input_ids"][0, 1:]
    token_scores = log_probs.gather(-1, targets[:, None])[:, 0][prompt_length - 1 :]
    return token_scores.mean().item()


def test_a_phrase_score_is_its_tokens_mean_log_probability_after_the_prompt(tiny_model):
    generator, jpeg = _scorer(tiny_model, batch_size=3), _photo("red")
    phrases = ["man", "long black hair", "a pair of blue jeans", "woman", "red coat"]
    scores = generator.phrase_scores(jpeg, QUESTIONS["upper"], phrases)
    reference = [_full_sequence_score(generator, jpeg, QUESTIONS["upper"], phrase) for phrase in phrases]
    assert scores == pytest.approx(reference, abs=1e-4)


def test_the_likelihood_asker_gives_a_distribution_per_group_and_its_top_value(tiny_model):
    backend = Backend(str(tiny_model), batch_size=64)
    asker = open_asker(backend, schema=SCHEMA)
    assert asker.describe()["asked"] == "likelihood" and asker.describe() == describe_asker(backend)
    jpeg = _photo("blue")
    distributions = asker.distributions(jpeg)
    assert distributions == asker.distributions(jpeg)  # deterministic
    for group in SCHEMA.groups:
        probabilities = distributions[group.name]
        assert list(probabilities) == [value.phrase for value in group.values]  # every candidate, no unknown
        assert sum(probabilities.values()) == pytest.approx(1.0)
    [answer] = asker.ask([jpeg])
    for group, probabilities in distributions.items():
        top = max(probabilities, key=probabilities.get)
        assert (answer.attributes[group], answer.confidences[group]) == (top, probabilities[top])


def test_below_the_min_confidence_a_group_is_unknown_and_keeps_its_confidence(tiny_model):
    scorer = _scorer(tiny_model, batch_size=64)
    sure, strict = (
        open_asker(Backend(str(tiny_model)), threshold, SCHEMA, loaded=scorer) for threshold in (0.0, 0.999)
    )
    [kept] = sure.ask([_photo("green")])
    [refused] = strict.ask([_photo("green")])
    assert UNKNOWN not in kept.attributes.values()
    assert refused.attributes == dict.fromkeys(SCHEMA.group_names, UNKNOWN)  # 57+ candidates: none that sure
    assert refused.confidences == kept.confidences


def test_an_image_that_does_not_decode_is_unknown_everywhere(tiny_model):
    [answer] = open_asker(Backend(str(tiny_model)), 0.0, SCHEMA, loaded=_scorer(tiny_model)).ask([b"not a jpeg"])
    assert answer.attributes == dict.fromkeys(SCHEMA.group_names, UNKNOWN) and answer.failure == "error"


def test_a_server_backend_is_asked_with_room_for_the_whole_answer_and_described_as_it_is_asked():
    with FakeChatServer(json_answers(SEEN)) as server:
        backend = Backend("tiny", server.base_url)
        asker = open_asker(backend, schema=SCHEMA)
        [answer] = asker.ask([JPEG])
    assert answer.attributes == SEEN
    [(_headers, body)] = server.requests
    assert body["max_tokens"] == ANSWER_TOKENS > backend.decoding.max_new_tokens
    assert asker.describe() == describe_asker(backend)  # job.json says what the workers do
    assert describe_asker(backend)["generator"]["decoding"]["max_new_tokens"] == ANSWER_TOKENS
