"""common.allocator: its thresholds stop a repeated large allocation from faulting its pages in every time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from common import allocator

glibc_only = pytest.mark.skipif(allocator._glibc() is None, reason="the thresholds are glibc's")

# A batch-sized buffer (32 MiB, over glibc's dynamic mmap threshold's ceiling) allocated, written and freed
# as a forward pass does per batch: 10 times to settle (with the thresholds the first few still fault while
# the heap finds room), then 20 times counting the minor page faults.
_ALLOCATE_AND_FREE = """
import json, resource, sys
import torch
from common.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
def allocate_and_free(times):
    for _ in range(times):
        buffer = torch.empty(8 << 20).fill_(1.0)
        del buffer
allocate_and_free(10)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
allocate_and_free(20)
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _faults(mode: str, tunables: str | None = None) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "GLIBC_TUNABLES"}
    if tunables is not None:
        env["GLIBC_TUNABLES"] = tunables
    done = subprocess.run(
        [sys.executable, "-c", _ALLOCATE_AND_FREE, mode], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc_only
def test_the_thresholds_keep_a_freed_batch_buffer_mapped_for_the_next_batch():
    plain, kept = _faults("plain"), _faults("keep")
    assert kept["applied"] and not plain["applied"]
    pages = (32 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert plain["faults"] >= 15 * pages  # faulted in afresh nearly every time
    assert kept["faults"] <= pages  # reused, not faulted in again


@glibc_only
def test_a_user_who_set_a_malloc_threshold_keeps_it():
    chosen = _faults("keep", tunables="glibc.malloc.trim_threshold=0")
    assert not chosen["applied"]
    assert chosen["faults"] >= 15 * (32 << 20) // os.sysconf("SC_PAGE_SIZE")


@glibc_only
def test_processes_started_afterwards_get_the_thresholds_from_the_environment(monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0")
    assert allocator.keep_freed_memory()
    assert os.environ["GLIBC_TUNABLES"] == f"glibc.pthread.rseq=0:{allocator.TUNABLES}"
    assert not allocator.keep_freed_memory()  # already there: not added twice
    assert os.environ["GLIBC_TUNABLES"].count("mmap_threshold") == 1
    started = _faults("plain", tunables=os.environ["GLIBC_TUNABLES"])
    assert started["faults"] <= (32 << 20) // os.sysconf("SC_PAGE_SIZE")
