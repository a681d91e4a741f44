"""The header of a safetensors weights file, read without its data: tensor names, dtypes and shapes, and so the
parameter count and byte size a file holds. A model's config is checked against this before the model is built,
so a config that asks for too much memory, or for other weights than the file holds, is refused for the cost of
reading a few kilobytes (a safetensors file is 8 bytes of header length, a JSON header, then the tensors' bytes).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from common.errors import InputError

# Bytes per element of the usual safetensors dtypes (a packed or rarer dtype is left to its reader).
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
# The safetensors library's own limit on the header's size.
MAX_HEADER_BYTES = 100_000_000
_LENGTH = struct.Struct("<Q")


class WeightsHeaderError(InputError):
    """A weights file whose safetensors header is missing, damaged or disagrees with the file's size."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: not a readable safetensors file ({reason})")
        self.reason = reason  # without the file name, for a caller that words its own message


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count


def read_header(path: str | Path) -> dict[str, TensorInfo]:
    """Tensor name -> dtype and shape, from the header of the safetensors file ``path`` (its data is never
    read). Every tensor's byte range must lie inside the file and, for the dtypes of :data:`DTYPE_BYTES`, fit
    its shape. Anything else is a one-line WeightsHeaderError naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            size = path.stat().st_size
            prefix = stream.read(_LENGTH.size)
            if len(prefix) < _LENGTH.size:
                raise WeightsHeaderError(path, f"header too small: a file of {size} bytes")
            (length,) = _LENGTH.unpack(prefix)
            if length > min(MAX_HEADER_BYTES, size - _LENGTH.size):
                raise WeightsHeaderError(path, f"a header of {length} bytes in a file of {size}")
            raw = stream.read(length)
    except OSError as exc:
        raise WeightsHeaderError(path, exc.strerror or str(exc)) from None
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise WeightsHeaderError(path, "its header is not JSON") from None
    if not isinstance(header, dict):
        raise WeightsHeaderError(path, "its header is not a JSON object")
    data_bytes = size - _LENGTH.size - length
    return {name: _tensor(path, name, entry, data_bytes) for name, entry in header.items() if name != "__metadata__"}


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tensor(path: Path, name: str, entry: object, data_bytes: int) -> TensorInfo:
    if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str):
        raise WeightsHeaderError(path, f"tensor {name!r} has no dtype")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(_is_count(s) for s in shape):
        raise WeightsHeaderError(path, f"tensor {name!r} has no valid shape")
    info = TensorInfo(entry["dtype"], tuple(shape))
    itemsize = DTYPE_BYTES.get(info.dtype)
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(o) for o in offsets)
        or not offsets[0] <= offsets[1] <= data_bytes
        or (itemsize is not None and offsets[1] - offsets[0] != info.numel * itemsize)
    ):
        raise WeightsHeaderError(path, f"tensor {name!r} does not lie inside the file as its shape and dtype say")
    return info


def parameter_count(header: dict[str, TensorInfo]) -> int:
    """The number of values the file holds."""
    return sum(info.numel for info in header.values())
