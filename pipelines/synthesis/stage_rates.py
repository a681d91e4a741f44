"""Images per second per stage of the synthesis job, from its Beam metrics.

The per-image steps count ``stage_images_<stage>`` and ``stage_us_<stage>`` (microseconds of worker time,
:func:`pipelines.synthesis.transforms.stage_timer`); RunInference records ``num_inferences`` and the
``inference_batch_latency_micro_secs`` distribution in the model handler's namespace. A rate is images per
second of worker time summed over all workers: what one worker process sustains in that stage, so the
slowest stage is the one to give more workers (or a GPU).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import apache_beam as beam

from pipelines.shared.metrics import metric_value
from pipelines.synthesis.model_handler import METRICS_NAMESPACE as INFERENCE_NAMESPACE
from pipelines.synthesis.transforms import NAMESPACE

INFERENCE_IMAGES = "num_inferences"
INFERENCE_MICROS = "inference_batch_latency_micro_secs"
STAGES = ("decode", "inference", "filter", "caption")  # in the job's order; other timed stages follow, sorted
IMAGES_PREFIX, MICROS_PREFIX = "stage_images_", "stage_us_"


def stage_metrics(result: Any) -> dict[str, int]:
    """The counters of the job's namespace and of RunInference's (its latency distribution as its sum), by
    name; empty when the runner keeps no metrics (a Dataflow dry run)."""
    totals: dict[str, int] = {}
    try:
        for namespace in (NAMESPACE, INFERENCE_NAMESPACE):
            query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(namespace))
            for entry in query["counters"]:
                totals[entry.key.metric.name] = totals.get(entry.key.metric.name, 0) + (metric_value(entry) or 0)
            for entry in query["distributions"]:
                value = metric_value(entry)
                total = getattr(value, "sum", None) or 0
                totals[entry.key.metric.name] = totals.get(entry.key.metric.name, 0) + total
    except NotImplementedError:
        return {}
    return totals


def stage_rates(counters: Mapping[str, int]) -> list[tuple[str, int, float]]:
    """(stage, images, images per second of worker time) for every stage that saw an image, in job order."""
    timed = {name[len(IMAGES_PREFIX) :] for name in counters if name.startswith(IMAGES_PREFIX)}
    rows = []
    for stage in [s for s in STAGES if s in timed or s == "inference"] + sorted(timed - set(STAGES)):
        if stage == "inference":
            images, micros = counters.get(INFERENCE_IMAGES, 0), counters.get(INFERENCE_MICROS, 0)
        else:
            images, micros = counters.get(IMAGES_PREFIX + stage, 0), counters.get(MICROS_PREFIX + stage, 0)
        if images > 0:
            rows.append((stage, int(images), images * 1e6 / max(micros, 1)))  # under 1 us: as 1 us
    return rows


def format_stage_rates(rows: list[tuple[str, int, float]]) -> str:
    """One line per stage, ``images/s <stage>: <rate> (<images> images, <seconds> s of worker time)``."""
    return "\n".join(
        f"images/s {stage}: {rate:.1f} ({images} images, {images / rate:.3f} s of worker time)"
        for stage, images, rate in rows
    )
