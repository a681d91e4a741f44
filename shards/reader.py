"""Stream a corpus: ``open_corpus`` builds a WebDataset pipeline over local or remote shards.

Stages, in order: shard list (optionally shuffled by a seeded per-epoch permutation, or resampled
with replacement), split by node (rank / world size from ``RANK`` + ``WORLD_SIZE`` or
torch.distributed), split by DataLoader worker, open each shard as a stream (local files directly,
``http(s)://`` and ``pipe:`` through webdataset's curl/pipe opener, every other URL such as
``gs://``, ``s3://`` or ``memory://`` through fsspec: streamed, never copied whole), tar members ->
samples (:func:`tar_members`: each header checked before its data is read), optional sample
shuffle buffer, decoding.

A decoded sample is ``{"__key__": str, "__url__": str (its shard), "jpg": PIL.Image (RGB), "json":
dict (a valid record), "txt": str}``; with ``decode=False`` the three members stay bytes. A damaged
sample or shard is never yielded: it goes to the ``handler`` with a one-line InputError that names
the shard URL and the sample key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlparse

import braceexpand
import fsspec
from PIL import Image

from common.errors import InputError, error_line
from shards import images, layout, remote
from shards.manifest import read_manifest_file
from shards.sample import IMAGE_SIZE, MEMBER_NAME_RULE, MEMBERS, is_jpeg, split_member_name, validate_record
from shards.tar_stream import TarHeader, TarStream

if TYPE_CHECKING:  # webdataset imports torch (~1.5 s): loaded only by the functions that stream with it
    import webdataset as wds

_GOPEN_SCHEMES = ("http", "https", "pipe")
# A local shard is read through a 1 MiB buffer: with the default 8 KiB, every corpus JPEG (~9 KiB) costs
# its own read system call.
_FILE_BUFFER = 1 << 20
# What one sample may cost a reader. A corpus member is a few KiB (a 256x128 JPEG, a record, a
# caption); a bigger one is damaged or hostile, and is skipped without being read into memory.
MAX_MEMBER_BYTES = 64 * 2**20
MAX_IMAGE_PIXELS = 64 * IMAGE_SIZE[0] * IMAGE_SIZE[1]  # checked from the JPEG header, before decoding

# webdataset's handler convention: called with the exception of one bad shard or sample; returns True to
# skip it and go on, False to stop, or raises. ``reraise`` (the default) stops the stream at the first one.
Handler = Callable[[BaseException], bool]


def reraise(exc: BaseException) -> bool:
    """The default handler: stop the stream at the first damaged shard or sample (webdataset's
    ``reraise_exception``)."""
    raise exc


class SkipAndCount:
    """A handler that skips every damaged sample or shard and counts it, keeping the last few reasons."""

    def __init__(self, keep_reasons: int = 10) -> None:
        self.skipped = 0
        self.reasons: list[str] = []
        self._keep = keep_reasons

    def __call__(self, exc: BaseException) -> bool:
        self.skipped += 1
        self.reasons = self.reasons + [error_line(exc)]
        self.reasons = self.reasons[-self._keep :]
        return True


def _directory_urls(source: str) -> list[str]:
    fs, root = remote.resolve(source)
    manifest_path = layout.path_of(fs, root, layout.MANIFEST_NAME)
    if fs.exists(manifest_path):
        names = [entry["shard"] for entry in read_manifest_file(fs, manifest_path)["shards"]]
    elif fs.isdir(root):
        names = [stem + layout.TAR_SUFFIX for stem in layout.complete_stems(fs, root)]
    else:
        raise InputError(f"{source}: not a corpus folder, shard URL or brace pattern")
    if not names:
        raise InputError(f"{source}: no complete shards")
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
        raise InputError(f"corpus source {source!r}: no shards")
    return urls


def _open_streams(shards: Iterator[dict[str, Any]], handler: Handler = reraise) -> Iterator[dict[str, Any]]:
    """dict(url) -> dict(url, stream); each stream is closed once its tar has been read."""
    for shard in shards:
        url = shard["url"]
        scheme = urlparse(url).scheme
        try:
            if scheme in _GOPEN_SCHEMES:
                import webdataset as wds

                stream = wds.gopen(url, "rb")
            elif scheme in ("", "file"):
                # closed by the finally below, once the caller has read the tar: no block spans its lifetime
                stream = open(urlparse(url).path if scheme else url, "rb", buffering=_FILE_BUFFER)  # noqa: SIM115
            else:
                stream = fsspec.open(url, "rb").open()
        except Exception as exc:  # any filesystem's "cannot open"
            if handler(InputError(f"{url}: cannot open the shard ({error_line(exc)})")):
                continue
            return
        try:
            yield {**shard, "stream": stream}
        finally:
            stream.close()


class TarMember(NamedTuple):
    """One tar member. ``key``/``member`` are None when the name is not ``<key>.<member>``; ``data`` is
    None when ``problem`` says why the member was not read."""

    name: str
    key: str | None
    member: str | None
    offset: int  # of the data in the tar
    data: bytes | None
    problem: str | None


def _member_problem(header: TarHeader, max_member_bytes: int) -> str | None:
    if not header.regular:
        return f"not a regular file (tar type {header.type!r})"
    if header.size > max_member_bytes:
        return f"{header.size} bytes, over the limit of {max_member_bytes} bytes per member"
    return None


def tar_members(stream: Any, max_member_bytes: int = MAX_MEMBER_BYTES) -> Iterator[TarMember]:
    """The members of the tar ``stream`` in order, each header checked before its data is read.

    Our own iterator rather than webdataset's ``tar_file_expander``: that one reads every member
    whole before anyone sees its size (its ``select_files`` hook gets the name only), so one huge
    member costs its size in memory. Here a member that is not a regular file, has no sample-member
    name or is over ``max_member_bytes`` is yielded with its ``problem`` and skipped unread (in small
    reads). Raises (``tarfile.TarError``, ``OSError``, ...) when the stream is not a whole tar:
    unreadable, cut short, or with data after a damaged header (see :class:`shards.tar_stream.TarStream`).
    """
    archive = TarStream(stream)
    for header in archive:
        try:
            key, member = split_member_name(header.name)
        except ValueError:
            key, member, problem = None, None, f"not a sample member: {MEMBER_NAME_RULE}"
        else:
            problem = _member_problem(header, max_member_bytes)
        data = None if problem else archive.read_data()
        yield TarMember(header.name, key, member, header.offset_data, data, problem)


def _whole(url: str, sample: dict[str, Any]) -> dict[str, Any] | InputError:
    """The sample, or an InputError when it misses one of its members (it is damaged: say which shard and key)."""
    for member in MEMBERS:
        if member not in sample:
            return InputError(f"{url}: sample {sample['__key__']!r}: no {member!r} member")
    return sample


def _shard_samples(url: str, stream: Any, max_member_bytes: int) -> Iterator[dict[str, Any] | InputError]:
    """The samples of one shard (consecutive members sharing a key), and an InputError for each damaged
    member (its sample is dropped whole), for each sample missing a member, or for a tar that cannot be
    read to its end."""
    current, sample, last = None, None, None  # key being read; its members (None once damaged); last member
    try:
        for item in tar_members(stream, max_member_bytes):
            last = item.name
            if item.key is None:
                yield InputError(f"{url}: member {item.name!r}: {item.problem}")
                continue
            if item.key != current:
                if sample is not None:
                    yield _whole(url, sample)
                current, sample = item.key, {"__key__": item.key, "__url__": url}
            if sample is None:  # the rest of a damaged sample: already reported
                continue
            problem = item.problem or (f"a second {item.member!r} member" if item.member in sample else None)
            if problem:
                yield InputError(f"{url}: sample {item.key!r}: member {item.name!r}: {problem}")
                sample = None
                continue
            sample[item.member] = item.data
    except Exception as exc:  # whatever a damaged stream raises (tarfile, zlib, the filesystem)
        if sample is not None and all(m in sample for m in MEMBERS):
            yield sample  # read whole before the damage
        where = f"after member {last!r}" if last is not None else "at its start"
        yield InputError(f"{url}: unreadable tar {where} ({error_line(exc)})")
        return
    if sample is not None:
        yield _whole(url, sample)


def _tar_samples(
    shards: Iterator[dict[str, Any]], handler: Handler = reraise, max_member_bytes: int = MAX_MEMBER_BYTES
) -> Iterator[dict[str, Any]]:
    """dict(url, stream) -> whole samples ``{"__key__", "__url__", "jpg", "json", "txt"}`` (bytes); damage goes
    to ``handler``."""
    for shard in shards:
        for item in _shard_samples(shard["url"], shard["stream"], max_member_bytes):
            if isinstance(item, InputError):
                if handler(item):
                    continue
                return
            yield item


def _damaged(sample: dict[str, Any], member: str, reason: str) -> InputError:
    return InputError(
        f"{sample.get('__url__', '(no shard)')}: sample {sample['__key__']!r}: damaged {member} "
        f"member ({reason}); run `spac shards verify`"
    )


def sample_image(sample: dict[str, Any]) -> Image.Image:
    """The sample's ``jpg`` as a PIL RGB image; a one-line InputError naming shard and key if it is damaged."""
    if not is_jpeg(sample["jpg"]):
        raise _damaged(sample, "jpg", "not a JPEG")
    try:
        return images.decode_image(sample["jpg"], max_pixels=MAX_IMAGE_PIXELS)
    except images.ImageRejected as exc:
        raise _damaged(sample, "jpg", error_line(exc)) from None


