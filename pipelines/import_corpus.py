"""Import a dataset users already have into our shards: the released SYNTH-PEDES (its captions and parsed
attributes kept, phrases outside our schema verbatim) or a split of CUHK-PEDES, ICFG-PEDES or RSTPReid
(their human captions, attributes mined from them), for pre-training or fine-tuning with ``plip``.

Before the graph runs, the launcher writes job.json into the output folder (see :mod:`pipelines.shared.job_record`):
a rerun with the same settings resumes, one with other settings stops unless ``--overwrite`` clears the
earlier run's files.

The graph is :func:`pipelines.importing.graph.build`; this module is the entry point only (flags in, the job
run, its counters and files printed).

    python -m pipelines.import_corpus --input /data/SYNTH-PEDES --output /data/corpus/synthpedes
    python -m pipelines.import_corpus --input /data/CUHK-PEDES/reid_raw.json --output /data/corpus/cuhk \\
        --direct_running_mode=multi_processing --direct_num_workers=4

On Dataflow, as for ``pipelines.synthesize`` (``--runner=DataflowRunner --project ... --setup_file=./setup.py``,
``gs://`` input and output); add ``--dry_run=True`` to translate the graph without submitting it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.runners.runner import PipelineResult

from common.cli import run_main
from pipelines.importing import graph, options
from pipelines.importing.job import fingerprint, make_import_job
from pipelines.importing.sources import NAMESPACE
from pipelines.shared import launch
from pipelines.shared.metrics import counter_totals
from shards import layout

PROG = "python -m pipelines.import_corpus"
# printed at the end, zeros included: entries = skipped_split + dead-lettered entries + written + already_complete
SUMMARY = (
    "entries",
    "skipped_split",
    "malformed",
    "duplicates",
    "image_rejected",
    "mining_failed",
    "decoded",
    "written",
    "already_complete",
    "dead_lettered",
    "unreadable_json",
    "texts_dropped",
    "attributes_out_of_schema",
    "entries_out_of_schema",
)
OUTPUTS = (layout.JOB_NAME, layout.MANIFEST_NAME, layout.DEAD_LETTER_NAME, layout.IMPORT_REPORT_NAME)


def parse_known_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Our flags, and the rest (Beam's own: --runner, --direct_num_workers, --project, ...)."""
    return options.parser(PROG).parse_known_args(argv)


def run(
    argv: Sequence[str] | None = None, save_main_session: bool = True, test_pipeline: beam.Pipeline | None = None
) -> PipelineResult:
    """Build and run the job; waits for it to finish and returns the result (its metrics hold the counters)."""
    args, beam_options = launch.split_args(parse_known_args, argv, save_main_session)
    job = make_import_job(args)
    return launch.run_job(beam_options, graph.build, job, fingerprint(job), args.overwrite, test_pipeline)


def counters(result: PipelineResult) -> dict[str, int]:
    """The job's counters by name (see SUMMARY), all in its own namespace; empty when the runner keeps no
    metrics."""
    return counter_totals(result, NAMESPACE)


def cli_main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    result = run(argv)
    args, _ = parse_known_args(argv)
    launch.print_counters(result, counters(result), SUMMARY)
    launch.print_written_outputs(args.output, OUTPUTS)
    return 0


def main() -> None:
    logging.getLogger().setLevel(logging.WARNING)
    sys.exit(run_main(PROG, cli_main))


if __name__ == "__main__":
    main()
