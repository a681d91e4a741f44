"""The attribute predictor: a person image -> one distribution per attribute group, decoded to values.

Backbone: a transformers ``ResNetModel`` (built from a small config, or loaded ``from_pretrained``).
Heads: one per group on the pooled features; the last feature map is average-pooled into
``bands`` horizontal stripes (PCB-style), concatenated, so a head can tell the torso from the legs. Each head is
factorised so it learns from few samples: the logit of a value ``colour item`` is
``item_logit[item] + colour_logit[colour] + bias[value]`` (uncoloured items and ``unknown`` get no colour term), and
the group's output is the softmax over all its labels (``AttributeGroup.labels``, index 0 = ``unknown``). A colour
seen with one item thus transfers to every other item of the group, while the joint bias can still model rare pairs.

A trained predictor is a directory holding ``config.json`` (:class:`PredictorConfig`) and
``model.safetensors``; :func:`load_predictor` with no path loads the bundled demo model, and
:func:`check_predictor` validates a directory (config and weights header) without loading it.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import ResNetConfig, ResNetModel
from transformers.activations import ACT2FN

from common.config_files import check_fields, is_int, parse_config, rgb_numbers
from common.devices import resolve_device
from common.errors import InputError, error_line
from common.imaging import (
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    SYNTH_PEDES_MEAN,
    SYNTH_PEDES_STD,
    normalise,
    normalised_tensor,
    pixel_tensor,
)
from common.weights_header import parameter_count, read_header
from spac.attributes import UNKNOWN, AttributeGroup, Schema, load_schema

DEFAULT_PREDICTOR_DIR = Path(__file__).resolve().parents[1] / "assets" / "default_predictor"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# What save_predictor writes (floating weights in the dtype asked for, BatchNorm's int64 step counter); a
# packed, 8-bit or complex tensor would not cast back to float32 (or not without losing its meaning).
WEIGHT_DTYPES = ("BF16", "F16", "F32", "F64", "I64")

# Named ResNet shapes for ResNetConfig; "tiny" is the bundled demo model's.
BACKBONE_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"depths": [1, 1, 1, 1], "hidden_sizes": [16, 32, 64, 128], "embedding_size": 16, "layer_type": "basic"},
    "small": {"depths": [1, 1, 1, 1], "hidden_sizes": [32, 64, 128, 256], "embedding_size": 32, "layer_type": "basic"},
    "resnet18": {
        "depths": [2, 2, 2, 2],
        "hidden_sizes": [64, 128, 256, 512],
        "embedding_size": 64,
        "layer_type": "basic",
    },
    "resnet50": {
        "depths": [3, 4, 6, 3],
        "hidden_sizes": [256, 512, 1024, 2048],
        "embedding_size": 64,
        "layer_type": "bottleneck",
    },
}


@dataclass
class PredictorConfig:
    """Everything needed to rebuild a predictor; saved as config.json next to the weights.

    ``backbone`` holds ``ResNetConfig`` keyword arguments. ``pretrained`` records the
    ``from_pretrained`` name or path the backbone started from (provenance only: a saved predictor
    is rebuilt from ``backbone`` and its own weights, never downloaded). ``labels`` is a snapshot of
    every group's labels so a model trained on another schema is refused instead of mis-decoded.
    """

    backbone: dict[str, Any]
    schema_version: int
    labels: dict[str, list[str]]
    pretrained: str | None = None
    image_size: tuple[int, int] = (IMAGE_HEIGHT, IMAGE_WIDTH)  # height, width
    mean: tuple[float, float, float] = SYNTH_PEDES_MEAN
    std: tuple[float, float, float] = SYNTH_PEDES_STD
    bands: int = 4  # horizontal stripes the last feature map is pooled into (head, torso, legs, feet)
    training: dict[str, Any] = field(default_factory=dict)  # how it was trained (informational)

    @classmethod
    def for_schema(
        cls, schema: Schema, backbone: Mapping[str, Any] | None = None, pretrained: str | None = None, **kwargs: Any
    ) -> PredictorConfig:
        return cls(
            backbone=dict(backbone if backbone is not None else BACKBONE_PRESETS["tiny"]),
            schema_version=schema.version,
            labels=schema_labels(schema),
            pretrained=pretrained,
            **kwargs,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "<config>") -> PredictorConfig:
        """Parse and check a config.json; PredictorError naming ``source`` and the first bad field."""
        data = parse_config(text, source, ("backbone", "labels", "schema_version"), CONFIG_RULES, PredictorError)
        check_backbone(data["backbone"], source)
        return cls(**{k: tuple(v) if k in ("image_size", "mean", "std") else v for k, v in data.items()})


# ---- config.json checks: a hand-edited or hostile file is refused in one line, before any model is built ----

# Deeper than any published ResNet (ResNet-152 has 36 blocks in a stage, 4 stages, 2048 channels): keeps a bad
# config from taking minutes to build (1,000 stages of 100 blocks took 159 s and 4.9 GB before these bounds).
# Corpus images are 256x128: a larger input side would only cost memory at predict time.
MAX_STAGE_DEPTH = 100
MAX_STAGES = 8
MAX_CHANNELS = 8192
MAX_BANDS = 64
MAX_IMAGE_SIDE = 4096
# Eight times ResNet-50's 25M: what the weights file may hold (0.8 GB as float32), checked from its header
# before any model is built, so a config matched by a huge (even sparse) file cannot exhaust memory.
MAX_PARAMETERS = 200_000_000


class PredictorError(InputError):
    """A predictor directory whose config.json or weights are malformed, out of bounds or do not match."""


def _ints(value: Any, count: int | None = None, high: float = float("inf")) -> bool:
    """A non-empty JSON list of at most :data:`MAX_STAGES` integers in [1, high], of ``count`` entries when given."""
    return (
        isinstance(value, list)
        and 1 <= len(value) <= MAX_STAGES
        and (count is None or len(value) == count)
        and all(is_int(v, high=high) for v in value)
    )


def _label_lists(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(labels, list) and all(isinstance(s, str) for s in labels) for labels in value.values()
    )


# field -> (check, what it must be)
CONFIG_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "backbone": (lambda v: isinstance(v, dict), "a JSON object of ResNetConfig fields"),
    "schema_version": (is_int, "a positive integer"),
    "labels": (_label_lists, "a JSON object mapping each group to its list of labels"),
    "pretrained": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "image_size": (lambda v: _ints(v, 2, MAX_IMAGE_SIDE), f"[height, width]: two integers from 1 to {MAX_IMAGE_SIDE}"),
    "mean": (rgb_numbers, "a list of three finite numbers"),
    "std": (lambda v: rgb_numbers(v, positive=True), "a list of three positive numbers"),
    "bands": (lambda v: is_int(v, high=MAX_BANDS), f"a positive integer (at most {MAX_BANDS})"),
    "training": (lambda v: isinstance(v, dict), "a JSON object"),
}
BACKBONE_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "depths": (
        lambda v: _ints(v, high=MAX_STAGE_DEPTH),
        f"a list of integers from 1 to {MAX_STAGE_DEPTH}, one per stage (at most {MAX_STAGES})",
    ),
    "hidden_sizes": (
        lambda v: _ints(v, high=MAX_CHANNELS),
        f"a list of integers from 1 to {MAX_CHANNELS}, one per stage (at most {MAX_STAGES})",
    ),
    "embedding_size": (lambda v: is_int(v, high=MAX_CHANNELS), f"a positive integer (at most {MAX_CHANNELS})"),
    "layer_type": (lambda v: v in ResNetConfig.layer_types, " or ".join(map(repr, ResNetConfig.layer_types))),
    "hidden_act": (lambda v: isinstance(v, str) and v in ACT2FN, "an activation name known to transformers"),
    "num_channels": (lambda v: is_int(v, 3, 3), "3 (RGB input)"),
    "downsample_in_first_stage": (lambda v: isinstance(v, bool), "true or false"),
    "downsample_in_bottleneck": (lambda v: isinstance(v, bool), "true or false"),
}


def check_backbone(backbone: Mapping[str, Any], source: str) -> None:
    """ResNetConfig keyword arguments within bounds (a PredictorError naming ``source`` and the field); the
    neural captioner checks its ResNet backbone with it too."""
    check_fields(backbone, BACKBONE_RULES, source, "backbone.", PredictorError)
    defaults = ResNetConfig()  # an absent field takes transformers' default, as ResNetConfig(**backbone) will
    depths = backbone.get("depths", defaults.depths)
    hidden_sizes = backbone.get("hidden_sizes", defaults.hidden_sizes)
    if len(depths) != len(hidden_sizes):
        raise PredictorError(
            f"{source}: 'backbone.depths' ({len(depths)} stages) and 'backbone.hidden_sizes' "
            f"({len(hidden_sizes)}) must have one entry per stage"
        )


@dataclass(frozen=True)
class Prediction:
    """One image's attributes (group -> phrase or ``unknown``) and the probability of the top value.

    When ``min_confidence`` turned a group into ``unknown``, its confidence is still the probability of
    the value that was rejected, so a reader can see why. ``embedding`` (only with
    ``predict_tensors(..., with_embeddings=True)``) is the image's appearance vector: the global average
    pool of the backbone's last feature map (C floats, float32, L2-normalised), used to clean identities.
    """

    attributes: dict[str, str]
    confidences: dict[str, float]
    embedding: Any = field(default=None, compare=False, repr=False)  # numpy float32 [C] or None


def schema_labels(schema: Schema) -> dict[str, list[str]]:
    return {g.name: list(g.labels) for g in schema.groups}


def check_schema(config: PredictorConfig, schema: Schema, source: str = "predictor") -> None:
    """Refuse a model whose label snapshot differs from the schema it is about to decode with."""
    current = schema_labels(schema)
    if config.labels == current:
        return
    for group in sorted(set(config.labels) | set(current)):
        if config.labels.get(group) != current.get(group):
            raise PredictorError(
                f"{source}: trained on attribute schema version {config.schema_version}, whose labels for group "
                f"{group!r} differ from the current schema (version {schema.version}); retrain the predictor"
                + (" or migrate it (spac migrate-predictor)" if config.schema_version < schema.version else "")
            )


class FactorisedGroupHead(nn.Module):
    """Logits over one group's labels: item logit + colour logit + a bias per (item, colour) value."""

    def __init__(self, group: AttributeGroup, in_features: int):
        super().__init__()
        item_index = {item.name: i + 1 for i, item in enumerate(group.items)}  # 0 = unknown
        colours = sorted({v.colour for v in group.values if v.colour is not None})
        colour_index = {c: i for i, c in enumerate(colours)}
        no_colour = len(colours)  # points at a constant zero column
        self.item = nn.Linear(in_features, len(group.items) + 1)
        self.colour = nn.Linear(in_features, len(colours)) if colours else None
        self.bias = nn.Parameter(torch.zeros(len(group.labels)))
        self.register_buffer(
            "label_item", torch.tensor([0] + [item_index[v.item] for v in group.values]), persistent=False
        )
        self.register_buffer(
            "label_colour",
            torch.tensor(
                [no_colour] + [colour_index[v.colour] if v.colour is not None else no_colour for v in group.values]
            ),
            persistent=False,
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.item(features)[:, self.label_item] + self.bias
        colour = features.new_zeros(features.shape[0], 1)
        if self.colour is not None:
            colour = torch.cat([self.colour(features), colour], dim=1)
        return logits + colour[:, self.label_colour]


class AttributePredictor(nn.Module):
    """ResNet backbone + one factorised head per attribute group; ``forward`` returns group -> logits."""

    def __init__(self, config: PredictorConfig, schema: Schema | None = None, backbone: ResNetModel | None = None):
        super().__init__()
        self.schema = schema if schema is not None else load_schema()
        check_schema(config, self.schema)
        self.config = config
        self.backbone = backbone if backbone is not None else ResNetModel(ResNetConfig(**config.backbone))
        width = self.backbone.config.hidden_sizes[-1] * config.bands
        self.heads = nn.ModuleDict({g.name: FactorisedGroupHead(g, width) for g in self.schema.groups})
        self.min_confidence = 0.0

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head_logits(self.backbone(pixel_values=pixel_values).last_hidden_state)

    def head_logits(self, feature_map: torch.Tensor) -> dict[str, torch.Tensor]:
        """Group -> logits from the backbone's last feature map ``[N, C, h, w]``."""
        # Stripe pooling keeps where a colour was seen, so "red" on the torso and on the legs differ.
        features = nn.functional.adaptive_avg_pool2d(feature_map, (self.config.bands, 1)).flatten(1)
        return {name: head(features) for name, head in self.heads.items()}

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """A PIL image as this model's input: float32 ``[3, H, W]`` at its image size and normalisation."""
        return normalised_tensor(image, self.config.image_size, mean=self.config.mean, std=self.config.std)

    def preprocess_batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images as one input batch ``[N, 3, H, W]``, equal to stacking :meth:`preprocess` of each, with
        the float work done once for the batch."""
        pixels = torch.stack([pixel_tensor(image, self.config.image_size) for image in images])
        return normalise(pixels, self.config.mean, self.config.std)

    def predict_tensors(
        self, batch: torch.Tensor, min_confidence: float | None = None, *, with_embeddings: bool = False
    ) -> list[Prediction]:
        """Predict a batch of preprocessed images ``[N, 3, H, W]``; ``with_embeddings`` also fills each
        prediction's ``embedding`` (global average pool of the last feature map, L2-normalised)."""
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a batch of shape [N, 3, H, W], got {list(batch.shape)}")
        self.eval()
        embeddings = None
        with torch.inference_mode():
            pixels = batch.to(self.device, torch.float32)
            if with_embeddings:
                feature_map = self.backbone(pixel_values=pixels).last_hidden_state
                logits = self.head_logits(feature_map)
                pooled = feature_map.float().mean(dim=(2, 3))
                embeddings = nn.functional.normalize(pooled, dim=1).cpu().numpy()
            else:
                logits = self(pixels)
            probabilities = {g: torch.softmax(v.float(), dim=1).cpu() for g, v in logits.items()}
        threshold = self.min_confidence if min_confidence is None else min_confidence
        predictions = decode(probabilities, self.config.labels, threshold)
        if embeddings is None:
            return predictions
        return [replace(p, embedding=e) for p, e in zip(predictions, embeddings)]

    def predict(
        self, images: Sequence[Image.Image], batch_size: int = 32, min_confidence: float | None = None
    ) -> list[Prediction]:
        """Predict PIL images of any size and mode, ``batch_size`` at a time, in input order."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        predictions: list[Prediction] = []
        for start in range(0, len(images), batch_size):
            predictions += self.predict_tensors(
                self.preprocess_batch(images[start : start + batch_size]), min_confidence
            )
        return predictions

    def save(self, directory: str | Path, dtype: torch.dtype = torch.float32) -> Path:
        return save_predictor(self, directory, dtype)


def decode(
    probabilities: Mapping[str, torch.Tensor], labels: Mapping[str, Sequence[str]], min_confidence: float = 0.0
) -> list[Prediction]:
    """Turn group -> ``[N, n_labels]`` probabilities into N predictions (argmax, its probability)."""
    tops = {g: p.max(dim=1) for g, p in probabilities.items()}
    count = next(iter(tops.values())).values.shape[0] if tops else 0
    predictions = []
    for row in range(count):
        attributes, confidences = {}, {}
        for group, top in tops.items():
            confidence = float(top.values[row])
            value = labels[group][int(top.indices[row])]
            attributes[group] = value if confidence >= min_confidence else UNKNOWN
            confidences[group] = confidence
        predictions.append(Prediction(attributes, confidences))
    return predictions


def build_predictor(config: PredictorConfig, schema: Schema | None = None) -> AttributePredictor:
    """A fresh predictor; with ``config.pretrained`` the backbone starts from those weights (name or path)."""
    if config.pretrained is None:
        return AttributePredictor(config, schema)
    try:
        backbone = ResNetModel.from_pretrained(config.pretrained)
    except OSError as exc:
        raise InputError(f"cannot load a pretrained ResNet from {config.pretrained!r}: {error_line(exc)}") from None
    config.backbone = {
        k: backbone.config.to_dict()[k]
        for k in (
            "depths",
            "hidden_sizes",
            "embedding_size",
            "layer_type",
            "hidden_act",
            "downsample_in_first_stage",
            "downsample_in_bottleneck",
            "num_channels",
        )
    }
    return AttributePredictor(config, schema, backbone)


def save_predictor(predictor: AttributePredictor, directory: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write config.json + model.safetensors (floating weights stored as ``dtype``; loading casts back)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in predictor.state_dict().items()
    }
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(predictor.config.to_json(), encoding="utf-8")
    return directory


def _predictor_files(path: str | Path | None) -> tuple[Path, Path]:
    """(config.json, model.safetensors) of a predictor directory (None = the bundled demo model)."""
    directory = Path(path) if path is not None else DEFAULT_PREDICTOR_DIR
    if not directory.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no predictor directory", str(directory))
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise FileNotFoundError(errno.ENOENT, f"predictor directory lacks {name}", str(directory / name))
    return directory / CONFIG_FILE, directory / WEIGHTS_FILE


def _read_config(config_file: Path) -> PredictorConfig:
    try:
        text = config_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PredictorError(f"{config_file}: not UTF-8 text") from None
    return PredictorConfig.from_json(text, str(config_file))


def _weight_header(weights_file: Path) -> dict[str, tuple[str, list[int]]]:
    """Tensor name -> (dtype, shape) from the safetensors header; no tensor is read. A file holding more than
    :data:`MAX_PARAMETERS` values is refused here, before any model is built."""
    header = read_header(weights_file)
    count = parameter_count(header)
    if count > MAX_PARAMETERS:
        raise PredictorError(
            f"{weights_file}: holds {count:,} values, more than a predictor may have ({MAX_PARAMETERS:,})"
        )
    return {name: (info.dtype, list(info.shape)) for name, info in header.items()}


def _check_header(
    weights_file: Path, header: Mapping[str, tuple[str, list[int]]], expected: Mapping[str, list[int]]
) -> None:
    missing, unexpected = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise PredictorError(f"{weights_file}: weights do not match config.json ({detail})")
    for key, (dtype, shape) in header.items():
        if dtype not in WEIGHT_DTYPES:
            raise PredictorError(
                f"{weights_file}: {key} is stored as {dtype}, expected one of {', '.join(WEIGHT_DTYPES)}"
            )
        if shape != expected[key]:
            raise PredictorError(f"{weights_file}: {key} has shape {shape}, config.json implies {expected[key]}")


def _checked_config(path: str | Path | None, schema: Schema) -> tuple[PredictorConfig, Path]:
    """The directory's validated config and its weights file, whose header matches that config."""
    config_file, weights_file = _predictor_files(path)
    config = _read_config(config_file)
    check_schema(config, schema, str(config_file))
    header = _weight_header(weights_file)
    with torch.device("meta"):  # shapes only: no memory, however large the config claims the model is
        skeleton = AttributePredictor(config, schema)
    _check_header(weights_file, header, {k: list(v.shape) for k, v in skeleton.state_dict().items()})
    return config, weights_file


def check_predictor(path: str | Path | None = None, schema: Schema | None = None) -> None:
    """Check a predictor directory without loading its weights: its config.json, and that the
    model.safetensors header holds exactly the tensors that config implies. PredictorError names the bad file;
    FileNotFoundError when the directory or one of its files is missing."""
    _checked_config(path, schema if schema is not None else load_schema())


def load_predictor(
    path: str | Path | None = None,
    device: str | torch.device = "cpu",
    schema: Schema | None = None,
    min_confidence: float = 0.0,
) -> AttributePredictor:
    """Load a saved predictor directory (None = the bundled demo model) onto ``device``, ready for inference."""
    schema = schema if schema is not None else load_schema()
    config, weights_file = _checked_config(path, schema)
    model = AttributePredictor(config, schema)
    try:
        state = load_file(str(weights_file))
    except (SafetensorError, OSError) as exc:
        raise PredictorError(f"{weights_file}: unreadable weights ({error_line(exc)})") from None
    reference = model.state_dict()
    model.load_state_dict({k: v.to(reference[k].dtype) for k, v in state.items()})
    model.min_confidence = min_confidence
    return model.to(resolve_device(device)).eval()
