"""`python -m plip.search`: the images of an embeddings file (``python -m plip.embed``) that best match a
description, or an image (re-identification), by exact cosine search (:func:`plip.embedding_index.search`).

    python -m plip.search --checkpoint PLIP_MRN50.pth.tar --index crops.parquet "a woman in a red coat"
    python -m plip.search --checkpoint PLIP_MRN50.pth.tar --index crops.parquet --image query.jpg --html top.html

Prints a table (rank, score, id, key, path); ``--html`` writes a self-contained page of thumbnails (the images
inlined as base64 JPEGs), ``--json`` the results as JSON. ``--queries FILE`` runs many descriptions in one pass
over the index.

An index is data, not instructions: the page reads a hit's thumbnail from its path only when that is a local
regular file, or, with ``--allow-remote-images``, a shard URL (http(s)://, gs://, s3://). Never a command
(webdataset's ``pipe:``), a FIFO or a URL the user did not allow. Rows whose vector is not finite never rank;
their count is reported.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from PIL import Image

from common.cli import (
    CliError,
    OneLineArgumentParser,
    add_quiet_flag,
    device,
    positive_int,
    run_main,
    silence_libraries,
)
from common.errors import InputError
from plip.embedding import load_embedder
from plip.embedding_index import EmbeddingIndex, Hit, search
from plip.programs.checkpoint_flags import add_released_format_flags
from plip.transforms import read_image
from shards import open_corpus
from shards.reader import SkipAndCount, sample_image

PROG = "python -m plip.search"
THUMBNAIL = (64, 128)  # width, height
REMOTE_SCHEMES = ("http", "https", "gs", "s3")  # what --allow-remote-images lets the page read shards from


@dataclass(frozen=True)
class Settings:
    """The run's validated flags, built once from the command line."""

    texts: tuple[str, ...]  # the descriptions; empty with --image
    image: Path | None
    from_file: bool  # --queries: the results are a list, one per description
    checkpoint: Path
    index: Path
    top_k: int
    html: Path | None
    json: Path | None
    block_rows: int
    device: str
    model: str
    tokenizer: str | None
    threads: int | None
    allow_remote_images: bool
    quiet: bool


def _parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(
        prog=PROG,
        description="Top-k images of an embeddings file for a description "
        "(text-to-person search) or for a query image (re-identification).",
    )
    p.add_argument("query", nargs="?", help='the description, e.g. "a woman in a red coat with a black bag"')
    p.add_argument("--image", type=Path, help="search with this image instead of a description")
    p.add_argument(
        "--queries",
        type=Path,
        help="search with every description in this file (one a line): one "
        "table each, and with --json a list of results",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="the checkpoint that made the index: our "
        "checkpoint directory or a released-format file such as PLIP_MRN50.pth.tar",
    )
    p.add_argument("--index", type=Path, required=True, help="embeddings parquet file of python -m plip.embed")
    p.add_argument("--top-k", "-k", type=positive_int, default=10, help="results to show (default 10)")
    p.add_argument("--html", type=Path, help="also write a self-contained page of thumbnails here")
    p.add_argument("--json", type=Path, help="also write the results (and the query) as JSON here")
    p.add_argument(
        "--allow-remote-images",
        action="store_true",
        help="let --html read thumbnails from the remote "
        "shard URLs (" + ", ".join(f"{s}://" for s in REMOTE_SCHEMES) + ") the index names; without it "
        "only local files are read, whatever the index says",
    )
    p.add_argument(
        "--block-rows",
        type=positive_int,
        default=65536,
        help="index rows scored at a time; bounds memory (default 65536)",
    )
    p.add_argument("--device", type=device, default="auto", help="cpu, cuda, cuda:N or auto (default)")
    add_released_format_flags(p)
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    add_quiet_flag(p)
    return p


def table(hits: Sequence[Hit]) -> str:
    """The results as an aligned plain-text table."""
    rows = [("rank", "score", "id", "key", "path")] + [
        (str(h.rank), f"{h.score:.4f}", "" if h.id is None else str(h.id), h.key, h.path) for h in hits
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(
            [cell.rjust(widths[i]) if i < 3 else cell.ljust(widths[i]) for i, cell in enumerate(row[:4])] + [row[4]]
        ).rstrip()
        for row in rows
    )


