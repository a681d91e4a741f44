"""Counters of a job, each in the job's own namespace: counted by its steps, read back from the result.

Every job passes its namespace (the shared steps take it as an argument), so two jobs' counters never mix.
Outside a pipeline the counters are no-ops.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from typing import Any

import apache_beam as beam


@functools.cache  # a handful of names, asked for several times per image
def counter(namespace: str, name: str) -> beam.metrics.metric.Metrics.DelegatingCounter:
    return beam.metrics.Metrics.counter(namespace, name)


@contextlib.contextmanager
def stage_timer(namespace: str, stage: str) -> Iterator[None]:
    """Counts one image through ``stage`` and the worker time it took: counters ``stage_images_<stage>`` and
    ``stage_us_<stage>`` (microseconds). Time only the work, never a ``yield`` (a fused runner runs the next
    steps inside it)."""
    start = time.perf_counter_ns()
    yield
    counter(namespace, f"stage_us_{stage}").inc((time.perf_counter_ns() - start) // 1000)
    counter(namespace, f"stage_images_{stage}").inc()


def metric_value(entry: Any) -> Any:
    """A queried metric's committed value, else its attempted one (a runner may keep only that)."""
    return entry.committed if entry.committed is not None else entry.attempted


def counter_totals(result: Any, namespace: str) -> dict[str, int]:
    """The counters of ``namespace`` in a pipeline result by name, sorted; empty when the runner keeps no
    metrics (a Dataflow dry run)."""
    try:
        query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(namespace))
    except NotImplementedError:
        return {}
    totals: dict[str, int] = {}
    for entry in query["counters"]:
        totals[entry.key.metric.name] = totals.get(entry.key.metric.name, 0) + (metric_value(entry) or 0)
    return dict(sorted(totals.items()))
