"""`python -m plip.search`: the images of an embeddings file (``python -m plip.embed``) that best match a
description, or an image (re-identification), by exact cosine search (:func:`plip.embedding_index.search`).

    python -m plip.search --checkpoint PLIP_MRN50.pth.tar --index crops.parquet "a woman in a red coat"
    python -m plip.search --checkpoint PLIP_MRN50.pth.tar --index crops.parquet --image query.jpg --html top.html

Prints a table (rank, score, id, key, path); ``--html`` writes a self-contained page of thumbnails (the images
inlined as base64 JPEGs), ``--json`` the results as JSON. ``--queries FILE`` runs many descriptions in one pass
over the index.
"""
from __future__ import annotations

import base64
import html
import io
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from plip.embedding import load_embedder
from plip.embedding_index import EmbeddingIndex, Hit, search
from plip.transforms import ImageReadError, read_image
from plip.programs.checkpoint_flags import add_released_format_flags
from shards import open_corpus
from shards.reader import SkipAndCount, sample_image
from common.cli import (CliError, OneLineArgumentParser, add_quiet_flag, device, positive_int, run_main,
                              silence_libraries)

PROG = "python -m plip.search"
THUMBNAIL = (64, 128)  # width, height


def _parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(prog=PROG, description="Top-k images of an embeddings file for a description "
                              "(text-to-person search) or for a query image (re-identification).")
    p.add_argument("query", nargs="?", help="the description, e.g. \"a woman in a red coat with a black bag\"")
    p.add_argument("--image", type=Path, help="search with this image instead of a description")
    p.add_argument("--queries", type=Path, help="search with every description in this file (one a line): one "
                   "table each, and with --json a list of results")
    p.add_argument("--checkpoint", type=Path, required=True, help="the checkpoint that made the index: our "
                   "checkpoint directory or a released-format file such as PLIP_MRN50.pth.tar")
    p.add_argument("--index", type=Path, required=True, help="embeddings parquet file of python -m plip.embed")
    p.add_argument("--top-k", "-k", type=positive_int, default=10, help="results to show (default 10)")
    p.add_argument("--html", type=Path, help="also write a self-contained page of thumbnails here")
    p.add_argument("--json", type=Path, help="also write the results (and the query) as JSON here")
    p.add_argument("--block-rows", type=positive_int, default=65536, help="index rows scored at a time; bounds "
                   "memory (default 65536)")
    p.add_argument("--device", type=device, default="auto", help="cpu, cuda, cuda:N or auto (default)")
    add_released_format_flags(p)
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    add_quiet_flag(p)
    return p


def table(hits: Sequence[Hit]) -> str:
    """The results as an aligned plain-text table."""
    rows = [("rank", "score", "id", "key", "path")] + [
        (str(h.rank), f"{h.score:.4f}", "" if h.id is None else str(h.id), h.key, h.path) for h in hits]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join([cell.rjust(widths[i]) if i < 3 else cell.ljust(widths[i])
                                for i, cell in enumerate(row[:4])] + [row[4]]).rstrip() for row in rows)


def _shard_jpegs(hits: Sequence[Hit]) -> dict[tuple[str, str], bytes]:
    """The JPEG bytes of hits that live in shards, reading each shard once."""
    wanted: dict[str, set[str]] = {}
    for hit in hits:
        if hit.path.endswith(".tar"):
            wanted.setdefault(hit.path, set()).add(hit.key)
    found = {}
    for url, keys in wanted.items():  # a damaged or missing shard only leaves its thumbnails unavailable
        try:
            for sample in open_corpus(url, decode=False, split_by_node=False, split_by_worker=False,
                                      handler=SkipAndCount()):
                if sample["__key__"] in keys:
                    found[(url, sample["__key__"])] = sample
                    keys.discard(sample["__key__"])
                    if not keys:
                        break
        except (OSError, ValueError):
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
        return read_image(hit.path)
    except (ImageReadError, ValueError):
        return None  # the page shows "image unavailable" rather than failing


def html_page(query: str, hits: Sequence[Hit], query_image: Image.Image | None = None) -> str:
    """A self-contained HTML page: the query and a thumbnail per hit (images inlined as base64)."""
    samples = _shard_jpegs(hits)
    cards = []
    for hit in hits:
        image = _hit_image(hit, samples)
        picture = (f'<img src="{_thumbnail(image)}" alt="{html.escape(hit.key)}">' if image is not None
                   else '<div class="missing">image unavailable</div>')
        identity = "" if hit.id is None else f" &middot; id {hit.id}"
        cards.append(f'<figure>{picture}<figcaption>#{hit.rank} &middot; {hit.score:.3f}{identity}<br>'
                     f'<span title="{html.escape(hit.path)}">{html.escape(hit.key)}</span></figcaption></figure>')
    shown = (f'<img src="{_thumbnail(query_image)}" alt="query"> ' if query_image is not None else "")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>plip.search</title><style>"
            "body{font-family:sans-serif;margin:1em}figure{display:inline-block;margin:.4em;text-align:center;"
            "font-size:12px;width:100px;vertical-align:top}img{height:128px}"
            ".missing{height:128px;line-height:128px;background:#eee}</style></head><body>\n"
            f"<h1>{shown}{html.escape(query)}</h1>\n" + "\n".join(cards) + "\n</body></html>\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m plip.search``: bad input is one line on stderr and exit 2."""
    return run_main(PROG, _main, argv)


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
    args = _parser().parse_args(argv)
    silence_libraries(args.quiet)
    texts = _queries(args)
    if args.html and len(texts) > 1:
        raise CliError("--html shows one query: use it with a description or --image")
    if args.threads:
        torch.set_num_threads(args.threads)
    index = EmbeddingIndex(args.index)
    query_image = read_image(args.image) if args.image is not None else None
    embedder = load_embedder(args.checkpoint, args.device, args.model, args.tokenizer)
    made_with = index.metadata.get("checkpoint")
    if not args.quiet and made_with and made_with != str(args.checkpoint.resolve()):
        print(f"{PROG}: note: {args.index} was embedded with {made_with}", file=sys.stderr)
    queries = embedder.embed_images([query_image]) if query_image is not None else embedder.embed_texts(texts)
    results = search(index, queries, args.top_k, "image", args.block_rows, embedder.device)
    if not results[0]:
        raise CliError(f"{args.index}: holds no image embeddings")
    labels = texts or [f"image {args.image}"]
    for number, (label, hits) in enumerate(zip(labels, results)):
        print(("\n" if number else "") + (f"# {label}\n" if len(labels) > 1 else "") + table(hits))
    if args.html:
        args.html.write_text(html_page(labels[0], results[0], query_image), encoding="utf-8")
    if args.json:
        found = [{"query": label, "hits": [h.as_dict() for h in hits]} for label, hits in zip(labels, results)]
        record = {"index": str(args.index), "checkpoint": str(args.checkpoint),
                  **(found[0] if args.queries is None else {"results": found})}
        args.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0
