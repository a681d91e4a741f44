"""The SYNTH-PEDES synthesis job: person images -> predicted attributes -> filtered, captioned WebDataset shards.

Before the graph runs, the launcher writes job.json into the output folder (see :mod:`pipelines.job_record`):
a rerun with the same settings resumes, one with other settings stops unless ``--overwrite`` clears the
earlier run's files.

Graph: match files -> decode + re-encode (dead letter for broken files) -> RunInference with the SPAC
attribute predictor -> per-image filter -> per-identity filters (gender vote, minimum, cap) -> captions
-> shard assignment (sorted keys, blocks of --shard_size) -> shard writing (complete shards skipped)
-> manifest.json (exactly this run's shards), synthpedes_dataset.json, deadletter.jsonl, filter_report.json.

Local run on the bundled samples (writes data/SYNTH-PEDES/ under the working folder)::

    python -m pipelines.synthesize --runner=DirectRunner
    python -m pipelines.synthesize --input /data/imgs --output /data/SYNTH-PEDES \\
        --direct_running_mode=multi_processing --direct_num_workers=4

Dataflow with GPU workers (the package is staged with setup.py; the container image needs torch with
CUDA and this project's dependencies installed)::

    python -m pipelines.synthesize --runner=DataflowRunner --project=PROJECT --region=us-central1 \\
        --temp_location=gs://BUCKET/tmp --input=gs://BUCKET/images --output=gs://BUCKET/SYNTH-PEDES \\
        --predictor=/opt/predictor --device=cuda --batch_size=128 \\
        --dataflow_service_options="worker_accelerator=type:nvidia-tesla-t4;count:1;install-nvidia-driver" \\
        --setup_file=./setup.py --sdk_container_image=REGION-docker.pkg.dev/PROJECT/REPO/spac-worker:latest \\
        --experiments=use_runner_v2

Add ``--dry_run=True`` to translate the graph for Dataflow without submitting it.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions, TestOptions
from apache_beam.runners.runner import PipelineResult

from pipelines import job_record, outputs, transforms
from pipelines.inputs import InputSpec, read_manifest
from pipelines.job import Job, make_job
from pipelines.model_handler import SpacPredictorHandler
from pipelines.options import SynthesizeOptions, unknown_flags
from shards import layout
from spac import corpus_filters
from spac.cli.support import OneLineArgumentParser, run_main

PROG = "python -m pipelines.synthesize"
DEAD = transforms.DEAD_LETTER


def parse_known_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Our flags, and the rest (Beam's own: --runner, --direct_num_workers, --project, ...)."""
    parser = OneLineArgumentParser(
        prog=PROG, allow_abbrev=False, description="Synthesize a SYNTH-PEDES corpus: caption person images with SPAC into shards.",
        epilog="Beam's flags (--runner, --direct_running_mode, --direct_num_workers, --project, --region, "
               "--temp_location, --dataflow_service_options, --setup_file, --sdk_container_image, --dry_run, ...) "
               "are passed to Beam. Rerunning into the same --output resumes it (complete shards are kept) when "
               "the settings recorded in its job.json match; see --output and --overwrite.")
    SynthesizeOptions._add_argparse_args(parser)
    return parser.parse_known_args(argv)


def read_refs(pipeline: beam.Pipeline, spec: InputSpec) -> tuple[beam.PCollection, beam.PCollection]:
    """(image refs, dead letters of files outside the folder layout)."""
    if spec.manifest is not None:
        refs = (pipeline | "ManifestPath" >> beam.Create([spec.manifest])
                | "ReadManifest" >> beam.FlatMap(read_manifest))
        return refs, pipeline | "NoLayoutErrors" >> beam.Create([])
    matched = (pipeline | "MatchFiles" >> fileio.MatchFiles(spec.pattern)
               | "ToImageRefs" >> beam.ParDo(transforms.ToImageRefs(spec.root)).with_outputs(DEAD, main="refs"))
    return matched.refs, matched[DEAD]


