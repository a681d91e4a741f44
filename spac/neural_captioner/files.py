"""A trained captioner on disk, checked before it is loaded, and loaded for captioning.

A captioner directory holds ``config.json`` (:class:`~spac.neural_captioner.config.NeuralCaptionerConfig`),
``model.safetensors`` (float32 weights; the generator's output layer, tied to its token embeddings, is not
stored twice) and ``tokenizer/`` (the transformers tokenizer's own files). :func:`check_captioner` validates it
for the cost of reading the config and the weights' header (the launch-time check of a job);
:func:`load_captioner` gives a :class:`LoadedCaptioner`, which captions PIL images in either style.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

from common.devices import resolve_device
from common.digests import file_sha256, stable_int
from common.errors import error_line
from common.weights_header import WeightsHeaderError, parameter_count, read_header
from spac.attributes import Schema, load_schema
from spac.neural_captioner.config import CaptionerError, NeuralCaptionerConfig, check_labels
from spac.neural_captioner.model import NeuralCaptioner

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
TOKENIZER_CONFIG = "tokenizer_config.json"  # what every saved transformers tokenizer writes
TIED_OUTPUT = "generator.lm_head.weight"  # the generator's output layer, the token embeddings when tied
WEIGHT_DTYPES = ("BF16", "F16", "F32", "F64", "I64")  # floating weights and BatchNorm's step counter
# Twice GPT-2 XL (1.5B): what a weights file may hold, checked from its header before any model is built.
MAX_PARAMETERS = 3_000_000_000


def _stored(model: NeuralCaptioner) -> dict[str, torch.Tensor]:
    """The state dict as written: without the output layer when it is the token embeddings (safetensors
    refuses one tensor under two names)."""
    state = model.state_dict()
    if model.generator.config.tie_word_embeddings:
        state.pop(TIED_OUTPUT)
    return state


def save_captioner(model: NeuralCaptioner, tokenizer: Any, directory: str | Path) -> Path:
    """Write config.json, model.safetensors (float32) and tokenizer/ into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().float().cpu().contiguous() if v.is_floating_point() else v.cpu()
        for k, v in _stored(model).items()
    }
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(model.config.to_json(), encoding="utf-8")
    tokenizer.save_pretrained(str(directory / TOKENIZER_DIR))
    return directory


def _files(path: str | Path) -> Path:
    directory = Path(path)
    if not directory.is_dir():
        raise CaptionerError(f"{directory}: no captioner directory there")
    for name in (CONFIG_FILE, WEIGHTS_FILE, f"{TOKENIZER_DIR}/{TOKENIZER_CONFIG}"):
        if not (directory / name).is_file():
            raise CaptionerError(f"{directory}: not a captioner directory (it lacks {name})")
    return directory


def _read_config(config_file: Path) -> NeuralCaptionerConfig:
    try:
        text = config_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CaptionerError(f"{config_file}: not UTF-8 text") from None
    return NeuralCaptionerConfig.from_json(text, str(config_file))