def is_remote(path: str) -> bool:
    """Whether ``path`` (read from an index) is a URL rather than a local path."""
    return urlparse(path).scheme not in ("", "file")


def thumbnail_source(path: str, allow_remote: bool) -> str | None:
    """Where the page may read a hit's image: ``path`` when it is a local regular file (not a FIFO, a device or
    a folder), or a shard URL of :data:`REMOTE_SCHEMES` when the user allowed remote reads; else None."""
    if not is_remote(path):
        local = urlparse(path).path if path.startswith("file:") else path
        return local if os.path.isfile(local) else None
    allowed = allow_remote and urlparse(path).scheme in REMOTE_SCHEMES and path.endswith(".tar")
    return path if allowed and "{" not in path else None  # one shard, never a brace pattern of many


def _shard_jpegs(hits: Sequence[Hit], allow_remote: bool) -> dict[tuple[str, str], bytes]:
    """The JPEG bytes of hits that live in shards it may read (:func:`thumbnail_source`), each shard once."""
    wanted: dict[str, tuple[str, set[str]]] = {}  # the hit's path -> (what to open, the keys wanted there)
    for hit in hits:
        source = thumbnail_source(hit.path, allow_remote) if hit.path.endswith(".tar") else None
        if source is not None:
            wanted.setdefault(hit.path, (source, set()))[1].add(hit.key)
    found = {}
    for url, (source, keys) in wanted.items():  # a damaged or missing shard only leaves its thumbnails unavailable
        try:
            for sample in open_corpus(
                [source], decode=False, split_by_node=False, split_by_worker=False, handler=SkipAndCount()
            ):
                if sample["__key__"] in keys:
                    found[(url, sample["__key__"])] = sample
                    keys.discard(sample["__key__"])
                    if not keys:
                        break
        except (OSError, InputError):
            continue
    return found


def _thumbnail(image: Image.Image) -> str:
    image = image.convert("RGB")
    image.thumbnail(THUMBNAIL)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _hit_image(hit: Hit, samples: dict[tuple[str, str], Any]) -> Image.Image | None:
    try:
        if (hit.path, hit.key) in samples:
            return sample_image(samples[(hit.path, hit.key)])
        local = None if hit.path.endswith(".tar") else thumbnail_source(hit.path, allow_remote=False)
        return read_image(local) if local is not None else None
    except InputError:  # a damaged sample, an unreadable file
        return None  # the page shows "image unavailable" rather than failing


def html_page(
    query: str, hits: Sequence[Hit], query_image: Image.Image | None = None, allow_remote: bool = False
) -> str:
    """A self-contained HTML page: the query and a thumbnail per hit (images inlined as base64), read only
    from where :func:`thumbnail_source` allows."""
    samples = _shard_jpegs(hits, allow_remote)
    cards = []
    for hit in hits:
        image = _hit_image(hit, samples)
        picture = (
            f'<img src="{_thumbnail(image)}" alt="{html.escape(hit.key)}">'
            if image is not None
            else '<div class="missing">image unavailable</div>'
        )
        identity = "" if hit.id is None else f" &middot; id {hit.id}"
        cards.append(
            f"<figure>{picture}<figcaption>#{hit.rank} &middot; {hit.score:.3f}{identity}<br>"
            f'<span title="{html.escape(hit.path)}">{html.escape(hit.key)}</span></figcaption></figure>'
        )
    shown = f'<img src="{_thumbnail(query_image)}" alt="query"> ' if query_image is not None else ""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>plip.search</title><style>'
        "body{font-family:sans-serif;margin:1em}figure{display:inline-block;margin:.4em;text-align:center;"
        "font-size:12px;width:100px;vertical-align:top}img{height:128px}"
        ".missing{height:128px;line-height:128px;background:#eee}</style></head><body>\n"
        f"<h1>{shown}{html.escape(query)}</h1>\n" + "\n".join(cards) + "\n</body></html>\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m plip.search``: bad input is one line on stderr and exit 2."""
    return run_main(PROG, _main, argv)


