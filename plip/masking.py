"""IAP input masking: hide whole attribute phrases of a caption behind [MASK] and keep their ids as labels.

The share of a caption's attribute phrases that is masked grows with training progress t in [0, 1]
as r(t) = 0.2 + 0.6 * sqrt(t) (the paper's best schedule). At least one phrase is masked whenever a
caption has any, so every such caption contributes to the loss. Labels are -100 everywhere else.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100
Span = tuple[int, int]  # [start, end) character offsets in the caption


def masking_ratio(progress: float) -> float:
    """r(t) = 0.2 + 0.6 * sqrt(t), with t clamped to [0, 1]."""
    return 0.2 + 0.6 * math.sqrt(min(max(progress, 0.0), 1.0))


def attribute_spans(texts: Sequence[str]) -> list[list[Span]]:
    """Character spans of the attribute phrases that spac.language finds in each of ``texts``."""
    from spac import language  # spaCy loads only when a caption's spans are not known

    return language.attribute_spans(texts)


@dataclass(frozen=True)
class MaskedCaption:
    input_ids: list[int]  # the caption tokens (padded), untouched
    attention_mask: list[int]
    mlm_input_ids: list[int]  # the same with the chosen phrases' tokens replaced by [MASK]
    mlm_labels: list[int]  # original ids at masked positions, -100 elsewhere
    masked_phrases: int  # how many phrases were chosen


def mask_attribute_phrases(
    text: str,
    spans: Sequence[Span],
    tokenizer: PreTrainedTokenizerBase,
    ratio: float,
    rng: random.Random,
    max_length: int = 64,
) -> MaskedCaption:
    """Tokenize ``text`` (padded to ``max_length``) and mask round(ratio * n) of its n phrases (at least 1)."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"masking ratio must be in [0, 1], got {ratio}")
    encoded = tokenizer(text, padding="max_length", truncation=True, max_length=max_length, return_offsets_mapping=True)
    input_ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    # Tokens of each phrase (special and padding tokens have empty offsets and never overlap a span).
    phrase_tokens = [
        [i for i, (start, end) in enumerate(offsets) if end > start and start < span_end and end > span_start]
        for span_start, span_end in spans
    ]
    phrase_tokens = [tokens for tokens in phrase_tokens if tokens]  # phrases cut off by truncation drop out
    count = min(len(phrase_tokens), max(1, math.floor(ratio * len(phrase_tokens) + 0.5))) if phrase_tokens else 0
    chosen = {i for p in rng.sample(range(len(phrase_tokens)), count) for i in phrase_tokens[p]}
    mlm_input_ids = [tokenizer.mask_token_id if i in chosen else tok for i, tok in enumerate(input_ids)]
    mlm_labels = [tok if i in chosen else IGNORE_INDEX for i, tok in enumerate(input_ids)]
    return MaskedCaption(list(input_ids), list(encoded["attention_mask"]), mlm_input_ids, mlm_labels, count)


def mask_batch(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    progress: float,
    rng: random.Random,
    spans: Sequence[Sequence[Span] | None] | None = None,
    max_length: int = 64,
) -> dict[str, torch.Tensor]:
    """Collate captions into ``input_ids``, ``attention_mask``, ``mlm_input_ids`` and ``mlm_labels`` tensors.

    ``spans``: each caption's phrase spans when the corpus already has them (a record's ``attribute_spans``);
    the captions without (None, or every caption when ``spans`` is None) get the phrases spac.language finds.
    """
    if spans is not None and len(spans) != len(texts):
        raise ValueError(f"got {len(spans)} span lists for {len(texts)} captions")
    known = list(spans) if spans is not None else [None] * len(texts)
    missing = [i for i, s in enumerate(known) if s is None]
    if missing:  # spaCy is not even imported when every caption comes with its spans
        for i, found in zip(missing, attribute_spans([texts[i] for i in missing])):
            known[i] = found
    ratio = masking_ratio(progress)
    masked = [mask_attribute_phrases(text, known[i], tokenizer, ratio, rng, max_length) for i, text in enumerate(texts)]
    fields = ("input_ids", "attention_mask", "mlm_input_ids", "mlm_labels")
    return {name: torch.tensor([getattr(m, name) for m in masked], dtype=torch.long) for name in fields}
