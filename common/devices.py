"""One device resolver for the whole project: a --device value checked against this machine."""

from __future__ import annotations

import re

import torch

from common.errors import InputError

_DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?|auto")


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available) as a torch device.

    Raises InputError with a one-line message for a malformed name or a CUDA device this machine lacks.
    """
    text = check_device_name(name)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {text!r} requested but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device {text!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device


def check_device_name(name: str) -> str:
    """A device name's syntax only (for a remote job whose workers, not this machine, hold the GPU)."""
    text = str(name).strip()
    if not _DEVICE_PATTERN.fullmatch(text):
        raise InputError(f"invalid device {name!r} (use cpu, cuda, cuda:N or auto)")
    return text