def settings(argv: Sequence[str] | None) -> Settings:
    """The command line, parsed and checked."""
    args = _parser().parse_args(argv)
    texts = _queries(args)
    if args.html and len(texts) > 1:
        raise CliError("--html shows one query: use it with a description or --image")
    return Settings(
        texts=tuple(texts),
        image=args.image,
        from_file=args.queries is not None,
        checkpoint=args.checkpoint,
        index=args.index,
        top_k=args.top_k,
        html=args.html,
        json=args.json,
        block_rows=args.block_rows,
        device=args.device,
        model=args.model,
        tokenizer=args.tokenizer,
        threads=args.threads,
        allow_remote_images=args.allow_remote_images,
        quiet=args.quiet,
    )


def _queries(args: Any) -> list[str]:
    """The descriptions asked for: the positional one or the lines of ``--queries``."""
    given = [args.query is not None, args.image is not None, args.queries is not None]
    if sum(given) != 1:
        raise CliError("give a description, --image or --queries (one of them)")
    if args.queries is not None:
        if not args.queries.is_file():
            raise CliError(f"--queries {args.queries}: no such file")
        texts = [line.strip() for line in args.queries.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not texts:
            raise CliError(f"--queries {args.queries}: holds no description")
        return texts
    if args.query is not None and not args.query.strip():
        raise CliError("the description is empty")
    return [args.query] if args.query is not None else []


def _main(argv: Sequence[str] | None) -> int:
    run = settings(argv)
    silence_libraries(run.quiet)
    if run.threads:
        torch.set_num_threads(run.threads)
    index = EmbeddingIndex(run.index)
    query_image = read_image(run.image) if run.image is not None else None
    embedder = load_embedder(run.checkpoint, run.device, run.model, run.tokenizer)
    made_with = index.metadata.get("checkpoint")
    if not run.quiet and made_with and made_with != str(run.checkpoint.resolve()):
        print(f"{PROG}: note: {run.index} was embedded with {made_with}", file=sys.stderr)
    queries = embedder.embed_images([query_image]) if query_image is not None else embedder.embed_texts(run.texts)
    if not torch.isfinite(queries).all():
        raise CliError(f"{run.checkpoint}: gives a query embedding that is not finite (NaN or inf): damaged weights?")
    results = search(index, queries, run.top_k, "image", run.block_rows, embedder.device)
    skipped = index.skipped_vectors
    if not results[0]:
        raise CliError(
            f"{run.index}: holds no image embeddings"
            + (f" with finite values ({skipped} non-finite skipped)" if skipped else "")
        )
    if skipped and not run.quiet:
        print(f"{PROG}: note: {run.index}: {skipped} image embeddings with non-finite values skipped", file=sys.stderr)
    labels = list(run.texts) or [f"image {run.image}"]
    for number, (label, hits) in enumerate(zip(labels, results)):
        print(("\n" if number else "") + (f"# {label}\n" if len(labels) > 1 else "") + table(hits))
    if run.html:
        _write_page(run.html, run, labels[0], results[0], query_image)
    if run.json:
        found = [{"query": label, "hits": [h.as_dict() for h in hits]} for label, hits in zip(labels, results)]
        record = {
            "index": str(run.index),
            "checkpoint": str(run.checkpoint),
            "skipped_vectors": skipped,
            **(found[0] if not run.from_file else {"results": found}),
        }
        run.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0


def _write_page(page: Path, run: Settings, query: str, hits: Sequence[Hit], query_image: Image.Image | None) -> None:
    page.write_text(html_page(query, hits, query_image, run.allow_remote_images), encoding="utf-8")
    remote = sum(is_remote(hit.path) for hit in hits)
    if remote and not run.allow_remote_images and not run.quiet:
        print(
            f"{PROG}: note: {remote} thumbnails of remote paths left out of {page} (pass "
            "--allow-remote-images to read them)",
            file=sys.stderr,
        )
