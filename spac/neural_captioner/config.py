"""What identifies a neural SPAC captioner: :class:`NeuralCaptionerConfig`, saved as its ``config.json``.

The visual backbone is the predictor's ResNet (``backbone_type`` ``"resnet"``: ``backbone`` holds ResNetConfig
keyword arguments, checked by :func:`spac.predictor.model.check_backbone`) or any transformers image model
(``backbone_type`` its ``model_type``, ``backbone`` its config's fields). The generator is GPT-2: ``generator``
holds GPT2Config keyword arguments. ``pretrained_backbone`` / ``pretrained_generator`` record the hub name or
local path a fresh model started from; a saved captioner is rebuilt from the config dicts and its own weights,
never downloaded. ``labels`` snapshots the six attribute groups' labels (index 0 ``unknown``), so a captioner
trained on another schema is refused instead of mis-trained.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from transformers import AutoConfig, GPT2Config

from common.config_files import is_int, parse_config, rgb_numbers
from common.errors import InputError, error_line
from common.imaging import IMAGE_HEIGHT, IMAGE_WIDTH, SYNTH_PEDES_MEAN, SYNTH_PEDES_STD
from spac.attributes import Schema
from spac.predictor.model import BACKBONE_PRESETS, PredictorError, check_backbone, schema_labels

ATTRIBUTE_WEIGHT = 0.15  # the paper's weight of the attribute loss beside the captions' language-model loss
RESNET = "resnet"
# Named GPT-2 shapes (GPT2Config fields) for a generator trained from scratch; a hub name or path loads GPT-2.
GENERATOR_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 128},
    "small": {"n_layer": 4, "n_head": 4, "n_embd": 256, "n_positions": 256},
}
# Bounds that keep a hand-edited config from asking for minutes of building or gigabytes of memory
# (GPT-2 XL: 48 layers of 1,600; a rendered-people captioner needs a few tokens of prefix per branch).
MAX_PREFIX_LENGTH = 64
MAX_BANDS = 64
MAX_LAYERS = 64
MAX_WIDTH = 8192
MAX_VOCABULARY = 1_000_000
MAX_POSITIONS = 65_536
MAX_IMAGE_SIDE = 4096
_GENERATOR_SHAPE = ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size")
_GENERATOR_BOUNDS = {
    "n_layer": MAX_LAYERS,
    "n_head": MAX_WIDTH,
    "n_embd": MAX_WIDTH,
    "n_positions": MAX_POSITIONS,
    "vocab_size": MAX_VOCABULARY,
}


def preset_generator(name: str, vocab_size: int, eos_token_id: int) -> dict[str, Any]:
    """GPT2Config fields of a preset shape for a tokenizer of ``vocab_size`` tokens whose end-of-text token is
    ``eos_token_id`` (GPT-2 begins and ends a text with it)."""
    if name not in GENERATOR_PRESETS:
        raise InputError(f"no generator preset {name!r} (choose from {', '.join(GENERATOR_PRESETS)})")
    return {
        **GENERATOR_PRESETS[name],
        "vocab_size": vocab_size,
        "bos_token_id": eos_token_id,
        "eos_token_id": eos_token_id,
    }


class CaptionerError(InputError):
    """A captioner directory whose config.json, weights or tokenizer are malformed or do not match."""


@dataclass(frozen=True)
class NeuralCaptionerConfig:
    """Everything needed to rebuild a captioner. ``branches`` = the groups of ``labels`` (in schema order) plus
    one sentence branch, each ``prefix_length`` tokens of the generator's width; ``bands`` horizontal stripes of
    the backbone's last feature map feed them (as the predictor's heads)."""

    schema_version: int
    labels: dict[str, list[str]]
    style_names: tuple[str, str]
    generator: dict[str, Any]
    backbone: dict[str, Any] = field(default_factory=lambda: dict(BACKBONE_PRESETS["tiny"]))
    backbone_type: str = RESNET
    pretrained_backbone: str | None = None
    pretrained_generator: str | None = None
    prefix_length: int = 4
    bands: int = 4
    image_size: tuple[int, int] = (IMAGE_HEIGHT, IMAGE_WIDTH)  # height, width
    mean: tuple[float, float, float] = SYNTH_PEDES_MEAN
    std: tuple[float, float, float] = SYNTH_PEDES_STD
    attribute_weight: float = ATTRIBUTE_WEIGHT
    training: dict[str, Any] = field(default_factory=dict)  # how it was trained (informational)

    @classmethod
    def for_schema(
        cls, schema: Schema, style_names: tuple[str, str], generator: Mapping[str, Any], **kwargs: Any
    ) -> NeuralCaptionerConfig:
        return cls(
            schema_version=schema.version,
            labels=schema_labels(schema),
            style_names=tuple(style_names),
            generator=dict(generator),
            **kwargs,
        )

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self.labels)

    @property
    def prefix_tokens(self) -> int:
        """Generator positions the image takes: one prefix per group plus the sentence branch's."""
        return (len(self.labels) + 1) * self.prefix_length

    def generator_config(self) -> GPT2Config:
        return GPT2Config(**self.generator)

    def backbone_config(self) -> Any:
        """The transformers config of the visual backbone."""
        return AutoConfig.for_model(self.backbone_type, **self.backbone)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "<config>") -> NeuralCaptionerConfig:
        """Parse and check a config.json; CaptionerError naming ``source`` and the first bad field."""
        required = ("schema_version", "labels", "style_names", "generator")
        data = parse_config(text, source, required, _RULES, CaptionerError)
        tuples = ("style_names", "image_size", "mean", "std")
        config = cls(**{k: tuple(v) if k in tuples else v for k, v in data.items()})
        config.check(source)
        return config

    def check(self, source: str = "<config>") -> None:
        """The backbone and generator dicts build transformers configs within bounds."""
        if self.backbone_type == RESNET:
            try:
                check_backbone(self.backbone, source)
            except PredictorError as exc:  # the same one line, as this file's error
                raise CaptionerError(str(exc)) from None
        else:
            _built(self.backbone_config, source, "backbone")
        generator = _built(self.generator_config, source, "generator")
        for name in _GENERATOR_SHAPE:
            value = getattr(generator, name)
            if not is_int(value, high=_GENERATOR_BOUNDS[name]):
                raise CaptionerError(
                    f"{source}: 'generator.{name}' must be an integer from 1 to {_GENERATOR_BOUNDS[name]}"
                )
        if generator.n_embd % generator.n_head:
            raise CaptionerError(f"{source}: 'generator.n_embd' must be a multiple of 'generator.n_head'")
        if generator.n_positions <= self.prefix_tokens:
            raise CaptionerError(
                f"{source}: 'generator.n_positions' ({generator.n_positions}) leaves no room for text after the "
                f"image's {self.prefix_tokens} prefix tokens"
            )


