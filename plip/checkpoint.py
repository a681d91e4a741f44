"""Checkpoints: the released ``PLIP_MRN50.pth.tar`` format (read and write) and our own resumable
directory (``model.safetensors`` + ``config.json`` + ``tokenizer/`` [+ ``optimizer.pt`` + ``trainer_state.json``]);
:func:`load_checkpoint_model` reads either.

The released file is a torch pickle of ``{"ImgEncoder_state_dict": ..., "TxtEncoder_state_dict": ...}``;
text keys are ``encoder.`` + a BertModel state dict. Keys that are non-persistent buffers of our modules
(``encoder.embeddings.position_ids`` saved by older transformers) are tolerated; any other difference is
an error that names the first few missing / unexpected / mis-shaped keys and their counts.

Every file is read through one guard: torch files only by :func:`load_torch_file` (``weights_only=True``,
never a pickle's code), safetensors files by :func:`load_weights`, and a text model named by a checkpoint's
``config.json`` only from safetensors weights. A file that is missing, empty, damaged or of the wrong shape
is a one-line :class:`CheckpointError` naming it (torch's advice to load with ``weights_only=False`` is
never repeated).
"""

from __future__ import annotations

import errno
import json
import pickle
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn
from transformers import AutoConfig

from common.errors import InputError
from common.weights_header import WeightsHeaderError, parameter_count, read_header
from plip.config import BERT_BOUNDS, MINILM, PLIPConfig
from plip.factory import create_model, get_config
from plip.model import PLIPModel
from plip.text_encoder import resolve_path

IMAGE_KEY = "ImgEncoder_state_dict"
TEXT_KEY = "TxtEncoder_state_dict"
MODEL_FILE, CONFIG_FILE, TOKENIZER_DIR = "model.safetensors", "config.json", "tokenizer"
OPTIMIZER_FILE, TRAINER_STATE_FILE = "optimizer.pt", "trainer_state.json"
PARTIAL_SUFFIX, OLD_SUFFIX = ".partial", ".old"  # a checkpoint being written; the one it replaces
_SHOWN = 5  # keys listed per kind of mismatch
# Ten times the released model (RN50 + BERT-base, 150M): the most values a checkpoint's weights may hold (6 GB as
# float32), read from the file's header before any model is built.
MAX_PARAMETERS = 1_500_000_000


class CheckpointError(InputError):
    """A checkpoint that does not fit the model or is not in the expected format."""


# --- the one guard every checkpoint file goes through ---------------------------------------------

# torch's unpickling errors advise re-running with weights_only=False or allow-listing globals: both may run
# the file's code. Never repeat that advice: keep only the sentence that says what was wrong.
_UNSAFE_ADVICE = re.compile(
    r"weights.only|arbitrary code|trust|safe_globals|allowlist|file an issue|two options|"
    r"alternatively|recommended steps|documentation of torch\.load",
    re.IGNORECASE,
)
_TORCH_REASON = "WeightsUnpickler error:"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SIZE_MISMATCH = re.compile(
    r"size mismatch for (\S+): copying a param with shape torch\.Size\((\[[^\]]*\])\) from "
    r"checkpoint, the shape in current model is torch\.Size\((\[[^\]]*\])\)"
)
# What loading or applying a damaged file raises (torch, safetensors, the optimizer, the RNGs, JSON values).
_DAMAGE = (
    OSError,
    EOFError,
    RuntimeError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    AssertionError,
    pickle.UnpicklingError,
    safetensors.SafetensorError,
)


def error_reason(exc: BaseException) -> str:
    """The first sentence of ``exc``'s message that is not advice to load unsafely (torch appends paragraphs
    of advice), or the exception's type name."""
    text = _ANSI.sub("", str(exc))
    text = text.split(_TORCH_REASON, 1)[1] if _TORCH_REASON in text else text
    for line in text.splitlines():
        for sentence in re.split(r"(?<=[.!?])\s+", line.strip()):
            sentence = sentence.strip().rstrip(".:").strip()
            if sentence and not _UNSAFE_ADVICE.search(sentence):
                return sentence
    return type(exc).__name__


@contextmanager
def reading(path: str | Path, what: str = "damaged or does not fit") -> Iterator[None]:
    """Turn any failure while reading or applying the contents of ``path`` into a one-line CheckpointError."""
    try:
        yield
    except CheckpointError:
        raise
    except _DAMAGE as exc:
        raise CheckpointError(f"{path}: {what} ({error_reason(exc)})") from None


