"""The training kit every trainer in the project shares (the attribute predictor's, PLIP's pre-training and
fine-tuning): mixed precision (names, autocast, the gradient scaler), the random generators' state for an exact
resume, and the one check that a resumed run keeps the settings of the run it continues."""

from __future__ import annotations

import base64
import random
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from common.errors import InputError

PRECISIONS = ("fp32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class PrecisionError(InputError):
    """A precision that does not exist, or that the device cannot train in."""


class SettingsChanged(InputError):
    """A resume refused: the run it would continue was made with other settings."""


# --- mixed precision ---------------------------------------------------------------------------------


def check_precision(precision: str, device: torch.device | None = None) -> str:
    """``precision`` if it is one of :data:`PRECISIONS` (and one ``device``, when given, can train in: fp16
    only on CUDA)."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device is not None and device.type != "cuda":
        raise PrecisionError("--precision fp16 needs --device cuda (use bf16 or fp32 on a CPU)")
    return precision


def resolve_precision(precision: str, device: torch.device) -> str:
    """A ``--precision`` value for ``device``: auto = bf16 on CUDA, fp32 elsewhere; the others checked."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return check_precision(precision, device)


def autocast(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    """The autocast context of ``precision`` on ``device`` (fp32: none). Losses are best computed outside it,
    in float32 (softmax / KL terms are sensitive to half precision)."""
    dtype = _AUTOCAST_DTYPES.get(check_precision(precision, device))
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """fp16's loss scaler; for bf16 and fp32 a disabled one, through which every call passes unchanged."""
    return torch.amp.GradScaler(device.type, enabled=check_precision(precision, device) == "fp16")


def optimizer_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
    clip_grad: float = 0.0,
    clipped: Iterable[torch.Tensor] | None = None,
) -> None:
    """Backpropagate ``loss`` and step ``optimizer`` through ``scaler`` (None: no loss scaling), first clipping
    the gradient norm of the ``clipped`` parameters (default: the optimizer's) to ``clip_grad`` when it is > 0,
    on unscaled gradients."""
    scaler = scaler if scaler is not None else torch.amp.GradScaler("cpu", enabled=False)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip_grad > 0:
        scaler.unscale_(optimizer)
        if clipped is None:
            clipped = [p for group in optimizer.param_groups for p in group["params"]]
        nn.utils.clip_grad_norm_(list(clipped), clip_grad)
    scaler.step(optimizer)
    scaler.update()


# --- random generators -------------------------------------------------------------------------------


def _encoded(state: torch.Tensor) -> str:
    return base64.b64encode(state.numpy().tobytes()).decode("ascii")


def _decoded(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text, validate=True)), dtype=torch.uint8)


def capture_rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """Python's, NumPy's and torch's CPU generator states, and ``device``'s when it is a CUDA device, as
    JSON-ready values (for a JSON file or ``torch.save``)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
        "torch": _encoded(torch.get_rng_state()),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = _encoded(torch.cuda.get_rng_state(device))
    return state


def restore_rng_state(state: Mapping[str, Any], device: torch.device | None = None) -> None:
    """Undo :func:`capture_rng_state` (the CUDA generator only when ``device`` is a CUDA device and the state
    holds one). A damaged state raises ValueError, TypeError or KeyError: the caller names the file."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_decoded(state["torch"]))
    if device is not None and device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(_decoded(state["cuda"]), device)


# --- resuming only with the same settings ----------------------------------------------------------------


def changed_settings(saved: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``name was OLD, now NEW`` for every setting that differs, by name (a name only one side has counts as
    None on the other); settings that are objects on both sides are compared key by key (``input.path``)."""
    changes = []
    for name in sorted(set(saved) | set(current), key=str):
        old, new = saved.get(name), current.get(name)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            changes += changed_settings(old, new, f"{prefix}{name}.")
        elif old != new:
            changes.append(f"{prefix}{name} was {old!r}, now {new!r}")
    return changes


def check_same_settings(
    where: str, saved: Mapping[str, Any], current: Mapping[str, Any], remedy: str = "resume with the same settings"
) -> None:
    """:class:`SettingsChanged` naming every setting of ``current`` that differs from ``saved`` (those of the
    run ``where`` holds), with the old and the new value, then ``remedy``."""
    changes = changed_settings(saved, current)
    if changes:
        raise SettingsChanged(f"cannot resume from {where}: {'; '.join(changes)}; {remedy}")
