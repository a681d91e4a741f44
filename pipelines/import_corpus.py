"""Import a dataset users already have into our shards: the released SYNTH-PEDES (its captions and parsed
attributes kept, phrases outside our schema verbatim) or a split of CUHK-PEDES, ICFG-PEDES or RSTPReid
(their human captions, attributes mined from them), for pre-training or fine-tuning with ``plip``.

Before the graph runs, the launcher writes job.json into the output folder (see :mod:`pipelines.job_record`):
a rerun with the same settings resumes, one with other settings stops unless ``--overwrite`` clears the
earlier run's files.

Graph: stream the JSON list (one reader; entries of other splits skipped) -> spread -> check each entry
against its format and the record contract -> drop duplicate keys (first entry kept) -> decode + re-encode
the image (dead letter for missing and broken files) -> [mine attributes from the captions] -> shard
assignment (blocks of --shard_size entries in file order) -> shard writing (complete shards skipped) ->
manifest.json, deadletter.jsonl, import_report.json.

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
from typing import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, TestOptions
from apache_beam.runners.runner import PipelineResult

from pipelines import import_outputs, import_sources, job_record, outputs, transforms
from pipelines.import_job import ImportJob, fingerprint, make_import_job
from pipelines.import_options import ImportOptions
from pipelines.options import unknown_flags
from shards import layout
from common.cli import OneLineArgumentParser, run_main

PROG = "python -m pipelines.import_corpus"
DEAD = transforms.DEAD_LETTER
# printed at the end, zeros included: entries = skipped_split + dead-lettered entries + written + already_complete
SUMMARY = ("entries", "skipped_split", "malformed", "duplicates", "image_rejected", "mining_failed", "decoded",
           "written", "already_complete", "dead_lettered", "unreadable_json", "texts_dropped",
           "attributes_out_of_schema", "entries_out_of_schema")


def parse_known_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Our flags, and the rest (Beam's own: --runner, --direct_num_workers, --project, ...)."""
    parser = OneLineArgumentParser(
        prog=PROG, allow_abbrev=False,
        description="Import the released SYNTH-PEDES, or a split of CUHK-PEDES, ICFG-PEDES or RSTPReid, into "
                    "WebDataset shards that plip pre-trains and fine-tunes on.",
        epilog="Beam's flags (--runner, --direct_running_mode, --direct_num_workers, --project, --region, "
               "--temp_location, --setup_file, --dry_run, ...) are passed to Beam. Rerunning into the same "
               "--output resumes it (complete shards are kept) when the settings in its job.json match.")
    ImportOptions._add_argparse_args(parser)
    return parser.parse_known_args(argv)


