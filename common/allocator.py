"""Keep freed heap memory mapped in processes that run CPU inference batch after batch.

A forward pass of the attribute predictor at batch 32 (256x128 images) allocates buffers of 16-32 MiB. glibc's
malloc serves blocks that large with ``mmap`` and gives freed memory at the heap's top back to the system, so
every batch faults its buffers' pages in afresh. Measured on this project's machines (2 cores): 730,000 page
faults and 1.6 s of kernel time per 1,280 images, and with the thresholds below 19,000 faults, 0.07 s and a
28% shorter wall time; in the synthesis job at 20,000 images, 6.6-8.9 million faults and 15-21 s of kernel time
in a 72 s run; a PLIP pre-training step of RN50-MiniLM on the CPU (batch 16) ran 1.36x as fast with them
(1.76-1.78 against 1.27-1.31 samples/s, 5.0 -> 1.3 million faults, ``benchmarks/pretrain_throughput.py``
with and without ``GLIBC_TUNABLES`` set to :data:`TUNABLES`, two runs each), RN-tiny 1.05x. The cost is
that up to :data:`TRIM_THRESHOLD` of freed memory stays with the process. Every command calls
:func:`keep_freed_memory` (``common.cli.run_main``), and so does every job run (``run_job``), so a job
started from Python gets them too.

The thresholds reach the running process through ``mallopt`` (its main thread's heap: DirectRunner's in-memory
mode runs the stages there) and the processes it starts through ``GLIBC_TUNABLES`` (DirectRunner's
multi-processing workers; a thread arena only takes them from the environment at start-up). Dataflow's worker
image sets the same variable (``docker/Dockerfile``). A ``GLIBC_TUNABLES`` that already sets either malloc
threshold is the user's choice and left alone, as is any C library other than glibc.
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD = 256 << 20  # blocks below this come from the heap and are reused, not mapped and unmapped
TRIM_THRESHOLD = 1 << 30  # free memory at the heap's top kept before any is given back
TUNABLES = f"glibc.malloc.mmap_threshold={MMAP_THRESHOLD}:glibc.malloc.trim_threshold={TRIM_THRESHOLD}"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (glibc's malloc.h)


def _user_chose() -> bool:
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return "glibc.malloc.mmap_threshold" in tunables or "glibc.malloc.trim_threshold" in tunables


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process and the ones it starts; False where nothing was
    changed (not glibc, or the user's ``GLIBC_TUNABLES`` already sets them)."""
    libc = _glibc()
    if libc is None or _user_chose():
        return False
    if not (libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        raise RuntimeError("glibc refused the malloc thresholds")  # values this module chose: a bug here
    current = os.environ.get("GLIBC_TUNABLES")
    os.environ["GLIBC_TUNABLES"] = TUNABLES if not current else f"{current}:{TUNABLES}"
    return True