def _structure_problem(value: Any, reference: Any, where: str) -> str | None:
    if isinstance(reference, Mapping):
        if not isinstance(value, Mapping):
            return f"{where} must be an object, got {type(value).__name__}"
        unknown = sorted(str(k) for k in value if k not in reference)
        if unknown:
            return f"{where} has unknown key(s) {unknown[:_SHOWN]}"
        return next((p for k in value if (p := _structure_problem(value[k], reference[k], f"{where}.{k}"))), None)
    if isinstance(reference, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(reference):
            return f"{where} must be a list of {len(reference)}, got {type(value).__name__}" + (
                f" of {len(value)}" if isinstance(value, (list, tuple)) else ""
            )
        return next(
            (p for i, (v, r) in enumerate(zip(value, reference)) if (p := _structure_problem(v, r, f"{where}[{i}]"))),
            None,
        )
    if reference is None:
        return None  # no value to compare with (an optional field)
    if isinstance(reference, (bool, str)):
        ok = type(value) is type(reference)
    elif isinstance(reference, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(reference, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        return None  # tensors and other objects: their own loader checks them
    return None if ok else f"{where} must be {type(reference).__name__}, got {type(value).__name__}"


def check_like(value: Any, reference: Any, where: str) -> None:
    """ValueError unless ``value`` (read from a file) has the structure of ``reference`` (what the object
    it is loaded into saves now): the same types, list lengths, and no keys ``reference`` lacks. Loading a
    scheduler's or a scaler's state sets whatever attributes it holds, so a damaged one would fail only later."""
    problem = _structure_problem(value, reference, where)
    if problem:
        raise ValueError(problem)


def load_torch_file(path: str | Path) -> Any:
    """The object in the torch file ``path``, read with ``weights_only=True`` (tensors, dicts, lists, numbers;
    never code); a missing, empty or damaged file is a one-line CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: not a readable torch checkpoint (empty file)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as exc:  # unpickling, zip, struct, EOF, ...: hostile bytes raise many types
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({error_reason(exc)})") from None


def load_weights(module: nn.Module, path: str | Path, device: str | torch.device = "cpu") -> None:
    """Load the safetensors file ``path`` into ``module``: every key, of the right shapes, or a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: not a PLIP checkpoint directory (missing {path.name})")
    with reading(path, "not readable safetensors weights of this model"):
        try:
            missing, unexpected = safetensors.torch.load_model(module, str(path), strict=False, device=str(device))
        except RuntimeError as exc:  # torch's load_state_dict: one line per mis-shaped tensor
            shapes = _SIZE_MISMATCH.findall(str(exc))
            if not shapes:
                raise
            mis_shaped = [f"{name} {saved} vs model {expected}" for name, saved, expected in shapes]
            raise CheckpointError(f"{path} does not match the model: {_describe('mis-shaped', mis_shaped)}") from None
    if missing or unexpected:
        problems = [
            _describe(kind, sorted(keys)) for kind, keys in (("missing", missing), ("unexpected", unexpected)) if keys
        ]
        raise CheckpointError(f"{path} does not match the model: " + "; ".join(problems))


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
    checkpoint = load_torch_file(path)
    if not isinstance(checkpoint, dict) or not {IMAGE_KEY, TEXT_KEY} <= checkpoint.keys():
        found = sorted(map(str, checkpoint))[:_SHOWN] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{path}: expected a dict with {IMAGE_KEY} and {TEXT_KEY}, found {found}")
    states = {key: _state_dict(checkpoint[key], f"{path}: {key}") for key in (IMAGE_KEY, TEXT_KEY)}
    _load_matching(model.image_encoder, states[IMAGE_KEY], f"{path}: {IMAGE_KEY}")
    _load_matching(model.text_encoder, states[TEXT_KEY], f"{path}: {TEXT_KEY}")


def _state_dict(value: Any, where: str) -> Mapping[str, torch.Tensor]:
    """``value`` if it is a state dict (names -> tensors), else a CheckpointError."""
    if not isinstance(value, Mapping):
        raise CheckpointError(f"{where}: expected a state dict (names -> tensors), found {type(value).__name__}")
    bad = [str(k) for k, v in value.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{where}: expected a state dict (names -> tensors), {_describe('non-tensor', bad)}")
    return value


def save_released(model: PLIPModel, path: str | Path) -> None:
    """Write the encoders in the released format (a projection, present only when sizes differ, is kept)."""
    torch.save({IMAGE_KEY: model.image_encoder.state_dict(), TEXT_KEY: model.text_encoder.state_dict()}, Path(path))


# --- our own resumable checkpoints ---------------------------------------------------------------


@dataclass
class TrainerState:
    """Where training stands: enough to resume exactly (the data position is the loader's own record; ``rng``
    is :func:`common.training.capture_rng_state`'s)."""

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
    extra_weights: Mapping[str, nn.Module] | None = None,
) -> Path:
    """Write the checkpoint into ``directory``; an old one is swapped out only once the new one is complete.

    The files go to ``<name>.partial`` first, then two renames swap it in (the old one leaving as ``<name>.old``),
    so a crash at any moment leaves ``directory`` complete, or absent with the previous checkpoint under
    ``<name>.old`` (:func:`recover_checkpoint` puts it back). ``extra_weights``: more modules saved alongside,
    as safetensors files of the given names (:func:`load_weights` reads them).
    """
    directory = recover_checkpoint(directory)
    staging = directory.with_name(directory.name + PARTIAL_SUFFIX)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    safetensors.torch.save_model(model, str(staging / MODEL_FILE))
    (staging / CONFIG_FILE).write_text(json.dumps(_portable_config(model), indent=2) + "\n", encoding="utf-8")
    model.tokenizer.save_pretrained(str(staging / TOKENIZER_DIR))
    if optimizer is not None:
        torch.save(optimizer.state_dict(), staging / OPTIMIZER_FILE)
    for name, module in (extra_weights or {}).items():
        safetensors.torch.save_model(module, str(staging / name))
    if trainer_state is not None:
        (staging / TRAINER_STATE_FILE).write_text(json.dumps(asdict(trainer_state)) + "\n", encoding="utf-8")
    # Two renames, then the slow delete: a crash leaves the old checkpoint at worst under ``.old``.
    retired = directory.with_name(directory.name + OLD_SUFFIX)
    shutil.rmtree(retired, ignore_errors=True)
    if directory.exists():
        directory.rename(retired)
    staging.rename(directory)
    shutil.rmtree(retired, ignore_errors=True)
    return directory


def recover_checkpoint(directory: str | Path) -> Path:
    """``directory``, put back from ``<name>.old`` when a crash came between :func:`save_checkpoint`'s two renames."""
    directory = Path(directory)
    retired = directory.with_name(directory.name + OLD_SUFFIX)
    if not directory.exists() and (retired / MODEL_FILE).is_file():
        retired.rename(directory)
    return directory


def is_complete(directory: str | Path, training_state: bool = True) -> bool:
    """Whether ``directory`` holds a whole checkpoint (with the optimizer and trainer state when asked)."""
    names = [MODEL_FILE, CONFIG_FILE] + ([OPTIMIZER_FILE, TRAINER_STATE_FILE] if training_state else [])
    return Path(directory).is_dir() and all((Path(directory) / name).is_file() for name in names)


def _require(path: Path) -> Path:
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: not a PLIP checkpoint directory (missing {path.name})")
    return path


def _read_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (which must exist), or a one-line CheckpointError."""
    try:
        data = json.loads(_require(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({error_reason(exc)})") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: not valid JSON (not UTF-8 text)") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def load_checkpoint_directory(directory: str | Path, device: str | torch.device = "cpu") -> PLIPModel:
    """Rebuild the model from ``config.json`` + ``tokenizer/`` and load ``model.safetensors`` (strict), in eval mode."""
    directory = Path(directory)
    config_file = directory / CONFIG_FILE
    with reading(config_file, "not a PLIP model config"):
        config = PLIPConfig.from_dict(_read_object(config_file))
    config.text.tokenizer = str(directory / TOKENIZER_DIR)
    # A text model named by the config (ours name none) loads from safetensors only: never a pickle.
    with reading(config_file, "does not describe a model that can be built"):
        check_weights_fit(config, _require(directory / MODEL_FILE))
        model = PLIPModel(config, safetensors_only=True)
    load_weights(model, directory / MODEL_FILE)
    return model.to(device).eval()


def check_weights_fit(config: PLIPConfig, weights: Path) -> None:
    """Refuse the safetensors file ``weights`` unless it holds at most :data:`MAX_PARAMETERS` values and exactly
    the tensors of the model ``config`` implies, compared from the file's header with that model built on the
    meta device (shapes only, no memory): a config that asks for another or a bigger model than its weights is
    refused before the model is built."""
    try:
        header = read_header(weights)
    except WeightsHeaderError as exc:
        raise CheckpointError(f"{weights}: not readable safetensors weights of this model ({exc.reason})") from None
    held = parameter_count(header)
    if held > MAX_PARAMETERS:
        raise CheckpointError(f"{weights}: holds {held:,} values, more than a PLIP model may have ({MAX_PARAMETERS:,})")
    with torch.device("meta"):
        skeleton = PLIPModel(_without_pretrained_files(config), safetensors_only=True)
    expected = {name: list(tensor.shape) for name, tensor in skeleton.state_dict().items()}
    missing = [name for name in expected if name not in header]
    unexpected = [name for name in header if name not in expected]
    mis_shaped = [
        f"{name} {list(header[name].shape)} vs model {shape}"
        for name, shape in expected.items()
        if name in header and list(header[name].shape) != shape
    ]
    problems = [
        _describe(kind, keys)
        for kind, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mis_shaped))
        if keys
    ]
    if problems:
        implied = sum(tensor.numel() for tensor in skeleton.state_dict().values())
        raise CheckpointError(
            f"{weights} does not match the model: "
            + "; ".join(problems)
            + f" (its config implies {implied:,} values, the file holds {held:,})"
        )


def _without_pretrained_files(config: PLIPConfig) -> PLIPConfig:
    """``config`` with a text model named by path described by its architecture instead (its config.json, read
    from local files only and checked like ``text.bert``): the meta device builds shapes, it loads no weights."""
    if not config.text.pretrained:
        return config
    named = AutoConfig.from_pretrained(resolve_path(config.text.name_or_path), local_files_only=True)
    bert = {key: getattr(named, key) for key in BERT_BOUNDS if hasattr(named, key)}
    return replace(config, text=replace(config.text, pretrained=False, bert=bert))


def load_training_state(directory: str | Path, optimizer: torch.optim.Optimizer | None = None) -> TrainerState:
    """Read ``trainer_state.json`` (and load ``optimizer.pt`` into ``optimizer`` when given)."""
    directory = Path(directory)
    path = directory / TRAINER_STATE_FILE
    state = _read_object(path)
    unknown = sorted(set(state) - {f.name for f in fields(TrainerState)})
    if unknown:
        raise CheckpointError(f"{path}: unknown key(s) {unknown}")
    for name in ("step", "epoch"):
        value = state.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CheckpointError(f"{path}: {name!r} must be a non-negative integer, got {value!r}")
    for name in ("rng", "extra"):
        if not isinstance(state.get(name, {}), dict):
            raise CheckpointError(f"{path}: {name!r} must be a JSON object, got {type(state[name]).__name__}")
    if optimizer is not None:
        load_optimizer(optimizer, _require(directory / OPTIMIZER_FILE))
    return TrainerState(**state)


def load_optimizer(optimizer: torch.optim.Optimizer, path: str | Path) -> None:
    """Load the optimizer state in ``path`` (``torch.save(optimizer.state_dict())``), checked against
    ``optimizer``'s parameters (groups, sizes and state shapes) so that a damaged file fails here, in one line,
    and not at the first step."""
    path = Path(path)
    saved = load_torch_file(path)
    if (
        not isinstance(saved, dict)
        or not isinstance(saved.get("state"), dict)
        or not isinstance(saved.get("param_groups"), list)
    ):
        raise CheckpointError(
            f"{path}: expected an optimizer state dict ('state' and 'param_groups'), found {type(saved).__name__}"
        )
    with reading(path, "does not fit the optimizer"):
        optimizer.load_state_dict(saved)
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                for name, value in optimizer.state.get(parameter, {}).items():
                    if (
                        isinstance(value, torch.Tensor)
                        and value.dim() > 0
                        and (value.shape != parameter.shape or value.dtype != parameter.dtype)
                    ):
                        raise ValueError(
                            f"state {name!r} is {value.dtype} {list(value.shape)} for a parameter of "
                            f"{parameter.dtype} {list(parameter.shape)}"
                        )


def load_checkpoint_model(
    path: str | Path, device: str | torch.device = "cpu", preset: str = "RN50", tokenizer: str | None = None
) -> PLIPModel:
    """Our checkpoint directory (or its ``model.safetensors``) or a released-format torch file (``*.pth.tar``).

    A released file holds only encoder weights: the architecture comes from the preset ``preset`` (TIC / IAP
    heads left out), the text encoder is built empty when the preset describes it, and the tokenizer is
    ``tokenizer`` (default: the bundled MiniLM's, the bert-base-uncased WordPiece vocabulary).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir() or path.suffix == ".safetensors":
        return load_checkpoint_directory(path if path.is_dir() else path.parent, device)
    text: dict[str, Any] = {"tokenizer": tokenizer or MINILM}
    if get_config(preset).text.bert:
        text["pretrained"] = False  # every text weight comes from the file
    model = create_model(preset, text=text, tic={"weight": 0}, iap={"weight": 0})
    load_released(model, path)
    return model.to(device).eval()
