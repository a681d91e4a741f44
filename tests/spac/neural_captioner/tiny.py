"""A tiny captioner for the tests: a two-stage ResNet, a two-layer GPT-2 and a BPE tokenizer learnt here
from a few captions (nothing downloaded)."""

from __future__ import annotations

import torch

from spac.attributes import load_schema
from spac.neural_captioner.config import NeuralCaptionerConfig, preset_generator
from spac.neural_captioner.model import NeuralCaptioner, build_captioner
from spac.neural_captioner.tokenizer import train_tokenizer

TINY_BACKBONE = {"depths": [1, 1], "hidden_sizes": [8, 16], "embedding_size": 8, "layer_type": "basic"}
SMALL = (64, 32)
STYLES = ("plain", "fancy")
TEXTS = [
    "a man in a red shirt and blue jeans.",
    "The woman wears a black coat and a white skirt.",
    "A person with long brown hair, green shorts and grey sneakers.",
]


def tiny_tokenizer(texts=TEXTS, vocab_size=400):
    return train_tokenizer(texts * 5, vocab_size)


def tiny_config(tokenizer, **overrides) -> NeuralCaptionerConfig:
    generator = preset_generator("tiny", len(tokenizer), tokenizer.eos_token_id)
    fields = {"backbone": TINY_BACKBONE, "image_size": SMALL, "prefix_length": 2, **overrides}
    return NeuralCaptionerConfig.for_schema(load_schema(), STYLES, generator, **fields)


def tiny_captioner(tokenizer=None, seed: int = 0, **overrides) -> NeuralCaptioner:
    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer()
    torch.manual_seed(seed)
    return build_captioner(tiny_config(tokenizer, **overrides), tokenizer)
