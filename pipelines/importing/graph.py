"""The import job's graph: stream the JSON list (one reader; entries of other splits skipped) -> spread ->
check each entry against its format and the record contract -> drop duplicate keys (first entry kept) ->
decode + re-encode the image (dead letter for missing and broken files) -> [mine attributes from the
captions] -> shard assignment (blocks of --shard_size entries in file order) -> shard writing (complete
shards skipped) -> manifest.json, deadletter.jsonl, import_report.json.

Like the synthesis graph, no element grows with the corpus: the dead letters are written through bucket
parts, and what is gathered in one element is block numbers, shard numbers, counts per stage and the tally
of out-of-schema phrases (which grows with the distinct phrases only).
"""

from __future__ import annotations

import apache_beam as beam

from pipelines.importing import outputs, sources
from pipelines.importing.job import ImportJob
from pipelines.shared.dead_letters import DEAD_LETTER as DEAD
from pipelines.shared.dead_letters import WriteDeadLetterFile
from pipelines.shared.shard_sink import WriteShard, finish_manifest


def build(pipeline: beam.Pipeline, job: ImportJob) -> None:
    """Add the whole import graph to ``pipeline``."""
    read = (
        pipeline
        | "AnnotationsPath" >> beam.Create([job.annotations])
        | "ReadEntries" >> beam.ParDo(sources.ReadEntries(job.split)).with_outputs(DEAD, main="entries")
    )
    parsed = (
        read.entries
        | "Distribute" >> beam.Reshuffle()
        | "ParseEntry" >> beam.ParDo(sources.ParseEntry(job)).with_outputs(DEAD, main="items")
    )
    unique = (
        parsed.items
        | "KeyByKey" >> beam.Map(sources.keyed)
        | "GroupByKey" >> beam.GroupByKey()
        | "DropDuplicates" >> beam.ParDo(sources.DropDuplicates(job.annotations)).with_outputs(DEAD, main="items")
    )
    loaded = unique.items | "LoadImage" >> beam.ParDo(
        sources.LoadImage(job.images, job.max_pixels, job.max_file_bytes)
    ).with_outputs(DEAD, main="items")
    letters = [read[DEAD], parsed[DEAD], unique[DEAD], loaded[DEAD]]
    items = loaded.items
    if job.attributes == "mine":
        mined = (
            items
            | "BatchForMining" >> beam.BatchElements(min_batch_size=1, max_batch_size=sources.MINING_BATCH)
            | "MineAttributes" >> beam.ParDo(sources.MineAttributes()).with_outputs(DEAD, main="items")
        )
        letters.append(mined[DEAD])
        items = mined.items

    # Shards are blocks of positions; only the (few) block numbers that hold an item are gathered.
    blocks = (
        items
        | "Blocks" >> beam.Map(sources.block_of, job.shard_size)
        | "DistinctBlocks" >> beam.Distinct()
        | "CollectBlocks" >> beam.combiners.ToList()
        | "SortBlocks" >> beam.Map(sorted)
    )
    written = (
        items
        | "AssignShard" >> beam.Map(sources.assign_shard, beam.pvalue.AsSingleton(blocks), job.shard_size)
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShards"
        >> beam.ParDo(WriteShard(job.output, job.prefix, sources.NAMESPACE, dataset_parts=False)).with_outputs(
            DEAD, main="indices"
        )
    )
    letters.append(written[DEAD])
    _ = (
        written.indices
        | "CollectShards" >> beam.combiners.ToList()
        | "WriteManifest" >> beam.Map(finish_manifest, job.output, job.prefix)
    )

    all_letters = tuple(letters) | "AllDeadLetters" >> beam.Flatten()
    _ = all_letters | "WriteDeadLetters" >> WriteDeadLetterFile(job.output, position_of=outputs.entry_position)
    stages = (
        all_letters
        | "LetterStages" >> beam.Map(lambda letter: letter["stage"])
        | "CountStages" >> beam.combiners.Count.PerElement()
        | "CollectStages" >> beam.combiners.ToList()
    )
    _ = (
        items
        | "Summarise" >> beam.CombineGlobally(outputs.ImportSummary())
        | "WriteImportReport" >> beam.Map(outputs.write_import_report, job.output, job, beam.pvalue.AsSingleton(stages))
    )
