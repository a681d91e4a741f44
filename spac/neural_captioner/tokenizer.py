"""A small byte-level BPE tokenizer learnt from the training captions, for a generator trained from scratch
(a preset GPT-2 shape): no download, a vocabulary sized to the corpus, and exact decoding (byte-level, as GPT-2's
own tokenizer). A pretrained GPT-2 brings its own tokenizer instead."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from common.errors import InputError

END_OF_TEXT = "<|endoftext|>"  # GPT-2's end-of-text token, also the padding token
MIN_VOCABULARY = 300  # the 256 bytes, the end-of-text token, and room for merges


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1000) -> PreTrainedTokenizerFast:
    """A byte-level BPE of at most ``vocab_size`` tokens learnt from ``texts`` (deterministic for the same
    texts in the same order)."""
    if vocab_size < MIN_VOCABULARY:
        raise InputError(f"a tokenizer vocabulary needs at least {MIN_VOCABULARY} tokens, got {vocab_size}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=END_OF_TEXT, pad_token=END_OF_TEXT)
