"""The SYNTH-PEDES corpus format: WebDataset tar shards + parquet index + ``_stats.json``, a manifest,
a streaming reader and a verifier. Knows the sample format only: no models, no Beam.

Modules: :mod:`shards.sample` (the sample contract, image encoding), :mod:`shards.writer`,
:mod:`shards.manifest`, :mod:`shards.reader`, :mod:`shards.verify`, :mod:`shards.layout` (file
names), :mod:`shards.remote` (fsspec access, atomic publishing).
"""
from shards.manifest import read_manifest, write_manifest
from shards.reader import SkipAndCount, iter_samples, open_corpus, reraise, shard_urls
from shards.sample import GROUPS, IMAGE_SIZE, JPEG_QUALITY, encode_image, make_sample, validate_record
from shards.verify import verify_corpus
from shards.writer import shard_is_complete, write_shard

__all__ = [
    "GROUPS",
    "IMAGE_SIZE",
    "JPEG_QUALITY",
    "SkipAndCount",
    "encode_image",
    "iter_samples",
    "make_sample",
    "open_corpus",
    "read_manifest",
    "reraise",
    "shard_is_complete",
    "shard_urls",
    "validate_record",
    "verify_corpus",
    "write_manifest",
    "write_shard",
]