def _check_header(weights_file: Path, expected: dict[str, list[int]]) -> None:
    try:
        header = read_header(weights_file)
    except WeightsHeaderError as exc:
        raise CaptionerError(f"{weights_file}: not a readable safetensors file ({exc.reason})") from None
    count = parameter_count(header)
    if count > MAX_PARAMETERS:
        raise CaptionerError(f"{weights_file}: holds {count:,} values, more than a captioner may ({MAX_PARAMETERS:,})")
    missing, unexpected = sorted(set(expected) - set(header)), sorted(set(header) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise CaptionerError(f"{weights_file}: weights do not match config.json ({detail})")
    for key, info in header.items():
        if info.dtype not in WEIGHT_DTYPES:
            raise CaptionerError(
                f"{weights_file}: {key} is stored as {info.dtype}, expected one of {', '.join(WEIGHT_DTYPES)}"
            )
        if list(info.shape) != expected[key]:
            raise CaptionerError(
                f"{weights_file}: {key} has shape {list(info.shape)}, config.json implies {expected[key]}"
            )


def _checked(path: str | Path, schema: Schema) -> tuple[Path, NeuralCaptionerConfig]:
    directory = _files(path)
    config = _read_config(directory / CONFIG_FILE)
    check_labels(config, schema, str(directory / CONFIG_FILE))
    with torch.device("meta"):  # shapes only: no memory, however large the config claims the model is
        skeleton = NeuralCaptioner(config, None, schema)
    _check_header(directory / WEIGHTS_FILE, {k: list(v.shape) for k, v in _stored(skeleton).items()})
    return directory, config


def check_captioner(path: str | Path, schema: Schema | None = None) -> None:
    """Check a captioner directory without loading it: its files are there, config.json is valid and made for
    the current schema, and the weights' header holds exactly the tensors that config implies; else a one-line
    CaptionerError naming the file."""
    _checked(path, schema if schema is not None else load_schema())


def captioner_files_sha256(path: str | Path) -> dict[str, str]:
    """sha256 of every file the captioner is made of (config.json, model.safetensors, tokenizer/...), by path
    relative to the directory, sorted."""
    directory = _files(path)
    files = [directory / CONFIG_FILE, directory / WEIGHTS_FILE]
    files += sorted(p for p in (directory / TOKENIZER_DIR).rglob("*") if p.is_file())
    return {p.relative_to(directory).as_posix(): file_sha256(p) for p in sorted(files)}


def load_captioner(
    path: str | Path, device: str | torch.device = "cpu", schema: Schema | None = None
) -> LoadedCaptioner:
    """Load a checked captioner directory onto ``device``, ready to caption."""
    schema = schema if schema is not None else load_schema()
    directory, config = _checked(path, schema)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory / TOKENIZER_DIR))
    except (OSError, ValueError) as exc:
        raise CaptionerError(f"{directory / TOKENIZER_DIR}: unreadable tokenizer ({error_line(exc)})") from None
    model = NeuralCaptioner(config, tokenizer, schema)
    try:
        state = load_file(str(directory / WEIGHTS_FILE))
    except (SafetensorError, OSError) as exc:
        raise CaptionerError(f"{directory / WEIGHTS_FILE}: unreadable weights ({error_line(exc)})") from None
    reference = model.state_dict()
    missing, _ = model.load_state_dict({k: v.to(reference[k].dtype) for k, v in state.items()}, strict=False)
    if set(missing) - {TIED_OUTPUT}:  # the header check makes this a bug, not bad input
        raise RuntimeError(f"weights missing after the header check: {sorted(missing)[:3]}")
    return LoadedCaptioner(model.to(resolve_device(device)).eval(), directory)


class LoadedCaptioner:
    """A loaded captioner: captions PIL images in one of its two styles (``style_names``)."""

    def __init__(self, model: NeuralCaptioner, path: Path) -> None:
        self.model, self.path = model, path
        self.style_names: tuple[str, ...] = tuple(model.config.style_names)
        self._files_sha256: dict[str, str] | None = None

    @property
    def files_sha256(self) -> dict[str, str]:
        if self._files_sha256 is None:
            self._files_sha256 = captioner_files_sha256(self.path)
        return self._files_sha256

    def describe(self) -> dict[str, Any]:
        """What identifies this captioner (JSON-ready, for job.json and reports)."""
        config = self.model.config
        return {
            "kind": "spac",
            "path": str(self.path),
            "files_sha256": self.files_sha256,
            "style_names": list(self.style_names),
            "backbone": config.pretrained_backbone or config.backbone_type,
            "generator": config.pretrained_generator or "gpt2 (trained from scratch)",
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """An image as the model's input ``[3, H, W]`` (for batching elsewhere)."""
        return self.model.preprocess(image)

    def caption_images(
        self,
        images: Sequence[Image.Image],
        style: int,
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        seed: int = 0,
        keys: Sequence[str] | None = None,
    ) -> list[str]:
        """One text per image in style ``style`` (0 or 1), in one batch: greedy at temperature 0; else
        sampled, image i seeded by (``seed``, ``keys[i]``) (its index when no keys are given), so its text does
        not depend on the other images of the batch."""
        if keys is not None and len(keys) != len(images):
            raise ValueError(f"{len(keys)} keys for {len(images)} images")
        if not images:
            return []
        names = keys if keys is not None else [str(i) for i in range(len(images))]
        seeds = [stable_int(seed, name, "neural caption", bits=63) for name in names]
        pixels = self.model.preprocess_batch(images)
        return self.model.generate(pixels, style, max_new_tokens, temperature, seeds)
