"""Checkpoints: the released ``PLIP_MRN50.pth.tar`` format (read and write) and our own resumable
directory (``model.safetensors`` + ``config.json`` + ``tokenizer/`` [+ ``optimizer.pt`` + ``trainer_state.json``]);
:func:`load_checkpoint_model` reads either.

The released file is a torch pickle of ``{"ImgEncoder_state_dict": ..., "TxtEncoder_state_dict": ...}``;
text keys are ``encoder.`` + a BertModel state dict. Keys that are non-persistent buffers of our modules
(``encoder.embeddings.position_ids`` saved by older transformers) are tolerated; any other difference is
an error that names the first few missing / unexpected / mis-shaped keys and their counts.
"""
from __future__ import annotations

import base64
import errno
import json
import pickle
import random
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import safetensors.torch
import torch
from torch import nn

from plip.config import MINILM, PLIPConfig
from plip.factory import create_model, get_config
from plip.model import PLIPModel

IMAGE_KEY = "ImgEncoder_state_dict"
TEXT_KEY = "TxtEncoder_state_dict"
MODEL_FILE, CONFIG_FILE, TOKENIZER_DIR = "model.safetensors", "config.json", "tokenizer"
OPTIMIZER_FILE, TRAINER_STATE_FILE = "optimizer.pt", "trainer_state.json"
_SHOWN = 5  # keys listed per kind of mismatch


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model or is not in the expected format."""


# --- the released format -------------------------------------------------------------------------


def _non_persistent_buffers(module: nn.Module) -> set[str]:
    return {
        f"{prefix}.{name}" if prefix else name
        for prefix, sub in module.named_modules()
        for name in getattr(sub, "_non_persistent_buffers_set", ())
    }


def _describe(kind: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN]) + (", ..." if len(keys) > _SHOWN else "")
    return f"{len(keys)} {kind} key{'s' if len(keys) != 1 else ''} ({shown})"


def _load_matching(module: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``module`` only if keys and shapes match exactly (tolerated buffers aside)."""
    expected = module.state_dict()
    tolerated = _non_persistent_buffers(module)
    state = {k: v for k, v in state.items() if k not in tolerated}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [
        f"{k} {list(state[k].shape)} vs model {list(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = [
        _describe(kind, keys)
        for kind, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mis_shaped))
        if keys
    ]
    if problems:
        raise CheckpointError(f"{where} does not match the model: " + "; ".join(problems))
    module.load_state_dict(state)


