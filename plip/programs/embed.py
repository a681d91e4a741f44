"""`python -m plip.embed`: embed a folder, a manifest or corpus shards of images, and / or a text file, into one
parquet file (:mod:`plip.embedding_index`: ``key``, ``path``, ``kind``, ``text``, ``id``, ``vector``).

    python -m plip.embed --checkpoint PLIP_MRN50.pth.tar --images crops/ --out crops.parquet
    python -m plip.embed --checkpoint runs/rn50/last --shards corpus/ --texts queries.txt --out all.parquet

Keys: an image's key is :func:`shards.keys.make_key` of its path relative to the folder (or as the manifest
lists it), a shard sample's its ``__key__``, a text's ``text:<line number>``. A rerun with the same ``--out``
skips every key already written (a killed run loses at most one batch) and refuses another checkpoint.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from common.cli import (
    CliError,
    OneLineArgumentParser,
    add_quiet_flag,
    device,
    non_negative_int,
    positive_int,
    run_main,
    silence_libraries,
)
from common.errors import InputError
from plip.embedding import Embedder, batched, load_embedder, preprocess_image
from plip.embedding_index import IndexWriter
from plip.programs.checkpoint_flags import add_released_format_flags
from plip.transforms import ImageReadError
from shards import open_corpus, reraise
from shards.keys import make_key
from shards.reader import SkipAndCount, decode_record, sample_image

PROG = "python -m plip.embed"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MANIFEST_SUFFIXES = (".txt", ".csv", ".jsonl")


class ImageItem(NamedTuple):
    key: str
    path: str
    id: int | None


@dataclass(frozen=True)
class Settings:
    """The run's validated flags, built once from the command line."""

    checkpoint: Path
    out: Path
    images: str | None
    shards: str | None
    texts: Path | None
    device: str
    batch_size: int
    text_batch_size: int
    workers: int
    skip_bad: bool
    overwrite: bool
    model: str
    tokenizer: str | None
    threads: int | None
    quiet: bool


def _parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(
        prog=PROG,
        description="Embed images and / or texts with a PLIP checkpoint into a "
        "parquet file (key, path, kind, text, id, vector); reruns resume by key.",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="our checkpoint directory (model.safetensors + "
        "config.json) or a released-format file such as PLIP_MRN50.pth.tar",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="the parquet file to write (parts of an unfinished run wait beside it in OUT.parts/)",
    )
    source = p.add_argument_group("inputs (at least one)")
    source.add_argument(
        "--images",
        help="a folder (searched recursively for " + " ".join(IMAGE_SUFFIXES) + "), or "
        "a manifest: .txt (one image path a line), .csv / .jsonl (a 'path' column, optional 'id'); "
        "relative paths are taken from the manifest's folder; a folder's images get the id of an integer parent "
        "folder name (<identity>/<n>.jpg)",
    )
    source.add_argument("--shards", help="corpus shards: a folder, a brace pattern or a URL (shards.open_corpus)")
    source.add_argument("--texts", type=Path, help="a text file, one description a line (blank lines skipped)")
    p.add_argument("--device", type=device, default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=32,
        help="images per forward pass; each batch is saved as it is done (default 32)",
    )
    p.add_argument("--text-batch-size", type=positive_int, default=128, help="texts per forward pass (default 128)")
    p.add_argument(
        "--workers", type=non_negative_int, default=0, help="DataLoader processes reading images (default 0)"
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable images (and damaged shard samples) "
        "and items whose embedding is not finite (NaN or inf), count them and go on (default: stop with "
        "a one-line error naming the file)",
    )
    p.add_argument("--overwrite", action="store_true", help="start again: delete OUT and its parts first")
    add_released_format_flags(p)
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    add_quiet_flag(p)
    return p


# --- inputs --------------------------------------------------------------------------------------------


def _identity(text: Any) -> int | None:
    value = str(text).strip() if text is not None else ""
    return int(value) if value.isdigit() else None


