"""Reading MATLAB annotation files (PA-100K's annotation.mat, RAP's RAP_annotation.mat) with scipy.io.loadmat.

Files are loaded with ``squeeze_me=True, struct_as_record=False``: a struct is an object with attributes, a
cell array of strings an array of ``str``, and a 1 x 1 anything its element; the helpers below undo the
squeezing where a caller needs a list or a matrix, whatever the file's sizes.

scipy's reader is not safe on damaged files: besides a dozen exception types (IndexError on a 23-byte text
file, KeyError, zlib.error, UnboundLocalError, ...) it crashed the process with SIGSEGV on 6 of 1,500
byte-flipped or truncated files. So a file is read in a forked child process (about 10 ms), where any failure,
a crash included, becomes one line naming the file.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from common.errors import InputError, error_line

_CHILD = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def _read_mat(path: str) -> dict[str, Any]:
    """scipy.io.loadmat, in the child: only the parser runs here, so any exception is its answer to the file."""
    try:
        return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except NotImplementedError:  # MATLAB v7.3 files are HDF5
        raise InputError(f"{path}: a MATLAB v7.3 (HDF5) file; save it with -v7 to read it here") from None
    except Exception as exc:  # damaged files raise IndexError, KeyError, zlib.error, UnboundLocalError, ...
        raise InputError(f"{path}: not a readable MATLAB file ({error_line(exc)})") from None


def load_mat(path: Path) -> dict[str, Any]:
    """The variables of a .mat file (v4 to v7.2), read in a child process; InputError naming the file when it
    cannot be read, or when the reader crashed on it."""
    with ProcessPoolExecutor(1, mp_context=_CHILD) as child:
        try:
            return child.submit(_read_mat, str(path)).result()
        except BrokenProcessPool:
            raise InputError(f"{path}: not a readable MATLAB file (the MATLAB reader crashed on it)") from None


def strings(value: Any, what: str) -> list[str]:
    """A cell array of strings (any nesting scipy left) as a flat list of str."""
    if isinstance(value, str):
        return [value.strip()]
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "U":
            return [str(v).strip() for v in value.ravel()]
        if value.dtype == object:
            return [s for v in value.ravel() for s in strings(v, what)]
    raise InputError(f"{what}: expected text (a cell array of strings), got {type(value).__name__}")


def matrix(value: Any, rows: int, columns: int, what: str) -> np.ndarray:
    """A numeric ``rows`` x ``columns`` label matrix as int64 (a squeezed single row or column restored)."""
    array = np.asarray(value)
    if rows == 0 and array.size == 0:
        return np.zeros((0, columns), dtype=np.int64)
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise InputError(f"{what}: expected a numeric matrix, got {array.dtype}")
    if array.ndim == 1:
        array = array.reshape(1, -1) if rows == 1 else array.reshape(-1, 1) if columns == 1 else array
    elif array.ndim == 0:
        array = array.reshape(1, 1)
    if array.shape != (rows, columns):
        raise InputError(f"{what}: expected {rows} x {columns} labels, got shape {list(array.shape)}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array) & (array == np.round(array))):
        raise InputError(f"{what}: expected whole-number labels")
    return array.astype(np.int64)


def indices(value: Any, count: int, what: str) -> np.ndarray:
    """MATLAB's 1-based indices as 0-based int64, each checked to lie in [0, count)."""
    array = np.atleast_1d(np.asarray(value)).ravel()
    if array.size and (array.dtype == object or array.dtype.kind not in "biuf"):
        raise InputError(f"{what}: expected indices, got {array.dtype}")
    fractional = array[~(np.isfinite(array) & (array == np.round(array)))] if array.dtype.kind == "f" else []
    if len(fractional):  # astype would truncate 1.7 to 1 without a word
        raise InputError(f"{what}: index {fractional[0]:g} is not a whole number")
    array = array.astype(np.int64) - 1
    if array.size and (array.min() < 0 or array.max() >= count):
        raise InputError(
            f"{what}: index {int(array.min() + 1 if array.min() < 0 else array.max() + 1)} outside 1..{count}"
        )
    return array


def field(struct: Any, name: str, what: str) -> Any:
    """A struct's field; InputError naming the field when the file lacks it."""
    if not hasattr(struct, name):
        present = ", ".join(getattr(struct, "_fieldnames", []) or [])
        raise InputError(f"{what}: no field {name!r}" + (f" (it has {present})" if present else ""))
    return getattr(struct, name)
