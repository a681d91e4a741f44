"""The SYNTH-PEDES corpus format: WebDataset tar shards + parquet index + ``_stats.json``, a manifest,
a streaming reader and a verifier. Knows the sample format only: no models, no Beam.

Modules: :mod:`shards.sample` (the sample contract, image encoding), :mod:`shards.writer`,
:mod:`shards.manifest`, :mod:`shards.reader`, :mod:`shards.verify`, :mod:`shards.layout` (file
names), :mod:`shards.remote` (fsspec access, atomic publishing).
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module that defines it. Loaded on first use (PEP 562): the reader pulls in webdataset and
# with it torch (~1.5 s), which a command that only writes or lists shards should not pay for.
_EXPORTS = {
    "read_manifest": "shards.manifest",
    "write_manifest": "shards.manifest",
    "SkipAndCount": "shards.reader",
    "iter_samples": "shards.reader",
    "open_corpus": "shards.reader",
    "reraise": "shards.reader",
    "shard_urls": "shards.reader",
    "GROUPS": "shards.sample",
    "IMAGE_SIZE": "shards.sample",
    "JPEG_QUALITY": "shards.sample",
    "encode_image": "shards.sample",
    "make_sample": "shards.sample",
    "validate_record": "shards.sample",
    "verify_corpus": "shards.verify",
    "shard_is_complete": "shards.writer",
    "write_shard": "shards.writer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'shards' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
