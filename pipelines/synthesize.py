"""The SYNTH-PEDES synthesis job: person images -> predicted attributes -> filtered, captioned WebDataset shards.

Before the graph runs, the launcher writes job.json into the output folder (see :mod:`pipelines.shared.job_record`):
a rerun with the same settings resumes, one with other settings stops unless ``--overwrite`` clears the
earlier run's files.

The graph is :func:`pipelines.synthesis.graph.build`; this module is the entry point only (flags in, the
job run, its counters and files printed).

Local run on the bundled samples (writes data/SYNTH-PEDES/ under the working folder)::

    python -m pipelines.synthesize --runner=DirectRunner
    python -m pipelines.synthesize --input /data/imgs --output /data/SYNTH-PEDES \\
        --direct_running_mode=multi_processing --direct_num_workers=4

Dataflow with GPU workers (the worker image of docker/Dockerfile holds a CUDA torch, this project and the
predictor; docker/README.md explains the flags and what a run costs)::

    python -m pipelines.synthesize --runner=DataflowRunner --project=PROJECT --region=us-central1 \\
        --temp_location=gs://BUCKET/tmp --input=gs://BUCKET/images --output=gs://BUCKET/SYNTH-PEDES \\
        --predictor=/opt/predictor --device=cuda --batch_size=128 --max_batch_size=512 \\
        --share_model --model_copies=4 \\
        --sdk_container_image=REGION-docker.pkg.dev/PROJECT/REPO/spac-worker:2.78.0 \\
        --experiments=use_runner_v2 --machine_type=g2-standard-8 --disk_size_gb=50 \\
        --dataflow_service_options="worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver" \\
        --num_workers=4 --max_num_workers=16

Add ``--dry_run=True`` to translate the graph for Dataflow without submitting it.

Captions written by a vision-language model served by vLLM (README "Captions written by a vision-language
model")::

    python -m pipelines.synthesize --runner=DirectRunner --input /data/imgs --output /data/SYNTH-PEDES-MLLM \\
        --captioner mllm --mllm_server http://HOST:8000/v1 --mllm_model HuggingFaceTB/SmolVLM-256M-Instruct
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions, TestOptions
from apache_beam.runners.runner import PipelineResult

from common.cli import run_main
from pipelines.shared import launch
from pipelines.shared.metrics import counter_totals
from pipelines.synthesis import graph, options, stage_rates
from pipelines.synthesis.job import fingerprint, is_local_runner, make_job
from pipelines.synthesis.transforms import NAMESPACE
from shards import layout
from spac.corpus import filters as corpus_filters

PROG = "python -m pipelines.synthesize"
# every counter of the sum (read = decoded + dead_lettered = ...), zeros included, so the summary adds up
SUMMARY = (
    "read",
    "decoded",
    "dead_lettered",
    "written",
    "already_complete",
    *(f"filtered_{reason}" for reason in corpus_filters.REASONS),
)
OUTPUTS = (
    layout.JOB_NAME,
    layout.MANIFEST_NAME,
    layout.DATASET_NAME,
    layout.DEAD_LETTER_NAME,
    layout.FILTER_REPORT_NAME,
)


def parse_known_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Our flags, and the rest (Beam's own: --runner, --direct_num_workers, --project, ...)."""
    return options.parser(PROG).parse_known_args(argv)


def run(
    argv: Sequence[str] | None = None, save_main_session: bool = True, test_pipeline: beam.Pipeline | None = None
) -> PipelineResult:
    """Build and run the job; waits for it to finish and returns the result (its metrics hold the counters)."""
    args, beam_options = launch.split_args(parse_known_args, argv, save_main_session)
    job = make_job(args, beam_options.view_as(StandardOptions).runner)
    if job.mllm_backend is not None and not beam_options.view_as(TestOptions).dry_run:
        # a server that cannot be reached, or a model that cannot load, stops the job before any work
        job.mllm_backend.check_reachable(loaded_here=is_local_runner(beam_options.view_as(StandardOptions).runner))
    return launch.run_job(beam_options, graph.build, job, fingerprint(job), args.overwrite, test_pipeline)


def counters(result: PipelineResult) -> dict[str, int]:
    """The job's counters by name (read, decoded, dead_lettered, filtered_<reason>, written, already_complete,
    the stage timers); empty when the runner keeps no metrics (a Dataflow dry run)."""
    return counter_totals(result, NAMESPACE)


def cli_main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    result = run(argv)
    args, _ = parse_known_args(argv)
    # timings are printed as rates below
    launch.print_counters(result, counters(result), SUMMARY, (stage_rates.IMAGES_PREFIX, stage_rates.MICROS_PREFIX))
    rates = stage_rates.stage_rates(stage_rates.stage_metrics(result))
    if rates:
        print(stage_rates.format_stage_rates(rates))
    launch.print_written_outputs(args.output, OUTPUTS)
    return 0


def main() -> None:
    logging.getLogger().setLevel(logging.WARNING)
    sys.exit(run_main(PROG, cli_main))


if __name__ == "__main__":
    main()