def load_released(model: PLIPModel, path: str | Path) -> None:
    """Load a ``PLIP_MRN50.pth.tar``-style file into ``model``'s image and text encoders."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such checkpoint file", str(path))
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({str(exc).splitlines()[0]})") from None
    if not isinstance(checkpoint, dict) or not {IMAGE_KEY, TEXT_KEY} <= checkpoint.keys():
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{path}: expected a dict with {IMAGE_KEY} and {TEXT_KEY}, found {found}")
    _load_matching(model.image_encoder, checkpoint[IMAGE_KEY], f"{path}: {IMAGE_KEY}")
    _load_matching(model.text_encoder, checkpoint[TEXT_KEY], f"{path}: {TEXT_KEY}")


def save_released(model: PLIPModel, path: str | Path) -> None:
    """Write the encoders in the released format (a projection, present only when sizes differ, is kept)."""
    torch.save(
        {IMAGE_KEY: model.image_encoder.state_dict(), TEXT_KEY: model.text_encoder.state_dict()}, Path(path)
    )


# --- our own resumable checkpoints ---------------------------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU) generator states as JSON-ready values."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii"),
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(state["torch"])), dtype=torch.uint8))


@dataclass
class TrainerState:
    """Where training stands: enough to resume exactly (the data position is the loader's own record)."""

    step: int = 0
    epoch: int = 0
    data_position: Any = None
    rng: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _portable_config(model: PLIPModel) -> dict[str, Any]:
    """The model's config, rebuilt from the saved weights: no pretrained files needed at load time."""
    config = model.config.to_dict()
    config["text"].update(pretrained=False, bert=model.text_encoder.bert_config(), tokenizer=None)
    return config


def save_checkpoint(
    directory: str | Path,
    model: PLIPModel,
    optimizer: torch.optim.Optimizer | None = None,
    trainer_state: TrainerState | None = None,
) -> Path:
    """Write the checkpoint into ``directory``; an old one is swapped out only once the new one is complete."""
    directory = Path(directory)
    staging = directory.with_name(directory.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    safetensors.torch.save_model(model, str(staging / MODEL_FILE))
    (staging / CONFIG_FILE).write_text(json.dumps(_portable_config(model), indent=2) + "\n", encoding="utf-8")
    model.tokenizer.save_pretrained(str(staging / TOKENIZER_DIR))
    if optimizer is not None:
        torch.save(optimizer.state_dict(), staging / OPTIMIZER_FILE)
    if trainer_state is not None:
        (staging / TRAINER_STATE_FILE).write_text(json.dumps(asdict(trainer_state)) + "\n", encoding="utf-8")
    # Two renames, then the slow delete: a crash leaves the old checkpoint at worst under ``.old``.
    retired = directory.with_name(directory.name + ".old")
    shutil.rmtree(retired, ignore_errors=True)
    if directory.exists():
        directory.rename(retired)
    staging.rename(directory)
    shutil.rmtree(retired, ignore_errors=True)
    return directory


def _require(path: Path) -> Path:
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: not a PLIP checkpoint directory (missing {path.name})")
    return path


def _read_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (which must exist), or a one-line CheckpointError."""
    try:
        data = json.loads(_require(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> PLIPModel:
    """Rebuild the model from ``config.json`` + ``tokenizer/`` and load ``model.safetensors`` (strict), in eval mode."""
    directory = Path(directory)
    config = PLIPConfig.from_dict(_read_object(directory / CONFIG_FILE))
    config.text.tokenizer = str(directory / TOKENIZER_DIR)
    model = PLIPModel(config)
    missing, unexpected = safetensors.torch.load_model(model, str(_require(directory / MODEL_FILE)), strict=False)
    if missing or unexpected:
        problems = [_describe(kind, sorted(keys)) for kind, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise CheckpointError(f"{directory / MODEL_FILE} does not match its config: " + "; ".join(problems))
    return model.to(device).eval()


def load_training_state(directory: str | Path, optimizer: torch.optim.Optimizer | None = None) -> TrainerState:
    """Read ``trainer_state.json`` (and load ``optimizer.pt`` into ``optimizer`` when given)."""
    directory = Path(directory)
    path = directory / TRAINER_STATE_FILE
    state = _read_object(path)
    unknown = sorted(set(state) - {f.name for f in fields(TrainerState)})
    if unknown:
        raise CheckpointError(f"{path}: unknown key(s) {unknown}")
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(_require(directory / OPTIMIZER_FILE), map_location="cpu", weights_only=True))
    return TrainerState(**state)


def load_checkpoint_model(path: str | Path, device: str | torch.device = "cpu", preset: str = "RN50",
                          tokenizer: str | None = None) -> PLIPModel:
    """Our checkpoint directory (or its ``model.safetensors``) or a released-format torch file (``*.pth.tar``).

    A released file holds only encoder weights: the architecture comes from the preset ``preset`` (TIC / IAP
    heads left out), the text encoder is built empty when the preset describes it, and the tokenizer is
    ``tokenizer`` (default: the bundled MiniLM's, the bert-base-uncased WordPiece vocabulary).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir() or path.suffix == ".safetensors":
        return load_model(path if path.is_dir() else path.parent, device)
    text: dict[str, Any] = {"tokenizer": tokenizer or MINILM}
    if get_config(preset).text.bert:
        text["pretrained"] = False  # every text weight comes from the file
    model = create_model(preset, text=text, tic={"weight": 0}, iap={"weight": 0})
    load_released(model, path)
    return model.to(device).eval()
