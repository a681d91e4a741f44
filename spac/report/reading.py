"""Reading a corpus folder for `spac report`, local or remote (every path goes through :mod:`shards.remote`,
i.e. fsspec), without reading every shard.

What is read, and how much of it:

1. **The small files**: ``manifest.json`` (the shard list, each shard's sample count, the totals; without a
   manifest, each shard's ``_stats.json`` instead), ``job.json``, ``filter_report.json``,
   ``import_report.json``, and ``deadletter.jsonl`` streamed line by line into counts per stage and kind of
   reason (the text before its first ``:``; at most :data:`MAX_REASONS` kinds are kept, the rest are counted
   as "other reasons").
2. **Every parquet index, a few columns** (``id``, ``n_texts``, ``attributes``, ``styles``,
   ``prompt_caption``; with ``--labels`` also ``file_path`` and ``source``), a few at a time on a small
   thread pool: the attribute histograms, texts per image, style shares, identities and the label accuracy
   are exact. An index is a few hundred bytes per sample, and none is kept once counted.
3. **A seeded sample of whole indexes, about ``text_samples`` samples** (``--text-samples``; every index
   when the corpus is no bigger): the text statistics (words per text, vocabulary, distinct-text ratio,
   word overlap) come from these, in Python, so their cost and memory are bounded whatever the corpus
   size; the page says how many samples they cover.
4. **The contact-sheet samples only, by byte range**: ``--samples`` positions are drawn over the whole
   corpus from the manifest's counts (seeded, so the same corpus and seed give the same samples); only the
   shards that hold them are opened, and from each only those samples' ``jpg`` and ``json`` members are
   read, at the offsets their index records (the tar is never streamed). Each record is checked by
   :func:`shards.reader.decode_record`, each image by :func:`shards.reader.sample_image` and against its
   index sha256; a damaged sample is listed on the page, not fatal.

So a 10,000-shard corpus costs 10,000 small column reads (the text columns too, for the shards of step 3),
then, for at most ``--samples`` shards, their offset columns and a few KiB by range from their tars: no tar
is read whole. (benchmarks/report_scale.py: 10,000 one-sample shards report in about 20 s on 2 busy cores,
nearly all of it the 10,000 index reads; 48 tars are opened.)
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.errors import InputError, error_line
from shards import layout, remote
from shards.layout import DATASET_NAME, DEAD_LETTER_NAME, FILTER_REPORT_NAME, IMPORT_REPORT_NAME, JOB_NAME
from shards.manifest import checked_stats, read_json, read_manifest_file, read_stats
from shards.reader import decode_record, sample_image
from spac.corpus.filters import reason_kind

MAX_REASONS = 1000
OTHER_REASONS = "(other reasons)"
SHEET_COLUMNS = ["key", "jpg_sha256", "jpg_offset", "jpg_size", "json_offset", "json_size"]


@dataclass(frozen=True)
class Shard:
    name: str  # the tar's file name
    index_file: str
    count: int


@dataclass
class CorpusFolder:
    directory: str
    fs: Any
    root: str
    shards: list[Shard]
    totals: dict[str, Any]
    has_manifest: bool
    job: dict[str, Any] | None = None
    filter_report: dict[str, Any] | None = None
    import_report: dict[str, Any] | None = None
    files: dict[str, bool] = field(default_factory=dict)  # corpus-wide file name -> present

    @property
    def kind(self) -> str:
        if self.import_report is not None:
            return "import (python -m pipelines.import_corpus)"
        if self.filter_report is not None or self.job is not None:
            return "synthesis (python -m pipelines.synthesize)"
        return "shards only"

    def path(self, name: str) -> str:
        return layout.path_of(self.fs, self.root, name)

    def url(self, name: str) -> str:
        return remote.url(self.fs, self.path(name))


def _optional_json(fs: Any, root: str, name: str) -> Any:
    path = layout.path_of(fs, root, name)
    return read_json(fs, path) if fs.exists(path) else None


def _object_or_none(value: Any, name: str) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise InputError(f"{name}: expected a JSON object")
    return value


def open_folder(directory: str) -> CorpusFolder:
    """The folder's shard list and small files; InputError when it is not a corpus folder."""
    fs, root = remote.resolve(directory)
    if not fs.isdir(root):
        raise InputError(f"{directory}: not a corpus folder (no such folder)")
    manifest_path = layout.path_of(fs, root, layout.MANIFEST_NAME)
    if fs.exists(manifest_path):
        manifest = read_manifest_file(fs, manifest_path)
        shards = [Shard(e["shard"], e["index_file"], int(e["count"])) for e in manifest["shards"]]
        totals, has_manifest = dict(manifest["totals"]), True
    else:  # a folder being written, or one whose manifest was never made: the completion markers
        stats = [checked_stats(read_stats(fs, root, stem), stem) for stem in layout.complete_stems(fs, root)]
        shards = [Shard(s["shard"], s["index_file"], int(s["count"])) for s in stats]
        totals = {
            "shards": len(shards),
            "samples": sum(s["count"] for s in stats),
            "bytes": sum(s["bytes"] for s in stats),
            "captions": sum(s["captions"] for s in stats),
            "texts": sum(s["texts"] for s in stats),
        }
        has_manifest = False
    if not shards:
        raise InputError(f"{directory}: no complete shards (no manifest.json and no *_stats.json)")
    folder = CorpusFolder(directory, fs, root, shards, totals, has_manifest)
    folder.job = _object_or_none(_optional_json(fs, root, JOB_NAME), JOB_NAME)
    folder.filter_report = _object_or_none(_optional_json(fs, root, FILTER_REPORT_NAME), FILTER_REPORT_NAME)
    folder.import_report = _object_or_none(_optional_json(fs, root, IMPORT_REPORT_NAME), IMPORT_REPORT_NAME)
    folder.files = {
        name: fs.exists(layout.path_of(fs, root, name))
        for name in (
            layout.MANIFEST_NAME,
            JOB_NAME,
            DATASET_NAME,
            DEAD_LETTER_NAME,
            FILTER_REPORT_NAME,
            IMPORT_REPORT_NAME,
        )
    }
    return folder


