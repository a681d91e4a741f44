"""A seconds-fast PLIP model for tests: tiny ResNet at 64x32, tiny random BERT, MiniLM's tokenizer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from plip.config import MINILM
from plip.factory import create_model, merge_overrides
from plip.model import PLIPModel

TINY_BERT = {
    "vocab_size": 30522,  # MiniLM's (= bert-base-uncased) WordPiece vocabulary
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}
TINY_OVERRIDES: dict[str, Any] = {
    "vision": {"layers": [1, 1, 1, 1], "width": 8, "heads": 2, "output_dim": 32, "image_size": [64, 32]},
    "text": {"pretrained": False, "bert": TINY_BERT, "tokenizer": MINILM},
    "tic": {"channels": 16, "se_reduction": 4},
    "iap": {"heads": 2},
}


def tiny_model(seed: int = 0, preset: str = "RN-tiny", **overrides: Any) -> PLIPModel:
    torch.manual_seed(seed)
    return create_model(preset, **merge_overrides(TINY_OVERRIDES, overrides))


@pytest.fixture(autouse=True, scope="module")
def single_thread() -> Iterator[None]:
    """One torch thread: on the shared 2-core machine, 2 threads under load run several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
