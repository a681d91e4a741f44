"""The synthesis job's graph: person images -> predicted attributes -> filtered, captioned WebDataset shards.

match files -> decode + re-encode (dead letter for broken files) -> RunInference with the SPAC attribute
predictor -> per-image filter -> [identity cleaning] -> per-identity filters (gender vote, minimum, cap) ->
captions (SPAC's templates; with --captioner mllm a caption model through RunInference, its texts checked,
the templates as fallback: :mod:`pipelines.synthesis.caption_model`; with --captioner spac the neural
captioner's two style texts, checked the same way: :mod:`pipelines.synthesis.neural_captioner`) -> shard assignment
(:mod:`pipelines.synthesis.ordering`) -> shard writing (complete shards skipped) -> manifest.json (exactly this
run's shards), synthpedes_dataset.json, deadletter.jsonl, filter_report.json.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference

from pipelines.shared import corpus_parts
from pipelines.shared.dead_letters import DEAD_LETTER as DEAD
from pipelines.shared.dead_letters import WriteDeadLetterFile
from pipelines.shared.shard_sink import WriteShard, finish_manifest
from pipelines.synthesis import caption_model, ordering, outputs, sources, transforms
from pipelines.synthesis.attribute_model import AttributeModelHandler
from pipelines.synthesis.identity_cleaning import CleanIdentities
from pipelines.synthesis.job import Job
from pipelines.synthesis.model_handler import SpacPredictorHandler
from pipelines.synthesis.neural_captioner import NeuralCaptionerHandler
from shards import layout


def build(pipeline: beam.Pipeline, job: Job) -> None:
    """Add the whole synthesis graph to ``pipeline``."""
    refs, layout_letters = sources.read_refs(pipeline, job.input, job.limit, job.max_file_bytes)
    decoded = (
        refs
        | "Distribute" >> beam.Reshuffle()
        | "DecodeImage"
        >> beam.ParDo(transforms.DecodeImage(job.max_pixels, job.max_file_bytes)).with_outputs(DEAD, main="images")
    )

    handler = KeyedModelHandler(
        AttributeModelHandler(job.attribute_model, share_model=job.share_model, model_copies=job.model_copies)
        if job.attribute_model is not None  # --predictor mllm
        else SpacPredictorHandler(
            job.predictor,
            job.device,
            job.batch_size,
            job.torch_threads,
            max_batch_size=job.max_batch_size,
            share_model=job.share_model,
            model_copies=job.model_copies,
            with_embeddings=job.cleaning is not None,
        )
    )
    predicted = (
        decoded.images
        | "KeyForInference" >> beam.Map(transforms.keyed_for_inference)
        | "RunInference" >> RunInference(handler)
        | "AttachPrediction" >> beam.Map(transforms.attach_prediction)
    )

    reads_images = job.caption_model is not None or job.neural_captioner is not None  # the captioner sees each image
    per_image = predicted | "FilterImage" >> beam.ParDo(transforms.FilterImage(job.filters.max_unknown)).with_outputs(
        DEAD, main="images"
    )
    images, cleaning_letters = per_image.images, []
    if job.cleaning is not None:
        cleaned = per_image.images | "CleanIdentities" >> CleanIdentities(job.cleaning)
        images, cleaning_letters = cleaned.images, [cleaned[DEAD]]
    if not reads_images:  # the JPEGs skip the identity grouping: they meet their records at JoinPlacements
        aside = images | "SetImagesAside" >> beam.FlatMap(transforms.set_image_aside).with_outputs(
            transforms.IMAGES, main="images"
        )
        images = aside.images
    per_identity = (
        images
        | "KeyByIdentity" >> beam.Map(lambda record: (record["identity"], record))
        | "GroupByIdentity" >> beam.GroupByKey()
        | "FilterIdentity"
        >> beam.ParDo(transforms.FilterIdentity(job.filters)).with_outputs(DEAD, transforms.SIZES, main="images")
    )
    caption_report = None
    if reads_images:
        with_outcomes = per_identity.images | "CaptionWithModel" >> RunInference(caption_handler(job))
        split = with_outcomes | "SplitStageReport" >> beam.ParDo(caption_model.SplitStageReport()).with_outputs(
            caption_model.STAGE_COUNTS, caption_model.REJECTED, main="records"
        )
        captioned, caption_report = split.records, stage_report(split)
    elif job.sentences is None:
        captioned = per_identity.images | "Caption" >> beam.Map(transforms.add_captions, job.seed, job.styles)
    else:
        captioned = per_identity.images | "Caption" >> beam.ParDo(
            transforms.AddCaptions(job.seed, job.styles, job.sentences)
        )

    placements = identity_placements(per_identity[transforms.SIZES])
    joined = {
        "records": captioned | "KeyCaptionedByIdentity" >> beam.Map(lambda r: (r["identity"], r)),
        "placement": placements,
    }
    if not reads_images:
        joined["images"] = aside[transforms.IMAGES]
    written = (
        joined
        | "JoinPlacements" >> beam.CoGroupByKey()
        | "PlaceSamples" >> beam.FlatMap(ordering.place_samples, job.shard_size)
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShards"
        >> beam.ParDo(WriteShard(job.output, job.prefix, transforms.NAMESPACE)).with_outputs(DEAD, main="indices")
    )

    # Whole-corpus elements below hold shard numbers, bucket numbers or counts per reason: never samples.
    shard_indices = written.indices | "CollectShards" >> beam.combiners.ToList()
    _ = shard_indices | "WriteManifest" >> beam.Map(finish_manifest, job.output, job.prefix)
    _ = shard_indices | "WriteDatasetJson" >> beam.Map(
        corpus_parts.assemble_dataset_json, job.output, layout.DATASET_NAME
    )

    letters = (
        layout_letters,
        decoded[DEAD],
        per_image[DEAD],
        *cleaning_letters,
        per_identity[DEAD],
        written[DEAD],
    ) | "AllDeadLetters" >> beam.Flatten()
    _ = letters | "WriteDeadLetters" >> WriteDeadLetterFile(job.output)
    _ = (
        letters
        | "ReportKeys" >> beam.Map(outputs.report_counts)
        | "CountReasons" >> beam.combiners.Count.PerElement()
        | "CollectReasonCounts" >> beam.combiners.ToList()
        | "WriteFilterReport"
        >> beam.Map(
            outputs.write_filter_report,
            job.output,
            job.filters,
            None if caption_report is None else beam.pvalue.AsSingleton(caption_report),
        )
    )


def caption_handler(job: Job) -> ModelHandler:
    """RunInference's handler for the job's caption model: --captioner mllm or --captioner spac."""
    sharing = {"share_model": job.share_model, "model_copies": job.model_copies}
    if job.neural_captioner is not None:
        return NeuralCaptionerHandler(job.neural_captioner, job.device, job.sentences, job.seed, job.styles, **sharing)
    return caption_model.CaptionModelHandler(job.caption_model, job.sentences, job.seed, job.styles, **sharing)


def stage_report(split: beam.pvalue.DoOutputsTuple) -> beam.PCollection:
    """One element: the caption-model stage's report (:func:`outputs.caption_model_report`), from counts and
    rejected texts (never more than a few per reason)."""
    examples = (
        split[caption_model.REJECTED]
        | "SampleRejectedTexts" >> beam.combiners.Top.SmallestPerKey(outputs.REJECTED_EXAMPLES)
        | "CollectRejectedTexts" >> beam.combiners.ToList()
    )
    return (
        split[caption_model.STAGE_COUNTS]
        | "SumStageCounts" >> beam.CombinePerKey(sum)
        | "CollectStageCounts" >> beam.combiners.ToList()
        | "StageReport" >> beam.Map(outputs.caption_model_report, beam.pvalue.AsSingleton(examples))
    )


def identity_placements(sizes: beam.PCollection) -> beam.PCollection:
    """(identity, (id, first position)) from (identity, kept count): see :mod:`pipelines.synthesis.ordering`."""
    buckets = (
        sizes | "BucketIdentities" >> beam.Map(ordering.bucketed_count) | "GroupIdentityBuckets" >> beam.GroupByKey()
    )
    offsets = (
        buckets
        | "BucketTotals" >> beam.Map(ordering.bucket_totals)
        | "CollectBucketTotals" >> beam.combiners.ToList()
        | "BucketOffsets" >> beam.Map(ordering.bucket_offsets)
    )
    return buckets | "PlaceIdentities" >> beam.FlatMap(ordering.place_bucket, beam.pvalue.AsSingleton(offsets))