def read_index(folder: CorpusFolder, shard: Shard, columns: Sequence[str]) -> pa.Table:
    with folder.fs.open(folder.path(shard.index_file), "rb") as stream:
        data = stream.read()
    try:
        return pq.read_table(io.BytesIO(data), columns=list(columns))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{folder.url(shard.index_file)}: unreadable parquet index ({exc})") from None


def map_indexes(
    folder: CorpusFolder,
    jobs: Sequence[tuple[Shard, Sequence[str]]],
    threads: int = 8,
    progress: Callable[[], None] | None = None,
) -> Iterator[tuple[Shard, pa.Table]]:
    """(shard, its index's columns) for each (shard, columns) job, in order; ``threads`` reads in flight, and
    never more than a few tables waiting (memory does not grow with the corpus)."""
    window = max(1, threads) * 4
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for start in range(0, len(jobs), window):
            chunk = jobs[start : start + window]
            for (shard, _), table in zip(chunk, pool.map(lambda job: read_index(folder, *job), chunk)):
                yield shard, table
                if progress is not None:
                    progress()


def choose_shards(counts: Sequence[int], budget: int, seed: int) -> list[int]:
    """Sorted positions of shards drawn in a seeded order until they hold ``budget`` samples (at least one
    shard; every shard when the corpus holds no more)."""
    if sum(counts) <= budget:
        return list(range(len(counts)))
    chosen, held = [], 0
    for position in np.random.default_rng([seed, 1]).permutation(len(counts)):
        if chosen and held + counts[position] > budget:
            continue
        chosen.append(int(position))
        held += counts[position]
        if held >= budget:
            break
    return sorted(chosen)


def choose_samples(counts: Sequence[int], n: int, seed: int) -> list[tuple[int, int]]:
    """(shard position, row) of ``n`` samples drawn without replacement over all ``counts`` rows, in corpus order."""
    total = int(sum(counts))
    picks = (
        np.arange(total) if n >= total else np.sort(np.random.default_rng([seed, 0]).choice(total, n, replace=False))
    )
    bounds = np.cumsum(counts)
    shard_of = np.searchsorted(bounds, picks, side="right")
    starts = bounds - np.asarray(counts)
    return [(int(s), int(p - starts[s])) for s, p in zip(shard_of, picks)]


@dataclass
class SheetSample:
    key: str
    shard: str
    record: dict[str, Any]
    jpg: bytes


def _read_range(stream: Any, offset: int, size: int) -> bytes:
    stream.seek(offset)
    data = stream.read(size)
    if len(data) != size:
        raise InputError(f"cut short at byte {offset + len(data)} (expected {size} bytes)")
    return data


def _sheet_sample(folder: CorpusFolder, shard: Shard, stream: Any, row: dict[str, Any]) -> SheetSample:
    url = folder.url(shard.name)
    sample = {
        "__key__": row["key"],
        "__url__": url,
        "jpg": _read_range(stream, row["jpg_offset"], row["jpg_size"]),
        "json": _read_range(stream, row["json_offset"], row["json_size"]),
    }
    if hashlib.sha256(sample["jpg"]).hexdigest() != row["jpg_sha256"]:
        raise InputError(f"{url}: sample {row['key']!r}: jpg differs from its index (sha256); run `spac shards verify`")
    record = decode_record(sample)
    sample_image(sample)  # a JPEG the readers accept, so the page shows what training sees
    return SheetSample(row["key"], shard.name, record, sample["jpg"])


