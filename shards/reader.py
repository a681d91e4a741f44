"""Stream a corpus: ``open_corpus`` builds a WebDataset pipeline over local or remote shards.

Stages, in order: shard list (optionally shuffled by a seeded per-epoch permutation, or resampled
with replacement), split by node (rank / world size from ``RANK`` + ``WORLD_SIZE`` or
torch.distributed), split by DataLoader worker, open each shard as a stream (local files directly,
``http(s)://`` and ``pipe:`` through webdataset's curl/pipe opener, every other URL such as
``gs://``, ``s3://`` or ``memory://`` through fsspec: streamed, never copied whole), tar members ->
samples, optional sample shuffle buffer, decoding.

A decoded sample is ``{"__key__": str, "jpg": PIL.Image (RGB), "json": dict, "txt": str}``; with
``decode=False`` the three members stay bytes.
"""
from __future__ import annotations

import io
import json
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import urlparse

import braceexpand
import fsspec
import webdataset as wds
from PIL import Image

from shards import layout, remote
from shards.manifest import read_manifest_file
from shards.sample import MEMBERS

_GOPEN_SCHEMES = ("http", "https", "pipe")

# webdataset's handler convention: called with the exception of one bad shard or sample; returns True to
# skip it and go on, False to stop, or raises. ``reraise`` (the default) stops the stream at the first one.
Handler = Callable[[BaseException], bool]
reraise = wds.reraise_exception


class SkipAndCount:
    """A handler that skips every damaged sample or shard and counts it, keeping the last few reasons."""

    def __init__(self, keep_reasons: int = 10) -> None:
        self.skipped = 0
        self.reasons: list[str] = []
        self._keep = keep_reasons

    def __call__(self, exc: BaseException) -> bool:
        self.skipped += 1
        self.reasons = (self.reasons + [str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)])
        self.reasons = self.reasons[-self._keep:]
        return True


def _directory_urls(source: str) -> list[str]:
    fs, root = remote.resolve(source)
    manifest_path = layout.path_of(fs, root, layout.MANIFEST_NAME)
    if fs.exists(manifest_path):
        names = [entry["shard"] for entry in read_manifest_file(fs, manifest_path)["shards"]]
    elif fs.isdir(root):
        names = [stem + layout.TAR_SUFFIX for stem in layout.complete_stems(fs, root)]
    else:
        raise ValueError(f"{source}: not a corpus folder, shard URL or brace pattern")
    if not names:
        raise ValueError(f"{source}: no complete shards")
    return [remote.url(fs, layout.path_of(fs, root, name)) for name in names]


def shard_urls(source: str | Sequence[str]) -> list[str]:
    """The shard URLs of a folder (its manifest, else its complete shards), a brace pattern or a list."""
    if isinstance(source, (list, tuple)):
        urls = [url for item in source for url in braceexpand.braceexpand(str(item))]
    elif not isinstance(source, str):
        raise ValueError(f"corpus source: expected a path, URL, pattern or list, got {type(source).__name__}")
    elif "{" in source or source.endswith(layout.TAR_SUFFIX):
        urls = list(braceexpand.braceexpand(source))
    else:
        urls = _directory_urls(source)
    if not urls:
        raise ValueError(f"corpus source {source!r}: no shards")
    return urls


