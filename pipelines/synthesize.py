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

Dataflow with GPU workers (the worker image of docker/Dockerfile holds a CUDA torch, this project and the
predictor; README "Dataflow GPU run" explains the flags and what a run costs)::

    python -m pipelines.synthesize --runner=DataflowRunner --project=PROJECT --region=us-central1 \\
        --temp_location=gs://BUCKET/tmp --input=gs://BUCKET/images --output=gs://BUCKET/SYNTH-PEDES \\
        --predictor=/opt/predictor --device=cuda --batch_size=128 --max_batch_size=512 \\
        --share_model --model_copies=4 \\
        --sdk_container_image=REGION-docker.pkg.dev/PROJECT/REPO/spac-worker:2.78.0 \\
        --experiments=use_runner_v2 --machine_type=g2-standard-8 --disk_size_gb=50 \\
        --dataflow_service_options="worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver" \\
        --num_workers=4 --max_num_workers=16

Add ``--dry_run=True`` to translate the graph for Dataflow without submitting it.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions, TestOptions
from apache_beam.runners.runner import PipelineResult

from pipelines import corpus_parts, job_record, ordering, outputs, sources, stage_rates, transforms
from pipelines.identity_cleaning import CleanIdentities
from pipelines.job import Job, make_job
from pipelines.model_handler import SpacPredictorHandler
from pipelines.options import SynthesizeOptions, unknown_flags
from shards import layout
from spac.corpus import filters as corpus_filters
from common.cli import OneLineArgumentParser, run_main

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


def build(pipeline: beam.Pipeline, job: Job) -> None:
    """Add the whole synthesis graph to ``pipeline``."""
    refs, layout_letters = sources.read_refs(pipeline, job.input, job.limit, job.max_file_bytes)
    decoded = (refs | "Distribute" >> beam.Reshuffle()
               | "DecodeImage" >> beam.ParDo(transforms.DecodeImage(job.max_pixels, job.max_file_bytes)).with_outputs(DEAD, main="images"))

    handler = KeyedModelHandler(SpacPredictorHandler(job.predictor, job.device, job.batch_size, job.torch_threads,
                                                     max_batch_size=job.max_batch_size, share_model=job.share_model,
                                                     model_copies=job.model_copies,
                                                     with_embeddings=job.cleaning is not None))
    predicted = (decoded.images
                 | "KeyForInference" >> beam.Map(transforms.keyed_for_inference)
                 | "RunInference" >> RunInference(handler)
                 | "AttachPrediction" >> beam.Map(transforms.attach_prediction))

    per_image = predicted | "FilterImage" >> beam.ParDo(
        transforms.FilterImage(job.filters.max_unknown)).with_outputs(DEAD, main="images")
    images, cleaning_letters = per_image.images, []
    if job.cleaning is not None:
        cleaned = per_image.images | "CleanIdentities" >> CleanIdentities(job.cleaning)
        images, cleaning_letters = cleaned.images, [cleaned[DEAD]]
    per_identity = (images
                    | "KeyByIdentity" >> beam.Map(lambda record: (record["identity"], record))
                    | "GroupByIdentity" >> beam.GroupByKey()
                    | "FilterIdentity" >> beam.ParDo(transforms.FilterIdentity(job.filters)).with_outputs(
                        DEAD, transforms.SIZES, main="images"))
    if job.sentences is None:
        captioned = per_identity.images | "Caption" >> beam.Map(transforms.add_captions, job.seed, job.styles)
    else:
        captioned = per_identity.images | "Caption" >> beam.ParDo(transforms.AddCaptions(
            job.seed, job.styles, job.sentences.text, job.sentences.option.path, job.sentences.option.add))

    placements = place_identities(per_identity[transforms.SIZES])
    written = ({"records": captioned | "KeyCaptionedByIdentity" >> beam.Map(lambda r: (r["identity"], r)),
                  "placement": placements}
                 | "JoinPlacements" >> beam.CoGroupByKey()
                 | "PlaceSamples" >> beam.FlatMap(ordering.place_samples, job.shard_size)
                 | "GroupByShard" >> beam.GroupByKey()
                 | "WriteShards" >> beam.ParDo(outputs.WriteShard(job.output, job.prefix)).with_outputs(
                     DEAD, main="indices"))

    # Whole-corpus elements below hold shard numbers, bucket numbers or counts per reason: never samples.
    shard_indices = written.indices | "CollectShards" >> beam.combiners.ToList()
    _ = shard_indices | "WriteManifest" >> beam.Map(outputs.finish_manifest, job.output, job.prefix)
    _ = shard_indices | "WriteDatasetJson" >> beam.Map(
        corpus_parts.assemble_dataset_json, job.output, outputs.DATASET_NAME)

    letters = ((layout_letters, decoded[DEAD], per_image[DEAD], *cleaning_letters, per_identity[DEAD], written[DEAD])
               | "AllDeadLetters" >> beam.Flatten())
    _ = letters | "WriteDeadLetters" >> outputs.WriteDeadLetterFile(job.output)
    _ = (letters | "ReportKeys" >> beam.Map(outputs.report_counts)
         | "CountReasons" >> beam.combiners.Count.PerElement()
         | "CollectReasonCounts" >> beam.combiners.ToList()
         | "WriteFilterReport" >> beam.Map(outputs.write_filter_report, job.output, job.filters))


def place_identities(sizes: beam.PCollection) -> beam.PCollection:
    """(identity, (id, first position)) from (identity, kept count): see :mod:`pipelines.ordering`."""
    buckets = (sizes | "BucketIdentities" >> beam.Map(ordering.bucketed_count)
               | "GroupIdentityBuckets" >> beam.GroupByKey())
    offsets = (buckets | "BucketTotals" >> beam.Map(ordering.bucket_totals)
               | "CollectBucketTotals" >> beam.combiners.ToList()
               | "BucketOffsets" >> beam.Map(ordering.bucket_offsets))
    return buckets | "PlaceIdentities" >> beam.FlatMap(ordering.place_identities, beam.pvalue.AsSingleton(offsets))


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
        if not name.startswith((stage_rates.IMAGES_PREFIX, stage_rates.MICROS_PREFIX)):  # timings are printed as rates below
            print(f"{name}: {value}")
    rates = stage_rates.stage_rates(stage_rates.stage_metrics(result))
    if rates:
        print(stage_rates.format_stage_rates(rates))
    outputs.print_written_outputs(args.output, (job_record.JOB_NAME, layout.MANIFEST_NAME, outputs.DATASET_NAME,
                                                outputs.DEAD_LETTER_NAME, outputs.FILTER_REPORT_NAME))
    return 0


def main() -> None:
    logging.getLogger().setLevel(logging.WARNING)
    sys.exit(run_main(PROG, cli_main))


if __name__ == "__main__":
    main()
