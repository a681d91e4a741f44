import io

import pytest
from PIL import Image

from shards import IMAGE_SIZE, encode_image, make_sample, validate_record
from shards.sample import RECORD_FIELDS
from tests.shards.corpus_factory import make_image, make_record


def test_encode_image_is_a_fixed_size_deterministic_rgb_jpeg():
    source = Image.new("RGBA", (300, 700), (10, 200, 30, 128))
    first, second = encode_image(source), encode_image(source.copy())
    assert first == second
    decoded = Image.open(io.BytesIO(first))
    assert decoded.format == "JPEG" and decoded.mode == "RGB"
    assert decoded.size == (IMAGE_SIZE[1], IMAGE_SIZE[0])  # PIL gives (width, height)


def test_encode_image_differs_for_different_images():
    assert encode_image(make_image(1)) != encode_image(make_image(2))


def test_valid_record_passes():
    validate_record(make_record(4))


def _without(field):
    record = make_record(0)
    del record[field]
    return record


def _with_attribute(group, entry):
    record = make_record(0)
    record["attributes"][group] = entry
    return record


@pytest.mark.parametrize(
    "record, field",
    [
        (_without("id"), "'id'"),
        (make_record(0, id=-1), "'id'"),
        (make_record(0, id=True), "'id'"),
        (make_record(0, key="a.b"), "'key'"),
        (make_record(0, file_path="/abs/1.jpg"), "'file_path'"),
        (make_record(0, source=""), "'source'"),
        (make_record(0, extra=1), "'extra'"),
        (make_record(0, attributes={"gender": {"value": "man", "confidence": 1.0}}), "'attributes'"),
        (_with_attribute("hair", {"value": "black hair", "confidence": 1.5}), "hair.confidence"),
        (_with_attribute("upper", {"value": "red, blue", "confidence": 0.5}), "upper.value"),
        (make_record(0, styles=["plain"]), "'styles'"),
        (make_record(0, captions=["ok", ""]), "'captions'"),
        (make_record(0, prompt_caption=["one", "two"]), "'prompt_caption'"),
        (make_record(0, captions=[], styles=[], prompt_caption=[]), "'captions'"),
        ("not a dict", "expected a dict"),
    ],
)
def test_validate_record_names_the_broken_field(record, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        validate_record(record)


def test_make_sample_txt_is_first_caption_or_library_sentence():
    jpg = encode_image(make_image(0))
    assert make_sample(make_record(0), jpg)["txt"] == make_record(0)["captions"][0]
    only_prompt = make_record(0, captions=[], styles=[])
    assert make_sample(only_prompt, jpg)["txt"] == only_prompt["prompt_caption"][0]


def test_make_sample_rejects_non_jpeg_bytes():
    png = io.BytesIO()
    make_image(0).save(png, format="PNG")
    with pytest.raises(ValueError, match="jpg"):
        make_sample(make_record(0), png.getvalue())


def _imported(**entry_overrides):
    """A record as an importer writes it: no confidences, ``in_schema`` on every group."""
    record = make_record(0)
    record["attributes"] = {
        g: {"value": e["value"], "confidence": None, "in_schema": True} for g, e in record["attributes"].items()
    }
    record["attributes"]["upper"] = {"value": "black cape", "confidence": None, "in_schema": False, **entry_overrides}
    return record


def test_an_imported_record_keeps_a_verbatim_phrase_without_confidence():
    record = _imported()
    validate_record(record)
    sample = make_sample(record, encode_image(make_image(0)))
    assert sample["json"]["attributes"]["upper"] == {"value": "black cape", "confidence": None, "in_schema": False}
    assert list(sample["json"]["attributes"]["hair"]) == ["value", "confidence", "in_schema"]


def test_a_predicted_record_has_no_in_schema_key_and_its_bytes_do_not_change():
    sample = make_sample(make_record(0), encode_image(make_image(0)))
    assert all(set(entry) == {"value", "confidence"} for entry in sample["json"]["attributes"].values())


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"in_schema": "no"}, "upper.in_schema"),
        ({"in_schema": None}, "upper.in_schema"),
        ({"source": "x"}, "'attributes'.upper"),
        ({"confidence": "high"}, "upper.confidence"),
    ],
)
def test_an_imported_entry_of_another_shape_is_refused(overrides, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        validate_record(_imported(**overrides))


def _with_spans(spans):
    return make_record(0, attribute_spans=spans)


def test_stored_attribute_spans_are_accepted_and_written_after_the_required_fields():
    record = _with_spans([[[2, 7], [20, 31]], [], [[4, 9]]])
    validate_record(record)
    sample = make_sample(record, encode_image(make_image(0)))
    assert list(sample["json"]) == [*RECORD_FIELDS, "attribute_spans"]
    assert sample["json"]["attribute_spans"] == [[[2, 7], [20, 31]], [], [[4, 9]]]
    only_prompt = make_record(0, captions=[], styles=[], attribute_spans=[[[4, 9]]])
    validate_record(only_prompt)


def test_a_record_without_spans_keeps_the_fields_it_always_had():
    sample = make_sample(make_record(0), encode_image(make_image(0)))
    assert list(sample["json"]) == list(RECORD_FIELDS)


@pytest.mark.parametrize(
    "spans, message",
    [
        ("not a list", "one list of spans per text"),
        ([[], []], "one list of spans per text"),  # 3 texts: 2 captions + the sentence
        ([[], [], [], []], "one list of spans per text"),
        ([[], [], None], r"\[2\]: expected a list"),
        ([[[0, 5]], [], [[1, 2, 3]]], r"\[2\]: expected \[start, end\] integer pairs"),
        ([[(0, 5)], [], []], r"\[0\]: expected \[start, end\] integer pairs"),
        ([[[0, 5.0]], [], []], r"\[0\]: expected \[start, end\] integer pairs"),
        ([[[False, 5]], [], []], r"\[0\]: expected \[start, end\] integer pairs"),
        ([[[-1, 5]], [], []], r"\[0\]: span \[-1, 5\] is not inside the text"),
        ([[[5, 5]], [], []], r"\[0\]: span \[5, 5\] is not inside"),
        ([[[6, 5]], [], []], r"\[0\]: span \[6, 5\] is not inside"),
        ([[], [], [[0, 1000]]], r"\[2\]: span \[0, 1000\] is not inside the text \(\d+ characters"),
    ],
)
def test_malformed_attribute_spans_are_refused(spans, message):
    with pytest.raises(ValueError, match=r"field 'attribute_spans'" + r".*" + message):
        validate_record(_with_spans(spans))


def test_a_span_may_end_at_the_end_of_its_text():
    record = make_record(0)
    texts = record["captions"] + record["prompt_caption"]
    validate_record(_with_spans([[[0, len(t)]] for t in texts]))


def test_the_caption_model_is_written_last_and_a_record_without_it_still_validates():
    record = make_record(0, attribute_spans=[[], [], []], caption_model="HuggingFaceTB/SmolVLM-256M-Instruct")
    sample = make_sample(record, encode_image(make_image(0)))
    assert list(sample["json"]) == [*RECORD_FIELDS, "attribute_spans", "caption_model"]
    assert sample["json"]["caption_model"] == "HuggingFaceTB/SmolVLM-256M-Instruct"
    validate_record(make_record(0))  # a corpus written before the field, or by the template captioner


@pytest.mark.parametrize("model", ["", "  ", None, 3, ["tiny"]])
def test_a_caption_model_that_is_not_a_name_is_refused(model):
    with pytest.raises(ValueError, match=r"field 'caption_model': expected a non-empty string"):
        validate_record(make_record(0, caption_model=model))
