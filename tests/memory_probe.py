"""Peak Python-heap use of one call, measured in a fresh process.

tracemalloc is not safe to start and stop while other threads allocate (CPython
gh-128679): by the time a memory test runs, earlier tests have left Beam's gRPC and
tqdm threads behind, and stopping tracemalloc under them crashed CI with a segfault.
A spawned child has no such threads, so the measurement runs there.
"""

from __future__ import annotations

import multiprocessing
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def _traced_call(function: Callable[..., Any], args: tuple) -> tuple[Any, int]:
    function(*args)  # untraced first, so lazy imports and caches are not counted as the call's memory
    tracemalloc.start()
    try:
        result = function(*args)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def peak_traced_bytes(function: Callable[..., Any], *args: Any) -> tuple[Any, int]:
    """Runs function(*args) in a spawned process; returns its result and peak traced bytes.

    function is called twice (a warm-up, then the traced call), so it must not consume its
    inputs; it must be importable by name (module level) and its result picklable.
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_traced_call, function, args).result()
