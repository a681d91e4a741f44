"""generate_checked over a scripted TextGenerator: kept texts, every rejection reason and failure kind, the
retry in another style, the template caption as fallback, distinct texts with the library sentence last,
determinism, counters that add up, and the attribute spans of what is kept."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from common.errors import InputError
from spac import language
from spac.attributes import UNKNOWN, load_schema
from spac.captioning.captioner import TEMPLATE_STYLE, Captioner
from spac.generation.checks import REASONS
from spac.generation.grounding import GivenAttributes
from spac.generation.requests import CaptionRequest, GeneratedText
from spac.generation.stage import (
    CaptionItem,
    CaptionOutcome,
    GenerationSettings,
    caption_item,
    generate_checked,
    prompt_book,
    total_counters,
)

SCHEMA = load_schema()
CAPTIONER = Captioner(SCHEMA)
SETTINGS = GenerationSettings(prompt_book(CAPTIONER), schema=SCHEMA)
MAN = GivenAttributes(
    {
        "gender": "man",
        "hair": "short black hair",
        "upper": "red t-shirt",
        "lower": "blue jeans",
        "shoes": "white sneakers",
        "belongings": "black backpack",
    },
    {},
)
WOMAN = GivenAttributes(
    {
        "gender": "woman",
        "hair": "long brown hair",
        "upper": "white blouse",
        "lower": "black skirt",
        "shoes": "black boots",
        "belongings": UNKNOWN,
    },
    {},
)
GOOD_MAN = [
    "A man with short black hair walks by in a red t-shirt and blue jeans.",
    "There is a man in white sneakers carrying a black backpack on his back.",
    "The man wears a red t-shirt. He walks in white sneakers with a black backpack.",
]
GOOD_WOMAN = [
    "A woman with long brown hair wears a white blouse and a black skirt.",
    "The woman walks in black boots. She has a white blouse on.",
]
# per reason, a text the checks reject for it (the duplicate repeats the image's library sentence)
BAD_MAN: dict[str, Any] = {
    "empty": " ",
    "markup": "A man in a **red t-shirt** walks by.",
    "too_short": "A man.",
    "too_long": "A man " + "slowly " * 70 + "walks.",
    "repetition": "The man walks by. The man walks by.",
    "duplicate": lambda item, request: item.fallbacks[-1].text,
    "gender": "A woman in a red t-shirt walks by.",
    "contradiction": "A man in a blue t-shirt and blue jeans walks by.",
}
Answer = str | GeneratedText | Callable[[CaptionItem, CaptionRequest], str]


class ScriptedGenerator:
    """Answers each generate() call from its own list of scripted answers (a text, a GeneratedText, or a
    function of the item and the request), and records the requests."""

    def __init__(self, items: Sequence[CaptionItem], *calls: Sequence[Answer]) -> None:
        self._items = {item.key: item for item in items}
        self._calls = list(calls)
        self.requests: list[list[CaptionRequest]] = []

    def describe(self) -> dict[str, Any]:
        return {"kind": "scripted", "model": "none"}

    def generate(self, requests: Sequence[CaptionRequest]) -> list[GeneratedText]:
        self.requests.append(list(requests))
        answers = self._calls.pop(0)
        assert len(answers) == len(requests), "the script expects another number of requests"
        return [self._answer(answer, request) for answer, request in zip(answers, requests)]

    def _answer(self, answer: Answer, request: CaptionRequest) -> GeneratedText:
        if isinstance(answer, GeneratedText):
            return answer
        if callable(answer):
            return GeneratedText(answer(self._items[request.key], request))
        return GeneratedText(answer)


def _item(key: str = "k1", prediction=MAN) -> CaptionItem:
    return caption_item(key, f"jpeg of {key}".encode(), prediction, CAPTIONER)


def _run(items, *calls, settings=SETTINGS) -> tuple[list[CaptionOutcome], ScriptedGenerator]:
    generator = ScriptedGenerator(items, *calls)
    outcomes = generate_checked(items, generator, settings)
    assert not generator._calls, "a scripted call was not made"
    return outcomes, generator


def _assert_sound(outcome: CaptionOutcome) -> None:
    """What holds for every outcome: distinct texts, no rejected text kept as a generated one,
    counters that add up, spans of spac.language."""
    assert len(set(outcome.texts)) == len(outcome.texts)
    assert len(outcome.captions) == len(outcome.styles)
    generated = {text for text, style in zip(outcome.captions, outcome.styles) if style.startswith("mllm:")}
    assert not {r.text for r in outcome.rejections} & generated  # (a rejected duplicate may be a template text)
    counters = outcome.counters
    rejected = sum(v for k, v in counters.items() if k.startswith("mllm_rejected_"))
    failed = sum(v for k, v in counters.items() if k.startswith("mllm_failed_"))
    assert counters["mllm_requested"] == counters["mllm_kept"] + rejected + failed
    assert counters["mllm_kept"] == sum(s.startswith("mllm:") for s in outcome.styles)
    assert len(outcome.rejections) == rejected + failed
    expected = language.attribute_spans(list(outcome.texts), SCHEMA)
    assert [list(s) for s in outcome.attribute_spans] == [list(map(tuple, s)) for s in expected]


def test_kept_texts_replace_the_style_captions_and_the_library_sentence_stays_last():
    items = [_item("k1"), _item("k2", WOMAN)]
    outcomes, generator = _run(items, [GOOD_MAN[0], GOOD_MAN[1], GOOD_WOMAN[0], GOOD_WOMAN[1]])
    assert len(generator.requests) == 1  # round 1 only: nothing to ask again
    requests = generator.requests[0]
    assert [r.key for r in requests] == ["k1", "k1", "k2", "k2"]
    assert requests[0].image_jpeg == b"jpeg of k1"
    first, second = outcomes
    assert first.captions == tuple(GOOD_MAN[:2]) and second.captions == tuple(GOOD_WOMAN)
    assert first.styles == tuple(f"mllm:{r.style_id}" for r in requests[:2])
    assert requests[0].style_id != requests[1].style_id
    assert first.prompt_caption == (items[0].fallbacks[-1].text,) and items[0].fallbacks[-1].style == TEMPLATE_STYLE
    assert first.counters == {"mllm_requested": 2, "mllm_kept": 2, "mllm_fallback": 0}
    assert first.rejections == ()
    for outcome in outcomes:
        _assert_sound(outcome)


@pytest.mark.parametrize("reason", sorted(BAD_MAN))
def test_a_rejected_text_is_asked_again_in_another_style_and_the_answer_kept(reason):
    item = _item()
    outcomes, generator = _run([item], [BAD_MAN[reason], GOOD_MAN[1]], [GOOD_MAN[2]])
    round1, round2 = generator.requests
    assert len(round2) == 1 and round2[0].key == "k1"
    assert round2[0].style_id not in {r.style_id for r in round1}
    outcome = outcomes[0]
    assert outcome.captions == (GOOD_MAN[2], GOOD_MAN[1])  # the retry fills the slot it was asked for
    assert outcome.styles[0] == f"mllm:{round2[0].style_id}"
    bad = BAD_MAN[reason](item, round1[0]) if callable(BAD_MAN[reason]) else BAD_MAN[reason]
    rejected = [(r.style, r.reason, r.text) for r in outcome.rejections]
    assert rejected == [(f"mllm:{round1[0].style_id}", reason, bad.strip())]
    assert outcome.counters[f"mllm_rejected_{reason}"] == 1
    assert outcome.counters["mllm_requested"] == 3 and outcome.counters["mllm_kept"] == 2
    _assert_sound(outcome)


def test_the_scripts_cover_every_reason():
    assert set(BAD_MAN) == set(REASONS)


def test_a_text_rejected_twice_gives_way_to_the_template_caption_of_its_slot():
    item = _item()
    outcomes, _ = _run([item], [GOOD_MAN[0], BAD_MAN["gender"]], [BAD_MAN["markup"]])
    outcome = outcomes[0]
    styled = [c for c in item.fallbacks if c.style != TEMPLATE_STYLE]
    assert outcome.captions == (GOOD_MAN[0], styled[1].text)
    assert outcome.styles[1] == styled[1].style and not outcome.styles[1].startswith("mllm:")
    assert outcome.counters["mllm_fallback"] == 1
    assert [r.reason for r in outcome.rejections] == ["gender", "markup"]
    _assert_sound(outcome)


def test_failed_requests_are_counted_by_kind_asked_again_then_replaced(monkeypatch):
    item = _item()
    with monkeypatch.context() as patch:  # every text is the captioner's, spans and all: spaCy is not run
        patch.setattr(language, "attribute_spans", lambda *args: pytest.fail("spaCy ran on the captioner's texts"))
        outcomes, _ = _run(
            [item],
            [GeneratedText(None, "timeout"), GeneratedText(None, "http_5xx")],
            [GeneratedText(None, "refused"), GeneratedText(None)],
        )
    outcome = outcomes[0]
    assert outcome.captions == tuple(c.text for c in item.fallbacks if c.style != TEMPLATE_STYLE)
    assert outcome.texts == tuple(c.text for c in item.fallbacks)  # the template stage's texts, exactly
    assert {k: v for k, v in outcome.counters.items() if k.startswith("mllm_failed_")} == {
        "mllm_failed_timeout": 1,
        "mllm_failed_http_5xx": 1,
        "mllm_failed_refused": 1,
        "mllm_failed_error": 1,
    }
    assert outcome.counters["mllm_fallback"] == 2 and outcome.counters["mllm_kept"] == 0
    assert all(r.text is None for r in outcome.rejections)
    _assert_sound(outcome)


def test_two_texts_alike_keep_the_first_and_ask_again_for_the_second():
    outcomes, _ = _run([_item()], [GOOD_MAN[0], GOOD_MAN[0].lower()], [GOOD_MAN[1]])
    assert outcomes[0].captions == (GOOD_MAN[0], GOOD_MAN[1])
    assert outcomes[0].counters["mllm_rejected_duplicate"] == 1


def test_a_text_that_repeats_its_example_sentence_is_a_duplicate():
    key = next(
        k for k in (f"key{i}" for i in range(100)) if SETTINGS.prompts.prompt(k, b"", {}, 0, 0).example is not None
    )
    item = _item(key)

    def copy_example(_item, request: CaptionRequest) -> str:
        return request.instruction.split('"')[-2]

    outcomes, generator = _run([item], [copy_example, GOOD_MAN[1]], [GOOD_MAN[2]])
    assert generator.requests[0][0].style_id.startswith("example:")
    assert outcomes[0].rejections[0].reason == "duplicate"
    assert outcomes[0].captions == (GOOD_MAN[2], GOOD_MAN[1])


def test_a_slot_without_a_template_caption_is_left_out_and_counted():
    little = GivenAttributes(
        {
            "gender": "man",
            "hair": UNKNOWN,
            "upper": "red t-shirt",
            "lower": UNKNOWN,
            "shoes": UNKNOWN,
            "belongings": UNKNOWN,
        },
        {},
    )
    item = _item("k1", little)
    assert len(item.fallbacks) == 2  # one style caption and the library sentence: little is known
    outcomes, _ = _run([item], [GOOD_MAN[0], BAD_MAN["too_short"]], [BAD_MAN["too_short"]])
    outcome = outcomes[0]
    assert outcome.captions == (GOOD_MAN[0],) and outcome.prompt_caption == (item.fallbacks[-1].text,)
    assert outcome.counters["mllm_unfilled"] == 1 and outcome.counters["mllm_fallback"] == 0
    _assert_sound(outcome)


def test_three_texts_per_image_ask_three_and_retry_in_three_more_styles():
    settings = GenerationSettings(SETTINGS.prompts, texts_per_image=3, schema=SCHEMA)
    outcomes, generator = _run([_item()], [" ", " ", " "], [*GOOD_MAN], settings=settings)
    styles = [r.style_id.split(":")[0] for call in generator.requests for r in call]
    assert len(styles) == 6 and len(set(r.style_id for call in generator.requests for r in call)) == 6
    assert outcomes[0].captions == tuple(GOOD_MAN)
    _assert_sound(outcomes[0])


def test_a_value_below_the_confidence_threshold_does_not_hold_the_text():
    unsure = GivenAttributes(MAN.attributes, {"upper": 0.4})
    text = "A man in a blue sweater and blue jeans walks by."
    outcomes, _ = _run([_item("k1", unsure)], [text, GOOD_MAN[1]])
    assert outcomes[0].captions == (text, GOOD_MAN[1])
    strict = GenerationSettings(SETTINGS.prompts, min_confidence=0.3, schema=SCHEMA)
    outcomes, _ = _run([_item("k1", unsure)], [text, GOOD_MAN[1]], [GOOD_MAN[0]], settings=strict)
    assert outcomes[0].rejections[0].reason == "contradiction"


def _mixed_run() -> tuple[list[CaptionOutcome], ScriptedGenerator]:
    items = [_item("k1"), _item("k2", WOMAN), _item("k3")]
    round1 = [
        BAD_MAN["contradiction"],
        GOOD_MAN[0],
        GOOD_WOMAN[0],
        GeneratedText(None, "timeout"),
        GOOD_MAN[2],
        "  " + GOOD_MAN[1] + "\n",
    ]
    round2 = [BAD_MAN["repetition"], GOOD_WOMAN[1]]
    return _run(items, round1, round2)


def test_the_same_items_and_answers_give_the_same_outcomes():
    first, generator = _mixed_run()
    second, again = _mixed_run()
    assert first == second and generator.requests == again.requests
    assert first[2].captions == (GOOD_MAN[2], GOOD_MAN[1])  # answers are kept stripped of outer white space


def test_counters_add_up_over_a_batch_and_no_rejected_text_is_kept():
    outcomes, generator = _mixed_run()
    assert [len(call) for call in generator.requests] == [6, 2]
    for outcome in outcomes:
        _assert_sound(outcome)
    total = total_counters(outcomes)
    assert total["mllm_requested"] == 8 and total["mllm_kept"] == 5
    assert total["mllm_rejected_contradiction"] == total["mllm_rejected_repetition"] == 1
    assert total["mllm_failed_timeout"] == 1 and total["mllm_fallback"] == 1


def test_the_outcome_gives_the_record_fields_and_a_json_view():
    outcomes, _ = _mixed_run()
    fields = outcomes[0].record_fields()
    assert set(fields) == {"captions", "styles", "prompt_caption", "attribute_spans"}
    assert len(fields["attribute_spans"]) == len(fields["captions"]) + len(fields["prompt_caption"])
    assert all(isinstance(span, list) and len(span) == 2 for spans in fields["attribute_spans"] for span in spans)
    view = outcomes[0].as_dict()
    assert view["rejections"][0] == {
        "style": outcomes[0].rejections[0].style,
        "reason": "contradiction",
        "text": BAD_MAN["contradiction"],
    }
    assert view["counters"]["mllm_requested"] == 3  # two asks and one retry


def test_no_items_make_no_request():
    outcomes, generator = _run([])
    assert outcomes == [] and generator.requests == []


def test_a_generator_that_answers_another_number_of_requests_is_a_bug():
    class Short(ScriptedGenerator):
        def generate(self, requests):
            return []

    with pytest.raises(RuntimeError, match="answered 0 of 2 requests"):
        generate_checked([_item()], Short([]), SETTINGS)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"texts_per_image": 0}, "texts per image must be 1 to 3"),
        ({"texts_per_image": 4}, "texts per image must be 1 to 3"),
        ({"min_confidence": 1.5}, "min confidence"),
        ({"min_words": 10, "max_words": 5}, "min words <= max words"),
    ],
)
def test_bad_settings_are_one_line_errors(overrides, message):
    with pytest.raises(InputError, match=message):
        GenerationSettings(SETTINGS.prompts, schema=SCHEMA, **overrides)


def test_the_prompt_book_asks_only_the_chosen_styles():
    assert prompt_book(CAPTIONER).instructions == SETTINGS.prompts.instructions  # every style by default
    chosen = ("inventory", "narrative")
    for book in (prompt_book(CAPTIONER, ["narrative", "inventory"]), prompt_book(Captioner(SCHEMA, chosen))):
        assert tuple(book.instructions.styles) == chosen
        items = [_item(f"k{n}") for n in range(6)]
        answers = [lambda item, request: f"A man walks by in the {request.style_id} manner, picture {item.key}."] * 12
        outcomes, generator = _run(items, answers, settings=GenerationSettings(book, schema=SCHEMA))
        asked = {request.style_id.split(":")[0] for request in generator.requests[0]}
        assert set(chosen) <= asked <= {*chosen, "example"}
        assert all(style.split(":")[1] in {*chosen, "example"} for o in outcomes for style in o.styles)
    with pytest.raises(InputError, match="unknown style 'haiku'"):
        prompt_book(CAPTIONER, ["haiku"])
    with pytest.raises(InputError, match="need 4 style instructions; the prompts have 3"):  # one style, 2 examples
        GenerationSettings(prompt_book(CAPTIONER, ["dense"]), schema=SCHEMA)


def test_the_settings_describe_themselves_for_job_json():
    described = SETTINGS.describe()
    assert described["texts_per_image"] == 2 and described["prompts_version"] == SETTINGS.prompts.instructions.version
    assert list(described["prompt_files_sha256"]) == ["templates/prompts/instructions.yaml"]
    assert described["example_library"] == "templates/sentences.yaml"


def test_over_a_chat_server_every_reason_and_failure_is_counted_and_no_rejected_text_is_kept():
    """The stage over the OpenAI-compatible client and a local chat server of the tests: one image per
    rejection reason, one whose server fails (HTTP 500) and one whose answer is no text, each answering
    its scripted text first and a good one when asked again."""
    from spac.generation.server import OpenAIServerGenerator
    from tests.spac.generation.fake_server import FakeChatServer, Reply, text_reply

    items = {f"k_{reason}": _item(f"k_{reason}") for reason in BAD_MAN}
    items |= {"k_down": _item("k_down"), "k_junk": _item("k_junk")}
    first = {key: BAD_MAN[key[2:]] for key in items if key[2:] in BAD_MAN}
    first["k_duplicate"] = items["k_duplicate"].fallbacks[-1].text
    asked: list[str] = []

    def answer(body: dict) -> Reply:
        url = body["messages"][-1]["content"][0]["image_url"]["url"]
        key = base64.b64decode(url.split(",", 1)[1]).decode().removeprefix("jpeg of ")
        retry = key in asked  # one request per image and round: the second is the retry
        asked.append(key)
        if retry:
            return text_reply(GOOD_MAN[0])
        if key == "k_down":
            return Reply(500, b'{"error": "overloaded"}')
        return text_reply(42) if key == "k_junk" else text_reply(first[key])

    settings = GenerationSettings(SETTINGS.prompts, texts_per_image=1, schema=SCHEMA)
    with FakeChatServer(answer) as server:
        generator = OpenAIServerGenerator(server.base_url, "tiny", retries=0, backoff_s=0.0, timeout_s=10.0)
        outcomes = generate_checked(list(items.values()), generator, settings)
    total = total_counters(outcomes)
    assert {f"mllm_rejected_{reason}" for reason in REASONS} <= set(total)
    assert all(total[f"mllm_rejected_{reason}"] == 1 for reason in REASONS)
    assert total["mllm_failed_http_5xx"] == 1 and total["mllm_failed_bad_response"] == 1
    assert total["mllm_requested"] == 2 * len(items) and total["mllm_kept"] == len(items)
    for outcome in outcomes:
        assert outcome.captions == (GOOD_MAN[0],) and outcome.styles[0].startswith("mllm:")
        _assert_sound(outcome)
