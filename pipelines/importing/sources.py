"""The import job's steps: entries of a dataset JSON file -> checked corpus records with their images.

Items travel as dicts: ``entry`` (index in the file), ``position`` (index among the selected entries:
it decides the shard), ``record`` (the shard record, :data:`shards.sample.RECORD_FIELDS`),
``out_of_schema`` (``[group, phrase]`` pairs of released phrases our schema does not know) and, once
loaded, ``jpg``. An entry that leaves the job early becomes a dead letter ``{"path", "entry", "stage",
"reason"}`` (``path``: the JSON file for an entry that is malformed, else the image).

- :class:`ReadEntries`: one reader streams the JSON list (:mod:`spac.sources.json_lists`); the entries are
  spread right after it.
- :class:`ParseEntry`: the format's checks (:mod:`spac.sources.released_corpus`, :mod:`spac.sources.caption_files`)
  and the record contract (:func:`shards.sample.validate_record`); the texts' ``attribute_spans``
  (:mod:`spac.language`), so that training on the import need not run spaCy.
- :class:`DropDuplicates`: of entries sharing a key, the first in the file is kept.
- :class:`LoadImage`: the shared path policy (:func:`common.paths.contained_path`: no symbolic link out of the
  image folder), the shared decode policy (:mod:`shards.images`: only a regular file opened) and the corpus JPEG.
- :class:`MineAttributes`: labels of a human-captioned image from its captions (:mod:`spac.mining.labels`).
- :func:`assign_shard`: consecutive blocks of ``--shard_size`` positions, numbered densely.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from common.errors import InputError, error_line
from common.paths import PathOutsideRoot, check_relative, contained_path
from pipelines.importing.job import LAYOUTS, SYNTHPEDES, ImportJob
from pipelines.shared import metrics
from pipelines.shared.dead_letters import DEAD_LETTER, dead_letter
from pipelines.shared.file_names import one_spelling
from pipelines.shared.images import read_image_file
from pipelines.shared.spans import stored_spans
from shards.images import decode_image
from shards.keys import make_key
from shards.layout import STAGE_DECODE, STAGE_DEDUPE, STAGE_MINE, STAGE_PARSE, STAGE_READ
from shards.sample import GROUPS, IMAGE_SIZE, IN_SCHEMA_KEY, encode_image, record_texts, validate_record
from spac.attributes import UNKNOWN, Schema, load_schema
from spac.mining.labels import mine_labels
from spac.sources import caption_files as caption_datasets
from spac.sources.json_lists import JsonListError, SkippedEntry, iter_json_list
from spac.sources.released_corpus import check_released_entry

NAMESPACE = "import_corpus"  # the import job's counters
HUMAN_STYLE = "human"
RELEASED_STYLE = "synthpedes-{}"  # the released captions' styles by position: synthpedes-1, synthpedes-2
MINING_BATCH = 256
_INT64_MAX = 2**63 - 1


def counter(name: str) -> beam.metrics.metric.Metrics.DelegatingCounter:
    return metrics.counter(NAMESPACE, name)


def entry_letter(path: str, entry: int, stage: str, reason: str) -> dict[str, Any]:
    """A dead letter of the entry at index ``entry`` of the file; ``reason`` is one line."""
    return {**dead_letter(path, stage, reason), "entry": entry}


class ReadEntries(beam.DoFn):
    """A JSON file -> ``(index, position, entry)`` for each entry of the selected split, in file order.

    ``split`` None selects every entry; otherwise an entry whose ``split`` is another string is skipped
    and counted (one without a string ``split`` goes on, to be dead-lettered as malformed). An entry the reader
    skips (too long, too deep, not valid Unicode) is that entry's dead letter, counted as malformed. Where the file
    stops being a JSON list, one dead letter says where; the entries before it go on.
    """

    def __init__(self, split: str | None):
        self._split = split

    def process(self, path: str) -> Iterator[Any]:
        position = 0
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as stream:
                for index, entry in enumerate(iter_json_list(stream, path)):
                    counter("entries").inc()
                    if isinstance(entry, SkippedEntry):  # too long, too deep, not valid Unicode: this entry only
                        counter("malformed").inc()
                        counter("dead_lettered").inc()
                        yield beam.pvalue.TaggedOutput(
                            DEAD_LETTER, entry_letter(path, index, STAGE_PARSE, entry.reason)
                        )
                        continue
                    split = entry.get("split") if isinstance(entry, dict) else None
                    if self._split is not None and isinstance(split, str) and split != self._split:
                        counter("skipped_split").inc()
                        continue
                    yield index, position, entry
                    position += 1
        except JsonListError as exc:
            counter("unreadable_json").inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, entry_letter(path, exc.index, STAGE_READ, error_line(exc)))
        except OSError as exc:
            counter("unreadable_json").inc()
            reason = f"cannot read: {error_line(exc)}"
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, entry_letter(path, 0, STAGE_READ, reason))


class Parsed(NamedTuple):
    record: dict[str, Any]
    out_of_schema: list[list[str]]
    dropped_texts: int  # blank texts, and sentences past the first (a record holds one)


def stored_file_path(file_path: str) -> str:
    """An entry's ``file_path`` in its one spelling (``Part1/./1/1.jpg`` and ``Part1//1/1.jpg`` are
    ``Part1/1/1.jpg``: one key, so a duplicate is found); InputError for a name that is not relative to the
    image folder with '/' (absolute, a '..' part, a NUL byte, a backslash, a URL)."""
    try:
        check_relative(file_path)
    except PathOutsideRoot as exc:
        raise InputError(f"file_path must be relative to the image folder ({exc})") from None
    if "\\" in file_path or "://" in file_path:
        raise InputError(f"file_path {file_path[:80]!r} must be relative to the image folder, with '/' and no '..'")
    return one_spelling(file_path)


def _kept(texts: Sequence[str]) -> list[tuple[int, str]]:
    """(position, text) of the texts that are not blank."""
    return [(i, t) for i, t in enumerate(texts) if t.strip()]


def released_record(entry: Any, images: str, schema: Schema) -> Parsed:
    """A released SYNTH-PEDES entry as a record: its captions, its sentence and its attributes verbatim
    (``confidence`` None, ``in_schema`` on every group)."""
    released = check_released_entry(entry, schema)
    file_path = stored_file_path(released.file_path)
    captions = _kept(released.captions)
    prompts = _kept(released.prompt_caption)
    out = set(released.attributes.out_of_schema)
    record = {
        "key": make_key(file_path),
        "id": released.id,
        "file_path": file_path,
        "attributes": {
            g: {"value": released.attributes.values[g], "confidence": None, IN_SCHEMA_KEY: g not in out} for g in GROUPS
        },
        "captions": [t for _, t in captions],
        "styles": [RELEASED_STYLE.format(i + 1) for i, _ in captions],
        "prompt_caption": [t for _, t in prompts[:1]],
        "source": FileSystems.join(images, file_path),
    }
    dropped = len(released.captions) - len(captions) + len(released.prompt_caption) - len(prompts[:1])
    return Parsed(record, [[g, released.attributes.values[g]] for g in GROUPS if g in out], dropped)


_ENTRY_SOURCE = "<entry>"


def human_record(entry: Any, layout_name: str, images: str) -> Parsed:
    """A CUHK-PEDES / ICFG-PEDES / RSTPReid entry as a record: its captions (style ``human``), no sentence,
    attributes ``unknown`` until mined."""
    try:
        parsed = caption_datasets.parse_caption_entries([entry], _ENTRY_SOURCE)
    except ValueError as exc:
        raise InputError(str(exc).removeprefix(f"{_ENTRY_SOURCE}: ").removeprefix("entry 0: ")) from None
    if parsed.format != layout_name:
        raise InputError(
            f"an entry in the {caption_datasets.FORMAT_NAMES[parsed.format]} layout, expected "
            f"{caption_datasets.FORMAT_NAMES[layout_name]}"
        )
    caption_record = parsed.records[0]
    file_path = stored_file_path(caption_record.file_path)
    captions = [t for _, t in _kept(caption_record.captions)]
    record = {
        "key": make_key(file_path),
        "id": caption_record.id,
        "file_path": file_path,
        "attributes": {g: {"value": UNKNOWN, "confidence": None} for g in GROUPS},
        "captions": captions,
        "styles": [HUMAN_STYLE] * len(captions),
        "prompt_caption": [],
        "source": FileSystems.join(images, file_path),
    }
    return Parsed(record, [], len(caption_record.captions) - len(captions))


def check_record(record: dict[str, Any]) -> None:
    """The record contract, and what the writer needs besides: UTF-8 text, an id the index can hold."""
    validate_record(record)
    if record["id"] > _INT64_MAX:
        raise InputError(f"'id' {record['id']} is larger than the index holds (int64)")
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: an undecodable byte in the file, or a "\ud800" escape
        raise InputError("a text that is not valid Unicode (an undecodable byte or a lone surrogate escape)") from None


class ParseEntry(beam.DoFn):
    """``(index, position, entry)`` -> an item (see the module docstring), or a dead letter."""

    def __init__(self, job: ImportJob):
        self._format, self._layout = job.format, LAYOUTS[job.format]
        self._annotations, self._images = job.annotations, job.images
        self._schema: Schema | None = None

    def setup(self) -> None:
        self._schema = load_schema()

    def process(self, item: tuple[int, int, Any]) -> Iterator[Any]:
        index, position, entry = item
        try:
            if self._format == SYNTHPEDES:
                parsed = released_record(entry, self._images, self._schema)
            else:
                parsed = human_record(entry, self._layout, self._images)
            check_record(parsed.record)
            record = {**parsed.record, "attribute_spans": stored_spans(record_texts(parsed.record))}
        except ValueError as exc:
            counter("malformed").inc()
            counter("dead_lettered").inc()
            letter = entry_letter(self._annotations, index, STAGE_PARSE, error_line(exc))
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, letter)
            return
        if parsed.dropped_texts:
            counter("texts_dropped").inc(parsed.dropped_texts)
        yield {"entry": index, "position": position, "record": record, "out_of_schema": parsed.out_of_schema}


def keyed(item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return item["record"]["key"], item


class DropDuplicates(beam.DoFn):
    """Of the items sharing a key (the same file_path twice, or two paths with one key), the first entry
    in the file is kept; the others are dead-lettered naming it."""

    def __init__(self, annotations: str):
        self._annotations = annotations

    def process(self, grouped: tuple[str, Iterable[dict[str, Any]]]) -> Iterator[Any]:
        key, items = grouped
        first, *others = sorted(items, key=lambda item: item["entry"])
        for item in others:
            counter("duplicates").inc()
            counter("dead_lettered").inc()
            same = item["record"]["file_path"] == first["record"]["file_path"]
            what = "the same file_path" if same else f"key {key} (file_path {first['record']['file_path']!r})"
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTER,
                entry_letter(
                    self._annotations, item["entry"], STAGE_DEDUPE, f"{what} as entry {first['entry']}, which is kept"
                ),
            )
        yield first


def corpus_jpeg(images: str, file_path: str, max_pixels: int, max_bytes: int) -> bytes:
    """The corpus JPEG of the image ``file_path`` under the folder ``images``, under the shared path policy
    (a local file's real path must stay inside ``images``: PathOutsideRoot) and decode policy (only a
    regular file is opened: ImageRejected); OSError when it cannot be read."""
    source = str(contained_path(images, file_path)) if "://" not in images else FileSystems.join(images, file_path)
    data = read_image_file(source, max_bytes)
    return encode_image(decode_image(data, min_size=IMAGE_SIZE, max_pixels=max_pixels, max_bytes=max_bytes))


class LoadImage(beam.DoFn):
    """Attach the corpus JPEG; a missing, unreadable, corrupt or over-budget image, or one whose real path
    leaves the image folder (a symbolic link), is dead-lettered."""

    def __init__(self, images: str, max_pixels: int, max_bytes: int):
        self._images, self._max_pixels, self._max_bytes = images, max_pixels, max_bytes

    def process(self, item: dict[str, Any]) -> Iterator[Any]:
        source = item["record"]["source"]
        try:
            jpg = corpus_jpeg(self._images, item["record"]["file_path"], self._max_pixels, self._max_bytes)
        except (InputError, OSError) as exc:  # InputError: ImageRejected, PathOutsideRoot; OSError: unreadable
            counter("image_rejected").inc()
            counter("dead_lettered").inc()
            if isinstance(exc, InputError):
                reason = str(exc)
            else:
                reason = "image file not found" if not _exists(source) else f"unreadable file: {error_line(exc)}"
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, entry_letter(source, item["entry"], STAGE_DECODE, reason))
            return
        counter("decoded").inc()
        yield {**item, "jpg": jpg}


def _exists(path: str) -> bool:
    try:
        return FileSystems.exists(path)
    except OSError:
        return True  # cannot tell: report the read error itself


class MineAttributes(beam.DoFn):
    """A batch of items -> the same items with attributes mined from their captions (``confidence`` None).

    Mining reads each image's captions on their own, so the batch sizes never change a label.
    """

    def process(self, batch: Sequence[dict[str, Any]]) -> Iterator[Any]:
        try:
            labels = list(mine_labels([item["record"]["captions"] for item in batch], batch_size=MINING_BATCH))
        except ValueError:
            if len(batch) == 1:
                item = batch[0]
                counter("mining_failed").inc()
                counter("dead_lettered").inc()
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTER,
                    entry_letter(
                        item["record"]["source"],
                        item["entry"],
                        STAGE_MINE,
                        "its captions could not be read for attributes",
                    ),
                )
                return
            for item in batch:  # find the one that fails
                yield from self.process([item])
            return
        for item, values in zip(batch, labels):
            attributes = {g: {"value": values[g], "confidence": None} for g in GROUPS}
            yield {**item, "record": {**item["record"], "attributes": attributes}}


def block_of(item: dict[str, Any], shard_size: int) -> int:
    return item["position"] // shard_size


def assign_shard(item: dict[str, Any], blocks: Sequence[int], shard_size: int) -> tuple[int, dict[str, Any]]:
    """(shard index, sample): the item's block of positions, numbered among the blocks that hold an item
    (so the shards are 0..n-1 even where every entry of a block was dead-lettered)."""
    counter("attributes_out_of_schema").inc(len(item["out_of_schema"]))
    if item["out_of_schema"]:
        counter("entries_out_of_schema").inc()
    index = bisect.bisect_left(blocks, block_of(item, shard_size))
    return index, {"__key__": item["record"]["key"], "jpg": item["jpg"], "json": item["record"]}