def folder_items(folder: Path) -> list[ImageItem]:
    """Every image under ``folder`` in path order; ``id`` is an integer parent folder name (``<identity>/<n>.jpg``)."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    items = []
    for path in files:
        relative = path.relative_to(folder).as_posix()
        parent = PurePosixPath(relative).parent.name
        items.append(ImageItem(make_key(relative), str(path), _identity(parent) if parent else None))
    return items


def _manifest_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".txt":
        yield from ((n, {"path": line.strip()}) for n, line in enumerate(text.splitlines(), 1) if line.strip())
    elif path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CliError(f"{path}: line {number}: invalid JSON ({exc.msg})") from None
                yield number, row
    else:
        yield from enumerate(csv.DictReader(text.splitlines()), 2)


def manifest_items(path: Path) -> list[ImageItem]:
    """The images a manifest lists (each once), keys from their paths as listed."""
    items: dict[str, ImageItem] = {}
    for number, row in _manifest_rows(path):
        if not isinstance(row, dict) or not isinstance(row.get("path"), str) or not row["path"].strip():
            raise CliError(f"{path}: row {number}: needs a non-empty 'path'")
        listed = row["path"].strip()
        image = Path(listed) if Path(listed).is_absolute() else path.parent / listed
        identity = row.get("id", row.get("identity"))
        if identity not in (None, "") and _identity(identity) is None:
            raise CliError(f"{path}: row {number}: id {identity!r} is not a non-negative integer")
        item = ImageItem(make_key(PurePosixPath(listed).as_posix().lstrip("/")), str(image), _identity(identity))
        if items.setdefault(item.key, item).path != item.path:
            raise CliError(f"{path}: row {number}: {listed} has the key {item.key} of {items[item.key].path}")
    return list(items.values())


def image_items(location: str) -> list[ImageItem]:
    path = Path(location)
    if path.is_dir():
        items = folder_items(path)
    elif path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        items = manifest_items(path)
    elif path.is_file():
        raise CliError(f"--images {location}: a file but not a manifest ({', '.join(MANIFEST_SUFFIXES)})")
    else:
        raise CliError(f"--images {location}: no such folder or manifest")
    if not items:
        raise CliError(f"--images {location}: no images found")
    return items


def text_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise CliError(f"--texts {path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise CliError(f"--texts {path}: not UTF-8 text") from None
    rows = [
        {"key": f"text:{n}", "path": str(path), "kind": "text", "text": line.strip(), "id": None}
        for n, line in enumerate(lines, 1)
        if line.strip()
    ]
    if not rows:
        raise CliError(f"--texts {path}: holds no text")
    return rows


class _Images(Dataset):
    """Items' images through the model's input transform; an unreadable one comes back as its one-line reason
    (workers get the image size only, not the model)."""

    def __init__(self, image_size: tuple[int, int], items: Sequence[ImageItem]):
        self.image_size, self.items = image_size, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | str]:
        try:
            return index, preprocess_image(self.items[index].path, self.image_size)
        except ImageReadError as exc:
            return index, str(exc)


def _collate(batch: list[tuple[int, torch.Tensor | str]]) -> list[tuple[int, torch.Tensor | str]]:
    return batch


# --- the work ------------------------------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.written = self.skipped_done = self.bad = self.non_finite = 0


def _write_finite(
    writer: IndexWriter, rows: list[dict[str, Any]], vectors: torch.Tensor, run: Settings, tally: Tally
) -> None:
    """Write the rows whose embedding is finite. One that is not (NaN or inf: a damaged model, an overflow) is
    that item's failure: a one-line error naming it, or with --skip-bad left out and counted; never written,
    since a NaN vector would rank first for every query."""
    finite = torch.isfinite(vectors).all(dim=1)
    if not finite.all():
        failed = rows[int((~finite).nonzero()[0, 0])]
        if not run.skip_bad:
            raise CliError(f"{failed['path']}: the embedding of {failed['key']} is not finite (NaN or inf)")
        tally.non_finite += int((~finite).sum())
        rows, vectors = [row for row, ok in zip(rows, finite.tolist()) if ok], vectors[finite]
    writer.write(rows, vectors)
    tally.written += len(rows)


def _write_images(
    writer: IndexWriter,
    batch: list[tuple[dict[str, Any], torch.Tensor]],
    embedder: Embedder,
    run: Settings,
    tally: Tally,
) -> None:
    if batch:
        vectors = embedder.embed_image_tensors(torch.stack([t for _, t in batch]))
        _write_finite(writer, [row for row, _ in batch], vectors, run, tally)


def embed_files(
    embedder: Embedder, items: list[ImageItem], writer: IndexWriter, done: set[str], run: Settings, tally: Tally
) -> None:
    todo = [item for item in items if item.key not in done]
    tally.skipped_done += len(items) - len(todo)
    loader = DataLoader(
        _Images(embedder.image_size, todo), batch_size=run.batch_size, num_workers=run.workers, collate_fn=_collate
    )
    with tqdm(total=len(todo), desc="images", unit="img", disable=run.quiet) as bar:
        for batch in loader:
            ready = []
            for index, value in batch:
                item = todo[index]
                if isinstance(value, str):
                    if not run.skip_bad:
                        raise CliError(value)
                    tally.bad += 1
                    continue
                ready.append(
                    ({"key": item.key, "path": item.path, "kind": "image", "text": None, "id": item.id}, value)
                )
            _write_images(writer, ready, embedder, run, tally)
            bar.update(len(batch))


def embed_shards(
    embedder: Embedder, source: str, writer: IndexWriter, done: set[str], run: Settings, tally: Tally
) -> None:
    handler = SkipAndCount() if run.skip_bad else reraise
    samples = open_corpus(source, decode=False, split_by_node=False, split_by_worker=False, handler=handler)
    ready: list[tuple[dict[str, Any], torch.Tensor]] = []
    for sample in tqdm(samples, desc="samples", unit="img", disable=run.quiet):
        key = sample["__key__"]
        if key in done:
            tally.skipped_done += 1
            continue
        try:
            image, record = sample_image(sample), decode_record(sample)
        except InputError:
            if not run.skip_bad:
                raise
            tally.bad += 1
            continue
        identity = record.get("id") if isinstance(record.get("id"), int) else None
        row = {"key": key, "path": sample.get("__url__", source), "kind": "image", "text": None, "id": identity}
        ready.append((row, embedder.preprocess(image)))
        if len(ready) == run.batch_size:
            _write_images(writer, ready, embedder, run, tally)
            ready = []
    _write_images(writer, ready, embedder, run, tally)
    if isinstance(handler, SkipAndCount):
        tally.bad += handler.skipped


def embed_text_file(
    embedder: Embedder, rows: list[dict[str, Any]], writer: IndexWriter, done: set[str], run: Settings, tally: Tally
) -> None:
    todo = [row for row in rows if row["key"] not in done]
    tally.skipped_done += len(rows) - len(todo)
    with tqdm(total=len(todo), desc="texts", unit="text", disable=run.quiet) as bar:
        for batch in batched(todo, run.text_batch_size):
            _write_finite(writer, batch, embedder.embed_text_batch([row["text"] for row in batch]), run, tally)
            bar.update(len(batch))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m plip.embed``: bad input is one line on stderr and exit 2."""
    return run_main(PROG, _main, argv)


