"""How a job starts and what it prints: its own flags split from Beam's, job.json written, the graph built and
run, then the counters and the files it wrote. Each job's entry point is these steps with its own parser,
settings, fingerprint, graph and counter namespace."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, TestOptions
from apache_beam.runners.runner import PipelineResult

from common.allocator import keep_freed_memory
from common.errors import InputError
from pipelines.shared import job_record
from pipelines.shared.options import unknown_flags
from shards import remote

ParseKnownArgs = Callable[[Sequence[str]], tuple[argparse.Namespace, list[str]]]


def split_args(
    parse_known_args: ParseKnownArgs, argv: Sequence[str] | None, save_main_session: bool
) -> tuple[argparse.Namespace, PipelineOptions]:
    """(the job's flags, Beam's options made from the rest only); InputError names a flag neither knows."""
    args, rest = parse_known_args(list(sys.argv[1:] if argv is None else argv))
    unknown = unknown_flags(rest)
    if unknown:
        raise InputError(f"unknown flag {unknown[0]} (neither this job's nor Beam's; see --help)")
    options = PipelineOptions(rest)
    options.view_as(SetupOptions).save_main_session = save_main_session
    return args, options


def run_job(
    options: PipelineOptions,
    build: Callable[[beam.Pipeline, Any], None],
    job: Any,
    fingerprint: Mapping[str, Any],
    overwrite: bool,
    test_pipeline: beam.Pipeline | None = None,
) -> PipelineResult:
    """Write job.json (see :mod:`pipelines.shared.job_record`), build ``job``'s graph and run it to the end, its
    process and local workers with malloc thresholds that keep freed memory (:mod:`common.allocator`)."""
    keep_freed_memory()
    if not options.view_as(TestOptions).dry_run:  # a dry run writes nothing (and may not reach the bucket)
        job_record.prepare_output(job.output, fingerprint, overwrite=overwrite)
    pipeline = test_pipeline if test_pipeline is not None else beam.Pipeline(options=options)
    build(pipeline, job)
    # What is alive before the run (modules, models' code, the graph) stays alive through it: frozen, the
    # collector's full passes skip it (at 20,000 images their time fell from 1.98 to 1.18 s); thawed after.
    gc.freeze()
    try:
        result = pipeline.run()
        result.wait_until_finish()
    finally:
        gc.unfreeze()
    return result


def print_counters(
    result: PipelineResult, found: Mapping[str, int], zeros: Iterable[str], hidden: tuple[str, ...] = ()
) -> None:
    """``state:``, then every counter (those in ``zeros`` also when 0, so a summary adds up) but those whose
    name starts with one of ``hidden``; no counters for a runner without metrics (a Dataflow dry run)."""
    print(f"state: {result.state}")
    for name, value in ({name: 0 for name in zeros} | dict(found)).items() if found else ():
        if not name.startswith(hidden):
            print(f"{name}: {value}")


def print_written_outputs(output: str, names: Iterable[str]) -> None:
    """Print ``output: <path>`` for each of ``names`` the job wrote (a dry run, or an empty corpus, writes fewer)."""
    fs, root = remote.resolve(output)
    for name in names:
        if fs.exists(remote.join(fs, root, name)):
            print(f"output: {output.rstrip('/')}/{name}")