def decode_record(sample: dict[str, Any]) -> dict[str, Any]:
    """The sample's ``json`` as a valid record with the sample's key; else a one-line InputError naming
    shard and key."""
    try:
        record = json.loads(sample["json"])
        validate_record(record)
    except (ValueError, RecursionError) as exc:  # JSON and UTF-8 errors are ValueErrors; deep nesting recurses
        raise _damaged(sample, "json", error_line(exc)) from None
    if record["key"] != sample["__key__"]:
        raise _damaged(sample, "json", f"record key {record['key']!r}")
    return record


def decode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """Raw members -> PIL RGB image, record dict, caption string; a one-line InputError naming shard and key
    when one is damaged."""
    try:
        text = sample["txt"].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _damaged(sample, "txt", error_line(exc)) from None
    decoded = {"__key__": sample["__key__"], "jpg": sample_image(sample), "json": decode_record(sample), "txt": text}
    if "__url__" in sample:
        decoded["__url__"] = sample["__url__"]
    return decoded


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
    max_member_bytes: int = MAX_MEMBER_BYTES,
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
    default) raises a one-line InputError naming the shard URL and the key; ``SkipAndCount()`` skips it
    and counts it. Damaged: unreadable, cut short, a member that is not ``<key>.jpg|json|txt`` (keys
    from ``[A-Za-z0-9_-]``, no paths), not a regular file, a duplicate, missing, or undecodable.
    ``max_member_bytes``: a bigger member (default :data:`MAX_MEMBER_BYTES`, 64 MiB) damages its sample
    and is skipped without being read into memory.
    """
    if shuffle < 0:
        raise ValueError(f"shuffle: expected a buffer size >= 0, got {shuffle}")
    if epoch_size is not None and epoch_size < 1:
        raise ValueError(f"epoch_size: expected a positive number of samples, got {epoch_size}")
    if max_member_bytes < 1:
        raise ValueError(f"max_member_bytes: expected a positive number of bytes, got {max_member_bytes}")
    if resampled and epoch_size is None:
        raise ValueError("resampled=True streams forever: give epoch_size")
    import webdataset as wds

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
    stages += [
        wds.pipelinefilter(_open_streams)(handler=handler),
        wds.pipelinefilter(_tar_samples)(handler=handler, max_member_bytes=max_member_bytes),
    ]
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