def _open_streams(shards: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """dict(url) -> dict(url, stream); each stream is closed once its tar has been read."""
    for shard in shards:
        url = shard["url"]
        scheme = urlparse(url).scheme
        if scheme in _GOPEN_SCHEMES:
            stream = wds.gopen(url, "rb")
        elif scheme in ("", "file"):
            stream = open(urlparse(url).path if scheme else url, "rb")
        else:
            stream = fsspec.open(url, "rb").open()
        try:
            yield {**shard, "stream": stream}
        finally:
            stream.close()


def _complete(samples: Iterator[dict[str, Any]], handler: Handler = reraise) -> Iterator[dict[str, Any]]:
    """Keep the sample members only; a sample missing one is damaged: say which shard and key."""
    for sample in samples:
        missing = [m for m in MEMBERS if m not in sample]
        if missing:
            error = ValueError(f"{sample.get('__url__')}: sample {sample.get('__key__')!r} has no "
                               f"{missing[0]!r} member")
            if handler(error):
                continue
            break
        yield {"__key__": sample["__key__"], **{m: sample[m] for m in MEMBERS}}


def decode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """Raw members -> PIL RGB image, record dict, caption string; ValueError naming the key if one is damaged."""
    try:
        return {
            "__key__": sample["__key__"],
            "jpg": Image.open(io.BytesIO(sample["jpg"])).convert("RGB"),
            "json": json.loads(sample["json"]),
            "txt": sample["txt"].decode("utf-8"),
        }
    except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError; JSON / UTF-8 errors ValueErrors
        raise ValueError(f"sample {sample['__key__']!r}: damaged member ({exc}); run `spac shards verify`") from None


def open_corpus(
    source: str | Sequence[str],
    *,
    shuffle: int = 0,
    seed: int = 0,
    shard_shuffle: bool = False,
    decode: bool = True,
    split_by_node: bool = True,
    split_by_worker: bool = True,
    epoch_size: int | None = None,
    resampled: bool = False,
    handler: Handler = reraise,
) -> wds.FluidWrapper:
    """A WebDataset pipeline over the corpus at ``source`` (a DataPipeline with ``.batched``, ``.map``, ...).

    ``shuffle``: sample shuffle buffer size (0 = keep shard order). ``seed``: seeds both shuffles; each
    new iteration (epoch) draws a new, reproducible order, identical on every rank so that the node
    split stays disjoint. ``shard_shuffle``: permute the shard list per epoch. ``split_by_node`` /
    ``split_by_worker``: give each rank / DataLoader worker its own shards (every rank needs at least
    one shard). ``epoch_size``: make one iteration exactly this many samples, repeating the shards as
    needed (webdataset's ``with_epoch``: counted per iterator, i.e. per DataLoader worker), so every
    rank runs the same number of batches. ``resampled``: draw shards with replacement, seeded per rank
    and worker (needs ``epoch_size``; no node split then).

    The epoch counter behind the per-epoch orders lives in the pipeline object; DataLoader workers
    that are not persistent get a fresh copy each epoch, so use ``persistent_workers=True`` or pass
    ``seed=base_seed + epoch`` to get a new order every epoch.

    ``handler`` decides what a damaged shard or sample does (webdataset's convention): ``reraise`` (the
    default) raises a one-line ValueError naming it; ``SkipAndCount()`` skips it and counts it.
    """
    if shuffle < 0:
        raise ValueError(f"shuffle: expected a buffer size >= 0, got {shuffle}")
    if epoch_size is not None and epoch_size < 1:
        raise ValueError(f"epoch_size: expected a positive number of samples, got {epoch_size}")
    if resampled and epoch_size is None:
        raise ValueError("resampled=True streams forever: give epoch_size")
    urls = shard_urls(source)  # after the option checks: it may list a remote folder
    stages: list[Any] = []
    if resampled:
        stages.append(wds.ResampledShards(urls, seed=seed, deterministic=True))
    else:
        stages.append(wds.SimpleShardList(urls))
        if shard_shuffle:
            stages.append(wds.detshuffle(len(urls), initial=len(urls), seed=seed))
        if split_by_node:
            stages.append(wds.split_by_node)
    if split_by_worker:
        stages.append(wds.split_by_worker)
    stages += [_open_streams, wds.pipelinefilter(wds.tariterators.tar_file_expander)(handler=handler),
               wds.pipelinefilter(wds.tariterators.group_by_keys)(handler=handler),
               wds.pipelinefilter(_complete)(handler=handler)]
    if shuffle:
        stages.append(wds.detshuffle(shuffle, initial=shuffle, seed=seed))
    if decode:
        stages.append(wds.map(decode_sample, handler=handler))
    pipeline = wds.FluidWrapper(stages[0])
    for stage in stages[1:]:
        pipeline.append(stage)
    return pipeline.with_epoch(epoch_size) if epoch_size is not None else pipeline


def iter_samples(source: str | Sequence[str]) -> Iterator[dict[str, Any]]:
    """Every decoded sample of the corpus once, in shard and key order (no shuffling, no splitting)."""
    return iter(open_corpus(source, split_by_node=False, split_by_worker=False))