def build(pipeline: beam.Pipeline, job: ImportJob) -> None:
    """Add the whole import graph to ``pipeline``."""
    read = (pipeline | "AnnotationsPath" >> beam.Create([job.annotations])
            | "ReadEntries" >> beam.ParDo(import_sources.ReadEntries(job.split)).with_outputs(DEAD, main="entries"))
    parsed = (read.entries | "Distribute" >> beam.Reshuffle()
              | "ParseEntry" >> beam.ParDo(import_sources.ParseEntry(job)).with_outputs(DEAD, main="items"))
    unique = (parsed.items | "KeyByKey" >> beam.Map(import_sources.keyed) | "GroupByKey" >> beam.GroupByKey()
              | "DropDuplicates" >> beam.ParDo(import_sources.DropDuplicates(job.annotations)).with_outputs(
                  DEAD, main="items"))
    loaded = unique.items | "LoadImage" >> beam.ParDo(
        import_sources.LoadImage(job.max_pixels, job.max_file_bytes)).with_outputs(DEAD, main="items")
    letters = [read[DEAD], parsed[DEAD], unique[DEAD], loaded[DEAD]]
    items = loaded.items
    if job.attributes == "mine":
        mined = (items | "BatchForMining" >> beam.BatchElements(min_batch_size=1, max_batch_size=import_sources.MINING_BATCH)
                 | "MineAttributes" >> beam.ParDo(import_sources.MineAttributes()).with_outputs(DEAD, main="items"))
        letters.append(mined[DEAD])
        items = mined.items

    # Shards are blocks of positions; only the (few) block numbers that hold an item are gathered.
    blocks = (items | "Blocks" >> beam.Map(import_sources.block_of, job.shard_size)
              | "DistinctBlocks" >> beam.Distinct() | "CollectBlocks" >> beam.combiners.ToList()
              | "SortBlocks" >> beam.Map(sorted))
    written = (items
               | "AssignShard" >> beam.Map(import_sources.assign_shard, beam.pvalue.AsSingleton(blocks), job.shard_size)
               | "GroupByShard" >> beam.GroupByKey()
               | "WriteShards" >> beam.ParDo(outputs.WriteShard(job.output, job.prefix, dataset_parts=False)).with_outputs(
                   DEAD, main="indices"))
    letters.append(written[DEAD])
    _ = (written.indices
         | "CollectShards" >> beam.combiners.ToList()
         | "WriteManifest" >> beam.Map(outputs.finish_manifest, job.output, job.prefix))

    all_letters = tuple(letters) | "AllDeadLetters" >> beam.Flatten()
    _ = (all_letters | "LetterLines" >> beam.Map(import_outputs.letter_line)
         | "CollectDeadLetters" >> beam.combiners.ToList()
         | "WriteDeadLetters" >> beam.Map(import_outputs.write_dead_letters, job.output))
    stages = (all_letters | "LetterStages" >> beam.Map(lambda letter: letter["stage"])
              | "CountStages" >> beam.combiners.Count.PerElement() | "CollectStages" >> beam.combiners.ToList())
    _ = (items | "Summarise" >> beam.CombineGlobally(import_outputs.ImportSummary())
         | "WriteImportReport" >> beam.Map(import_outputs.write_import_report, job.output, job,
                                           beam.pvalue.AsSingleton(stages)))


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
    job = make_import_job(args)
    if not options.view_as(TestOptions).dry_run:  # a dry run writes nothing (and may not reach the bucket)
        job_record.prepare_output(job.output, fingerprint(job), overwrite=args.overwrite)
    pipeline = test_pipeline if test_pipeline is not None else beam.Pipeline(options=options)
    build(pipeline, job)
    result = pipeline.run()
    result.wait_until_finish()
    return result


def counters(result: PipelineResult) -> dict[str, int]:
    """The job's counters by name (see SUMMARY; the shard writer's ``written`` and ``already_complete`` are
    counted in the synthesis job's namespace, which it shares). Empty when the runner keeps no metrics."""
    totals: dict[str, int] = {}
    for namespace in (import_sources.NAMESPACE, transforms.NAMESPACE):
        try:
            query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(namespace))
        except NotImplementedError:
            return {}
        for entry in query["counters"]:
            value = entry.committed if entry.committed is not None else entry.attempted
            totals[entry.key.metric.name] = totals.get(entry.key.metric.name, 0) + (value or 0)
    return dict(sorted(totals.items()))


def cli_main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    result = run(argv)
    args, _ = parse_known_args(argv)
    print(f"state: {result.state}")
    found = counters(result)  # empty for a runner without metrics (a Dataflow dry run)
    for name, value in ({name: 0 for name in SUMMARY} | found).items() if found else ():
        print(f"{name}: {value}")
    outputs.print_written_outputs(args.output, (job_record.JOB_NAME, layout.MANIFEST_NAME, outputs.DEAD_LETTER_NAME,
                                                import_outputs.IMPORT_REPORT_NAME))
    return 0


def main() -> None:
    logging.getLogger().setLevel(logging.WARNING)
    sys.exit(run_main(PROG, cli_main))


if __name__ == "__main__":
    main()