def build(pipeline: beam.Pipeline, job: Job) -> None:
    """Add the whole synthesis graph to ``pipeline``."""
    refs, layout_letters = read_refs(pipeline, job.input)
    decoded = (refs | "Distribute" >> beam.Reshuffle()
               | "DecodeImage" >> beam.ParDo(transforms.DecodeImage(job.max_pixels, job.max_file_bytes)).with_outputs(DEAD, main="images"))

    handler = KeyedModelHandler(SpacPredictorHandler(job.predictor, job.device, job.batch_size, job.torch_threads))
    predicted = (decoded.images
                 | "KeyForInference" >> beam.Map(transforms.keyed_for_inference)
                 | "RunInference" >> RunInference(handler)
                 | "AttachPrediction" >> beam.Map(transforms.attach_prediction))

    per_image = predicted | "FilterImage" >> beam.ParDo(
        transforms.FilterImage(job.filters.max_unknown)).with_outputs(DEAD, main="images")
    per_identity = (per_image.images
                    | "KeyByIdentity" >> beam.Map(lambda record: (record["identity"], record))
                    | "GroupByIdentity" >> beam.GroupByKey()
                    | "FilterIdentity" >> beam.ParDo(transforms.FilterIdentity(job.filters)).with_outputs(
                        DEAD, main="images"))
    if job.sentences is None:
        captioned = per_identity.images | "Caption" >> beam.Map(transforms.add_captions, job.seed, job.styles)
    else:
        captioned = per_identity.images | "Caption" >> beam.ParDo(transforms.AddCaptions(
            job.seed, job.styles, job.sentences.text, job.sentences.option.path, job.sentences.option.add))

    # Shard assignment needs only the keys (and identity names for ids): two global side inputs.
    sorted_keys = (captioned | "Keys" >> beam.Map(lambda record: record["key"])
                   | "CollectKeys" >> beam.combiners.ToList() | "SortKeys" >> beam.Map(transforms.sorted_unique))
    sorted_identities = (captioned | "Identities" >> beam.Map(lambda record: record["identity"])
                         | "DistinctIdentities" >> beam.Distinct()
                         | "CollectIdentities" >> beam.combiners.ToList()
                         | "SortIdentities" >> beam.Map(transforms.sorted_unique))
    fragments = (captioned
                 | "AssignShard" >> beam.Map(transforms.assign_shard, beam.pvalue.AsSingleton(sorted_keys),
                                             beam.pvalue.AsSingleton(sorted_identities), job.shard_size)
                 | "GroupByShard" >> beam.GroupByKey()
                 | "WriteShards" >> beam.ParDo(outputs.WriteShard(job.output, job.prefix)).with_outputs(
                     DEAD, main="fragments"))

    collision_letters, fragments = fragments[DEAD], fragments.fragments
    _ = (fragments | "ShardIndices" >> beam.Map(lambda fragment: fragment[0])
         | "CollectShards" >> beam.combiners.ToList()
         | "WriteManifest" >> beam.Map(outputs.finish_manifest, job.output, job.prefix))
    _ = (fragments | "CollectReleased" >> beam.combiners.ToList()
         | "WriteDatasetJson" >> beam.Map(outputs.write_dataset_json, job.output))

    letters = ((layout_letters, decoded[DEAD], per_image[DEAD], per_identity[DEAD], collision_letters)
               | "AllDeadLetters" >> beam.Flatten()
               | "CollectDeadLetters" >> beam.combiners.ToList())
    _ = letters | "WriteDeadLetters" >> beam.Map(outputs.write_dead_letters, job.output)
    _ = letters | "WriteFilterReport" >> beam.Map(outputs.write_filter_report, job.output, job.filters)


def run(argv: Sequence[str] | None = None, save_main_session: bool = True,
        test_pipeline: beam.Pipeline | None = None) -> PipelineResult:
    """Build and run the job; waits for it to finish and returns the result (its metrics hold the counters)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args, rest = parse_known_args(argv)
    unknown = unknown_flags(rest)
    if unknown:
        raise ValueError(f"unknown flag {unknown[0]} (neither this job's nor Beam's; see --help)")
    options = PipelineOptions(argv)
    options.view_as(SetupOptions).save_main_session = save_main_session
    job = make_job(args, options.view_as(StandardOptions).runner)
    if not options.view_as(TestOptions).dry_run:  # a dry run writes nothing (and may not reach the bucket)
        job_record.prepare_output(job.output, job_record.fingerprint(job), overwrite=args.overwrite)
    pipeline = test_pipeline if test_pipeline is not None else beam.Pipeline(options=options)
    build(pipeline, job)
    result = pipeline.run()
    result.wait_until_finish()
    return result


def counters(result: PipelineResult) -> dict[str, int]:
    """The job's counters by name (read, decoded, dead_lettered, filtered_<reason>, written, already_complete).

    Empty when the runner keeps no metrics (a Dataflow dry run).
    """
    try:
        query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(transforms.NAMESPACE))
    except NotImplementedError:
        return {}
    totals: dict[str, int] = {}
    for entry in query["counters"]:
        value = entry.committed if entry.committed is not None else entry.attempted
        totals[entry.key.metric.name] = totals.get(entry.key.metric.name, 0) + (value or 0)
    return dict(sorted(totals.items()))


def cli_main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    result = run(argv)
    args, _ = parse_known_args(argv)
    print(f"state: {result.state}")
    # every counter of the sum (read = decoded + dead_lettered = ...), zeros included, so the summary adds up
    summary = {name: 0 for name in ("read", "decoded", "dead_lettered", "written", "already_complete")}
    summary |= {f"filtered_{reason}": 0 for reason in corpus_filters.REASONS}
    found = counters(result)  # empty for a runner without metrics (a Dataflow dry run)
    for name, value in (summary | found).items() if found else ():
        print(f"{name}: {value}")
    outputs.print_written_outputs(args.output, (job_record.JOB_NAME, layout.MANIFEST_NAME, outputs.DATASET_NAME,
                                                outputs.DEAD_LETTER_NAME, outputs.FILTER_REPORT_NAME))
    return 0


def main() -> None:
    logging.getLogger().setLevel(logging.WARNING)
    sys.exit(run_main(PROG, cli_main))


if __name__ == "__main__":
    main()