def settings(argv: Sequence[str] | None) -> Settings:
    """The command line, parsed and checked."""
    args = _parser().parse_args(argv)
    if not (args.images or args.shards or args.texts):
        raise CliError("nothing to embed: give --images, --shards and / or --texts")
    return Settings(
        checkpoint=args.checkpoint,
        out=args.out,
        images=args.images,
        shards=args.shards,
        texts=args.texts,
        device=args.device,
        batch_size=args.batch_size,
        text_batch_size=args.text_batch_size,
        workers=args.workers,
        skip_bad=args.skip_bad,
        overwrite=args.overwrite,
        model=args.model,
        tokenizer=args.tokenizer,
        threads=args.threads,
        quiet=args.quiet,
    )


def _main(argv: Sequence[str] | None) -> int:
    run = settings(argv)
    silence_libraries(run.quiet)
    if run.threads:
        torch.set_num_threads(run.threads)
    items = image_items(run.images) if run.images else []
    texts = text_rows(run.texts) if run.texts else []
    embedder = load_embedder(run.checkpoint, run.device, run.model, run.tokenizer)
    checkpoint = str(run.checkpoint.resolve())
    writer = IndexWriter(run.out, embedder.dim, {"checkpoint": checkpoint}, overwrite=run.overwrite)
    done = writer.done_keys()
    tally = Tally()
    if items:
        embed_files(embedder, items, writer, done, run, tally)
    if run.shards:
        embed_shards(embedder, run.shards, writer, done, run, tally)
    if texts:
        embed_text_file(embedder, texts, writer, done, run, tally)
    rows = writer.finish()
    if not run.quiet:
        print(
            f"{run.out}: {rows} rows ({tally.written} embedded now, {tally.skipped_done} already there"
            + (f", {tally.bad} unreadable skipped" if tally.bad else "")
            + (f", {tally.non_finite} non-finite embeddings skipped" if tally.non_finite else "")
            + ")",
            file=sys.stderr,
        )
    return 0
