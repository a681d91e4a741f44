"""caption_styled over a scripted two-style captioner: each style's text kept in its slot when it passes the
checks, else the template caption of that slot (a contradicting colour, the other gender, every other reason),
counters that add up, spans of what is kept, chunks of one fixed size whatever the batch, and the decoding
passed through."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from common.errors import InputError
from spac import language
from spac.captioning.captioner import TEMPLATE_STYLE
from spac.generation.stage import CaptionItem, CheckSettings, caption_item, check_written, total_counters
from spac.generation.styled import StyledDecoding, StyledWriter, caption_styled
from tests.spac.generation.scripted_captioner import STYLE_NAMES, ScriptedCaptioner
from tests.spac.generation.test_stage import BAD_MAN, CAPTIONER, GOOD_MAN, MAN, SCHEMA

CHECKS = CheckSettings(schema=SCHEMA)
GREEDY = StyledDecoding()
CONTRADICTION = "A man in a blue t-shirt and blue jeans walks by."  # the trusted t-shirt is red
OTHER_GENDER = "A woman in a red t-shirt walks by with her bag."


def _jpeg() -> bytes:
    data = io.BytesIO()
    Image.new("RGB", (128, 256), (200, 30, 30)).save(data, format="JPEG")
    return data.getvalue()


JPEG = _jpeg()


def _items(count: int) -> list[CaptionItem]:
    return [caption_item(f"k{n}", JPEG, MAN, CAPTIONER) for n in range(count)]


def _run(script, count: int = 1, batch_size: int = 4, decoding: StyledDecoding = GREEDY):
    captioner = ScriptedCaptioner(script)
    outcomes = caption_styled(_items(count), StyledWriter(captioner, decoding, batch_size), CHECKS)
    return outcomes, captioner


def _assert_sound(outcome) -> None:
    counters = outcome.counters
    rejected = sum(v for k, v in counters.items() if k.startswith("spac_rejected_"))
    assert counters["spac_requested"] == len(STYLE_NAMES) == counters["spac_kept"] + rejected
    assert counters["spac_fallback"] == rejected == len(outcome.rejections)
    assert counters["spac_kept"] == sum(s.startswith("spac:") for s in outcome.styles)
    kept = {text for text, style in zip(outcome.captions, outcome.styles) if style.startswith("spac:")}
    assert not {r.text for r in outcome.rejections if r.reason != "duplicate"} & kept  # a duplicate's first is kept
    assert len(set(outcome.texts)) == len(outcome.texts)
    expected = language.attribute_spans(list(outcome.texts), SCHEMA)
    assert [list(s) for s in outcome.attribute_spans] == [list(map(tuple, s)) for s in expected]


def test_each_style_text_that_passes_takes_its_slot_and_the_library_sentence_stays_last():
    (outcome,), captioner = _run(lambda key, style: GOOD_MAN[style])
    assert outcome.captions == (GOOD_MAN[0], GOOD_MAN[1])
    assert outcome.styles == ("spac:cuhk", "spac:icfg")
    library = [c.text for c in _items(1)[0].fallbacks if c.style == TEMPLATE_STYLE]
    assert outcome.prompt_caption == tuple(library)
    assert outcome.counters == {"spac_requested": 2, "spac_kept": 2, "spac_fallback": 0}
    assert [call["style"] for call in captioner.calls] == [0, 1]
    _assert_sound(outcome)


def test_a_contradicting_colour_and_the_other_gender_give_way_to_the_template_caption_of_their_slot():
    (outcome,), _ = _run(lambda key, style: (CONTRADICTION, OTHER_GENDER)[style])
    styled = [c for c in _items(1)[0].fallbacks if c.style != TEMPLATE_STYLE]
    assert outcome.captions == (styled[0].text, styled[1].text)
    assert outcome.styles == (styled[0].style, styled[1].style)
    assert CONTRADICTION not in outcome.texts and OTHER_GENDER not in outcome.texts
    assert [(r.style, r.reason, r.text) for r in outcome.rejections] == [
        ("spac:cuhk", "contradiction", CONTRADICTION),
        ("spac:icfg", "gender", OTHER_GENDER),
    ]
    assert outcome.counters["spac_rejected_contradiction"] == outcome.counters["spac_rejected_gender"] == 1
    _assert_sound(outcome)


@pytest.mark.parametrize("reason", sorted(BAD_MAN))
def test_every_rejection_reason_is_counted_and_replaced(reason):
    bad = BAD_MAN[reason]

    def script(key: str, style: int) -> str:
        if style == 1:
            return GOOD_MAN[0]
        return bad(_items(1)[0], None) if callable(bad) else bad

    (outcome,), _ = _run(script)
    assert outcome.counters == {
        "spac_requested": 2,
        "spac_kept": 1,
        "spac_fallback": 1,
        f"spac_rejected_{reason}": 1,
    }
    assert outcome.captions[1] == GOOD_MAN[0] and outcome.styles[1] == "spac:icfg"
    assert not outcome.styles[0].startswith("spac:")
    _assert_sound(outcome)


def test_two_styles_writing_the_same_text_keep_the_first():
    (outcome,), _ = _run(lambda key, style: GOOD_MAN[0])
    assert outcome.captions[0] == GOOD_MAN[0] and outcome.counters["spac_rejected_duplicate"] == 1
    _assert_sound(outcome)


def test_chunks_have_one_size_whatever_the_batch_and_texts_stay_in_order():
    outcomes, captioner = _run(lambda key, style: f"A man in a red t-shirt walks by, picture {key} style {style}.", 6)
    assert [(c["images"], c["style"]) for c in captioner.calls] == [(4, 0), (4, 1), (4, 0), (4, 1)]
    assert [o.captions[1] for o in outcomes] == [
        f"A man in a red t-shirt walks by, picture k{n} style 1." for n in range(6)
    ]
    total = total_counters(outcomes)
    assert total == {"spac_fallback": 0, "spac_kept": 12, "spac_requested": 12}


def test_the_decoding_reaches_the_captioner_and_the_same_script_gives_the_same_outcomes():
    decoding = StyledDecoding(temperature=0.7, seed=3, max_new_tokens=20)
    first, captioner = _run(lambda key, style: GOOD_MAN[style], 2, decoding=decoding)
    assert {(c["temperature"], c["seed"], c["tokens"]) for c in captioner.calls} == {(0.7, 3, 20)}
    second, _ = _run(lambda key, style: GOOD_MAN[style], 2, decoding=decoding)
    assert first == second


def test_no_items_ask_nothing():
    captioner = ScriptedCaptioner(lambda key, style: "unused")
    assert caption_styled([], StyledWriter(captioner, GREEDY), CHECKS) == [] and captioner.calls == []


def test_a_writer_answering_another_number_of_texts_is_a_bug():
    with pytest.raises(RuntimeError, match="expected 2 written texts"):
        check_written(_items(1), [(GOOD_MAN[0],)], STYLE_NAMES, CHECKS, "spac")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: StyledDecoding(temperature=-1.0), "temperature must be at least 0"),
        (lambda: StyledDecoding(max_new_tokens=0), "max new tokens"),
        (lambda: CheckSettings(min_words=9, max_words=8), "min words"),
    ],
)
def test_bad_settings_are_one_line_errors(make, message):
    with pytest.raises(InputError, match=message):
        make()


def test_the_decoding_describes_itself_for_job_json():
    assert StyledDecoding().describe() == {"temperature": 0.0, "seed": 0, "max_new_tokens": 64}