def read_sheet_samples(
    folder: CorpusFolder, picks: Sequence[tuple[int, int]], threads: int = 8, progress: Callable[[], None] | None = None
) -> tuple[list[SheetSample], list[str]]:
    """The picked samples (in ``picks`` order) read by byte range, and one line per sample that could not be."""
    by_shard: dict[int, list[int]] = {}
    for position, row in picks:
        by_shard.setdefault(position, []).append(row)
    jobs = [(folder.shards[p], SHEET_COLUMNS) for p in sorted(by_shard)]
    found: dict[tuple[int, int], SheetSample] = {}
    problems: list[str] = []
    for position, (shard, table) in zip(sorted(by_shard), map_indexes(folder, jobs, threads)):
        rows = table.to_pylist()
        wanted = sorted(by_shard[position], key=lambda r: rows[r]["jpg_offset"] if r < len(rows) else -1)
        try:
            with folder.fs.open(folder.path(shard.name), "rb") as stream:
                for r in wanted:
                    if r >= len(rows):
                        problems.append(
                            f"{folder.url(shard.index_file)}: {len(rows)} rows, the manifest says {shard.count}"
                        )
                        continue
                    try:
                        found[(position, r)] = _sheet_sample(folder, shard, stream, rows[r])
                    except ValueError as exc:
                        problems.append(error_line(exc))
                    if progress is not None:
                        progress()
        except OSError as exc:
            problems.append(f"{folder.url(shard.name)}: cannot open the shard ({exc})")
    return [found[p] for p in picks if p in found], problems


@dataclass
class DeadLetters:
    total: int = 0
    by_stage: Counter = field(default_factory=Counter)
    by_reason: Counter = field(default_factory=Counter)  # (stage, reason) -> letters
    unreadable_lines: int = 0

    def add(self, letter: Any) -> None:
        if not isinstance(letter, dict):
            self.unreadable_lines += 1
            return
        stage = str(letter.get("stage", "?"))
        reason = reason_kind(str(letter.get("reason", "?"))) or "?"
        self.total += 1
        self.by_stage[stage] += 1
        if (stage, reason) not in self.by_reason and len(self.by_reason) >= MAX_REASONS:
            reason = OTHER_REASONS
        self.by_reason[(stage, reason)] += 1


def tally_dead_letters(folder: CorpusFolder) -> DeadLetters | None:
    """Counts of ``deadletter.jsonl`` per stage and reason, streamed; None when the folder has none."""
    if not folder.files.get(DEAD_LETTER_NAME):
        return None
    letters = DeadLetters()
    with folder.fs.open(folder.path(DEAD_LETTER_NAME), "rb") as stream:
        for line in stream:
            if not line.strip():
                continue
            try:
                letters.add(json.loads(line))
            except ValueError:
                letters.unreadable_lines += 1
    return letters


def job_counters(folder: CorpusFolder, letters: DeadLetters | None) -> dict[str, Any]:
    """read, decoded, dead-lettered (by stage and reason), filtered (by reason), written: from the files.

    written = the manifest's samples; read = written + every dead letter (a filtered image is a dead letter
    of stage ``filter``); decoded = read - the letters of :data:`shards.layout.STAGES_BEFORE_DECODED` (the
    stage names both jobs write). Without
    ``deadletter.jsonl`` only ``written`` is known.
    """
    written = int(folder.totals.get("samples", 0))
    filtered: dict[str, int] = {}
    if folder.filter_report is not None and isinstance(folder.filter_report.get("filtered"), dict):
        filtered = {str(k): int(v) for k, v in folder.filter_report["filtered"].items()}
    elif letters is not None:
        filtered = {reason: n for (stage, reason), n in letters.by_reason.items() if stage == layout.STAGE_FILTER}
    if letters is None:
        return {
            "read": None,
            "decoded": None,
            "dead_lettered": None,
            "dead_lettered_by_reason": {},
            "filtered": sum(filtered.values()) if filtered else None,
            "filtered_by_reason": filtered,
            "written": written,
        }
    dead = {key: n for key, n in letters.by_reason.most_common() if key[0] != layout.STAGE_FILTER}
    read = written + letters.total
    return {
        "read": read,
        "decoded": read - sum(letters.by_stage[s] for s in layout.STAGES_BEFORE_DECODED),
        "dead_lettered": sum(dead.values()),
        "dead_lettered_by_reason": dead,
        "filtered": letters.by_stage[layout.STAGE_FILTER],
        "filtered_by_reason": filtered,
        "written": written,
    }


def caption_model_report(folder: CorpusFolder) -> dict[str, Any] | None:
    """The caption-model stage's counters and rejected texts (filter_report.json's ``caption_model``, written
    by a ``--captioner mllm`` or ``spac`` run); None for a corpus without one. Malformed parts read as empty."""
    part = (folder.filter_report or {}).get("caption_model")
    if not isinstance(part, dict):
        return None
    counters = part.get("counters")
    examples = part.get("rejected_examples")
    return {
        "counters": {str(k): v for k, v in counters.items()} if isinstance(counters, dict) else {},
        "rejected_examples": [
            (str(reason), t.get("key"), t.get("style"), t.get("text"))
            for reason, texts in (examples.items() if isinstance(examples, dict) else [])
            if isinstance(texts, list)
            for t in texts
            if isinstance(t, dict)
        ],
    }