def _built(make: Any, source: str, name: str) -> Any:
    try:
        return make()
    except (TypeError, ValueError, KeyError) as exc:
        raise CaptionerError(f"{source}: {name!r} is not a valid transformers config ({error_line(exc)})") from None


def check_labels(config: NeuralCaptionerConfig, schema: Schema, source: str) -> None:
    """Refuse a captioner whose label snapshot differs from the schema it would train or read with."""
    current = schema_labels(schema)
    for group in sorted(set(config.labels) | set(current)):
        if config.labels.get(group) != current.get(group):
            raise CaptionerError(
                f"{source}: made for attribute schema version {config.schema_version}, whose labels for group "
                f"{group!r} differ from the current schema (version {schema.version}); retrain the captioner"
            )


def _style_names(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, str) and v.strip() for v in value)
        and value[0] != value[1]
    )


def _labels(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(
            isinstance(labels, list) and labels and all(isinstance(s, str) for s in labels) for labels in value.values()
        )
    )


# field -> (check, what it must be)
_RULES: dict[str, tuple[Any, str]] = {
    "schema_version": (is_int, "a positive integer"),
    "labels": (_labels, "a JSON object mapping each group to its non-empty list of labels"),
    "style_names": (_style_names, "two different non-empty names"),
    "generator": (lambda v: isinstance(v, dict), "a JSON object of GPT2Config fields"),
    "backbone": (lambda v: isinstance(v, dict), "a JSON object of the backbone's config fields"),
    "backbone_type": (lambda v: isinstance(v, str) and v.strip(), "a transformers model_type such as 'resnet'"),
    "pretrained_backbone": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "pretrained_generator": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "prefix_length": (
        lambda v: is_int(v, high=MAX_PREFIX_LENGTH),
        f"a positive integer (at most {MAX_PREFIX_LENGTH})",
    ),
    "bands": (lambda v: is_int(v, high=MAX_BANDS), f"a positive integer (at most {MAX_BANDS})"),
    "image_size": (
        lambda v: isinstance(v, list) and len(v) == 2 and all(is_int(s, high=MAX_IMAGE_SIDE) for s in v),
        f"[height, width]: two integers from 1 to {MAX_IMAGE_SIDE}",
    ),
    "mean": (rgb_numbers, "a list of three finite numbers"),
    "std": (lambda v: rgb_numbers(v, positive=True), "a list of three positive numbers"),
    "attribute_weight": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0,
        "a finite number >= 0",
    ),
    "training": (lambda v: isinstance(v, dict), "a JSON object"),
}
