"""`spac report DIR`: a page to look at a corpus: a contact sheet of samples, plots and the job's counters.

DIR is a corpus folder written by ``python -m pipelines.synthesize`` or ``python -m pipelines.import_corpus``
(or any folder of shards), local or remote (fsspec URL). The page is one HTML file whose plots (PNG) and
thumbnails lie in a folder beside it (``report.html`` + ``report_files/``).

It never reads every shard: the statistics come from the parquet indexes and the contact sheet from byte
ranges of the few shards that hold its samples (see :mod:`spac.report.reading` for what is read, and
how much). Statistics: :mod:`spac.report.stats`; plots and HTML: :mod:`spac.report.page`.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.cli import CliError, OneLineArgumentParser, add_quiet_flag, non_negative_int, positive_int
from shards import remote
from shards.sample import GROUPS
from spac.report import page
from spac.report import reading as corpus
from spac.report.stats import INDEX_COUNT_COLUMNS, TEXT_COLUMNS, IndexCounts, LabelAccuracy, TextStats, parse_labels

DEFAULT_SAMPLES = 48
DEFAULT_TEXT_SAMPLES = 200_000
_ASSET_SUFFIXES = (".png", ".jpg")


def _parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(
        prog="spac report",
        description="Write an HTML page about a corpus folder (from python -m pipelines.synthesize or "
        "pipelines.import_corpus; a local path or an fsspec URL such as gs://, s3://, memory://): a contact sheet "
        "of samples with their six attributes, confidences and captions; attribute histograms, caption lengths, "
        "texts per image, style shares, vocabulary, distinct texts and word overlap; the job's counters and "
        "settings; identities; optionally the accuracy of the attributes against labels. Reads the parquet "
        "indexes and only the contact-sheet samples of the shards, by byte range, never whole shards.",
    )
    parser.add_argument("directory", help="corpus folder (local path or URL)")
    parser.add_argument(
        "--output",
        default=None,
        metavar="PAGE.html",
        help="the page to write (local); its plots and thumbnails go to PAGE_files/ beside it "
        "(default: <corpus folder name>-report.html in the current folder)",
    )
    parser.add_argument(
        "--samples",
        type=non_negative_int,
        default=DEFAULT_SAMPLES,
        help="samples on the contact sheet, drawn over the whole corpus (default: %(default)s; 0 = no contact sheet)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the sample draw (default: %(default)s): the same corpus and seed give the same samples",
    )
    parser.add_argument(
        "--labels",
        default=None,
        metavar="FILE",
        help="ground-truth labels as JSON lines in the bundled samples' labels.jsonl format "
        "({file_path, attributes, visible}; 'visible' is used when present): adds per-group "
        "accuracy of the corpus attributes, matched by file_path (or the end of the source path)",
    )
    parser.add_argument(
        "--text-samples",
        dest="text_samples",
        type=positive_int,
        default=DEFAULT_TEXT_SAMPLES,
        help="text statistics (lengths, vocabulary, distinct texts, overlap) come from the whole "
        "indexes of a seeded sample of shards holding about this many samples, every index when the "
        "corpus is no bigger (default: %(default)s); attribute, style, texts-per-image, identity and "
        "label counts always use every index",
    )
    parser.add_argument(
        "--threads", type=positive_int, default=8, help="index and shard reads in flight (default: %(default)s)"
    )
    add_quiet_flag(parser)
    return parser


@dataclass
class Report:
    """What the page shows (the tests check these numbers)."""

    folder: corpus.CorpusFolder
    counts: IndexCounts
    texts: TextStats
    text_shards: int
    counters: dict[str, Any]
    letters: corpus.DeadLetters | None
    samples: list[corpus.SheetSample]
    problems: list[str]
    accuracy: LabelAccuracy | None = None
    page: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def default_output(directory: str) -> Path:
    name = directory.rstrip("/").rsplit("/", 1)[-1].split("://")[-1] or "corpus"
    return Path(f"{name}-report.html")


def _read_labels(location: str) -> dict[str, dict[str, str]]:
    fs, path = remote.resolve(location)
    if not fs.exists(path):
        raise CliError(f"--labels {location}: no such file")
    with fs.open(path, "rt", encoding="utf-8") as stream:
        return parse_labels(stream, f"--labels {location}")


def _assets_folder(output: Path) -> Path:
    """A fresh ``<stem>_files`` folder; an earlier report's one is replaced, any other folder refused."""
    assets = output.with_name(output.stem + "_files")
    if assets.exists():
        foreign = [p.name for p in assets.iterdir() if not (p.is_file() and p.suffix in _ASSET_SUFFIXES)]
        if foreign:
            raise CliError(f"{assets}: holds {foreign[0]!r}, not an earlier report's files; choose another --output")
        shutil.rmtree(assets)
    assets.mkdir(parents=True)
    return assets


def gather(
    directory: str,
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    labels: dict[str, dict[str, str]] | None = None,
    text_samples: int = DEFAULT_TEXT_SAMPLES,
    threads: int = 8,
    quiet: bool = True,
) -> Report:
    """Read the corpus (see :mod:`spac.report.reading`) into the numbers of the page."""
    from tqdm import tqdm

    timings: dict[str, float] = {}
    start = time.perf_counter()
    folder = corpus.open_folder(directory)
    letters = corpus.tally_dead_letters(folder)
    counters = corpus.job_counters(folder, letters)
    timings["small files"] = time.perf_counter() - start

    start = time.perf_counter()
    text_positions = set(corpus.choose_shards([s.count for s in folder.shards], text_samples, seed))
    label_columns = ["file_path", "source"] if labels else []
    jobs = []
    for position, shard in enumerate(folder.shards):
        extra = TEXT_COLUMNS if position in text_positions else []
        jobs.append((shard, list(dict.fromkeys(INDEX_COUNT_COLUMNS + extra + label_columns))))
    counts, texts = IndexCounts(), TextStats()
    accuracy = LabelAccuracy(labels) if labels else None
    with tqdm(total=len(jobs), unit="index", desc="indexes", disable=quiet, file=sys.stderr) as bar:
        for _shard, table in corpus.map_indexes(folder, jobs, threads, progress=lambda: bar.update(1)):
            counts.add(table)
            if "captions" in table.column_names:
                texts.add_table(table)
            if accuracy is not None:
                accuracy.add_table(table)
    timings["indexes"] = time.perf_counter() - start

    start = time.perf_counter()
    picks = corpus.choose_samples([s.count for s in folder.shards], samples, seed) if samples else []
    with tqdm(total=len(picks), unit="sample", desc="samples", disable=quiet, file=sys.stderr) as bar:
        sheet, problems = corpus.read_sheet_samples(folder, picks, threads, progress=lambda: bar.update(1))
    timings["samples"] = time.perf_counter() - start
    return Report(
        folder, counts, texts, len(text_positions), counters, letters, sheet, problems, accuracy, timings=timings
    )


# ---- the page's sections -------------------------------------------------------------------------------


def _summary(report: Report) -> str:
    folder, totals = report.folder, report.folder.totals
    identities = len(report.counts.images_per_identity())
    rows = [
        ("folder", folder.directory),
        ("written by", folder.kind),
        ("shards", totals.get("shards")),
        ("samples", totals.get("samples")),
        ("texts", totals.get("texts")),
        ("style captions", totals.get("captions")),
        ("identities", identities),
        ("bytes of shards", totals.get("bytes")),
    ]
    files = ", ".join(f"{name} {'✓' if present else '—'}" for name, present in folder.files.items())
    text_samples = report.texts.images
    how = (
        f"Read: {'manifest.json' if folder.has_manifest else 'every _stats.json (no manifest.json)'}; "
        f"{len(folder.shards):,} parquet indexes (columns {', '.join(INDEX_COUNT_COLUMNS)}); text statistics from "
        f"{report.text_shards:,} of {len(folder.shards):,} indexes read whole ({text_samples:,} samples); "
        f"{len(report.samples):,} contact-sheet samples read by byte range from "
        f"{len({s.shard for s in report.samples}):,} shard(s). No shard was read whole."
    )
    return page.table(rows) + f'<p class="note">Files: {page.esc(files)}</p><p class="note">{page.esc(how)}</p>'


def _job(report: Report) -> str:
    c = report.counters
    rows = [
        ("read", c["read"]),
        ("decoded", c["decoded"]),
        ("dead-lettered", c["dead_lettered"]),
        ("filtered", c["filtered"]),
        ("written", c["written"]),
    ]
    parts = [
        page.table(rows, ["counter", "images"]),
        '<p class="note">From the files: written = the manifest\'s samples; read = written + every line of '
        "deadletter.jsonl; decoded = read − the letters of stages read, parse, duplicate and decode.</p>",
    ]
    if c["dead_lettered_by_reason"]:
        top = list(c["dead_lettered_by_reason"].items())[:30]
        parts.append(
            "<h3>Dead-lettered by reason</h3>"
            + page.table([(stage, reason, n) for (stage, reason), n in top], ["stage", "reason", "images"])
        )
    if c["filtered_by_reason"]:
        parts.append(
            "<h3>Filtered by reason</h3>" + page.table(list(c["filtered_by_reason"].items()), ["filter", "images"])
        )
    if report.letters is not None and report.letters.unreadable_lines:
        parts.append(f'<p class="problem">deadletter.jsonl: {report.letters.unreadable_lines} unreadable lines</p>')
    imported = report.folder.import_report
    if imported:
        out = imported.get("out_of_schema") or {}
        rows = [
            ("format", imported.get("format")),
            ("input", imported.get("input")),
            ("samples", imported.get("samples")),
            ("out-of-schema phrases", out.get("phrases")),
            ("samples with one", out.get("samples")),
        ]
        parts.append("<h3>Import report</h3>" + page.table(rows))
        by_group = out.get("by_group") or {}
        top = [(g, phrase, n) for g in GROUPS for phrase, n in list((by_group.get(g) or {}).items())[:5]]
        if top:
            parts.append(page.table(top, ["group", "out-of-schema phrase", "samples"]))
    if report.folder.filter_report and report.folder.filter_report.get("thresholds"):
        parts.append(
            "<h3>Filter thresholds</h3>" + page.table(page.flat_settings(report.folder.filter_report["thresholds"]))
        )
    if report.folder.job:
        parts.append(
            "<h3>Settings (job.json)</h3>" + page.table(page.flat_settings(report.folder.job), ["setting", "value"])
        )
    else:
        parts.append('<p class="note">No job.json in the folder.</p>')
    return "".join(parts)


def _caption_model(stage: Mapping[str, Any], job: Mapping[str, Any] | None) -> str:
    """The caption-model stage's counters and a few rejected texts per reason (texts escaped: a model wrote them)."""
    generator = (job or {}).get("generator") or (job or {}).get("neural_captioner")  # --captioner mllm or spac
    model = generator.get("model") if isinstance(generator, dict) else None
    parts = [
        page.table([("model", model)]),
        page.table(list(stage["counters"].items()), ["counter", "texts"]),
        '<p class="note">From filter_report.json: requested = kept + every rejected_&lt;reason&gt; + every '
        "failed_&lt;kind&gt;; a fallback slot got SPAC's template caption.</p>",
    ]
    if stage["rejected_examples"]:
        parts.append(
            "<h3>Rejected texts (a few per reason)</h3>"
            + page.table(stage["rejected_examples"], ["reason", "key", "style", "text"])
        )
    return "".join(parts)


def _identities(report: Report, assets: Path) -> str:
    per = report.counts.images_per_identity()
    if not len(per):
        return '<p class="note">No samples.</p>'
    rows = [
        ("identities", len(per)),
        ("images per identity, min", int(per.min())),
        ("images per identity, median", float(np.median(per))),
        ("images per identity, mean", float(per.mean())),
        ("images per identity, max", int(per.max())),
    ]
    distribution = dict(zip(*np.unique(per, return_counts=True)))
    plot = page.plot_counts(
        {int(k): int(v) for k, v in distribution.items()},
        assets / "images_per_identity.png",
        "images per identity",
        "images",
        "identities",
    )
    return page.table(rows) + f'<div class="plots">{page.image(assets.name, plot, "images per identity")}</div>'


def _attributes(report: Report, assets: Path) -> str:
    samples = report.counts.samples
    rows = []
    for group in GROUPS:
        counter = report.counts.attributes[group]
        value, n = counter.most_common(1)[0] if counter else ("—", 0)
        rows.append(
            (
                group,
                len(counter),
                counter.get("unknown", 0) / samples if samples else None,
                value,
                n / samples if samples else None,
            )
        )
    plot = page.plot_attributes(report.counts.attributes, assets / "attributes.png")
    return (
        page.table(rows, ["group", "distinct values", "share unknown", "most common", "its share"])
        + f'<div class="plots">{page.image(assets.name, plot, "attribute histograms", wide=True)}</div>'
    )


def _captions(report: Report, assets: Path) -> str:
    t = report.texts
    rows = [
        ("texts (in the indexes read whole)", t.texts),
        ("images", t.images),
        ("words per text, mean", t.mean_words),
        ("vocabulary size (distinct words)", t.vocabulary_size),
        ("distinct texts", t.distinct_texts),
        ("distinct-text ratio", t.distinct_ratio),
        ("mean word overlap (Jaccard) between one image's texts", t.mean_jaccard),
        ("images with two texts or more", t.jaccard_images),
    ]
    style_rows = [
        (style, n, share)
        for (style, n), share in zip(report.counts.styles.most_common(), report.counts.style_shares().values())
    ]
    plots = [
        page.plot_counts(
            t.lengths, assets / "caption_lengths.png", "words per text", "words", "texts", by=t.lengths_by_style
        ),
        page.plot_counts(
            report.counts.texts_per_image, assets / "texts_per_image.png", "texts per image", "texts", "images"
        ),
        page.plot_shares(report.counts.style_shares(), assets / "styles.png", "share of each style"),
    ]
    if t.jaccard_values:
        plots.append(
            page.plot_histogram(
                t.jaccard_values, assets / "word_overlap.png", "mean word overlap between one image's texts", "Jaccard"
            )
        )
    images = "".join(page.image(assets.name, p, p.rsplit(".", 1)[0].replace("_", " ")) for p in plots)
    return (
        page.table(rows)
        + "<h3>Styles (every index)</h3>"
        + page.table(style_rows, ["style", "texts", "share"])
        + '<p class="note">A record\'s prompt_caption (the library sentence) counts as the style "template".</p>'
        + f'<div class="plots">{images}</div>'
    )


def _labels(report: Report, assets: Path, source: str) -> str:
    a = report.accuracy
    per = a.per_group()
    rows = [(g, per[g]["accuracy"], per[g]["known"], per[g]["accuracy_known"], per[g]["said_unknown"]) for g in GROUPS]
    plot = page.plot_accuracy(per, assets / "label_accuracy.png")
    return (
        f'<p class="note">{page.esc(source)}: {a.matched:,} corpus samples matched a label, {a.unmatched:,} did '
        f"not; mean accuracy over the groups {page.number(a.mean_accuracy())}.</p>"
        + page.table(
            rows,
            ["group", "accuracy (all matched)", "labels not unknown", "accuracy on those", "corpus says unknown there"],
        )
        + f'<div class="plots">{page.image(assets.name, plot, "label accuracy")}</div>'
    )


def _sheet(report: Report, assets: Path, seed: int) -> str:
    cards = []
    for number, sample in enumerate(report.samples):
        thumbnail = f"{number:04d}-{sample.key}.jpg"
        (assets / thumbnail).write_bytes(sample.jpg)
        cards.append(page.sheet_card(sample, assets.name, thumbnail))
    notes = [
        f'<p class="note">{len(report.samples):,} samples drawn with seed {seed} over all '
        f"{report.folder.totals.get('samples', 0):,}, in corpus order; confidence beside each value "
        "(— when no predictor gave it, as in an imported corpus; * marks a released value outside the schema).</p>"
    ]
    notes += [f'<p class="problem">{page.esc(p)}</p>' for p in report.problems]
    return "".join(notes) + f'<div class="sheet">{"".join(cards)}</div>'


def write_page(report: Report, output: Path, *, seed: int = 0, labels_source: str | None = None) -> Path:
    """Plots, thumbnails and the HTML page; returns the page's path."""
    start = time.perf_counter()
    output.parent.mkdir(parents=True, exist_ok=True)
    assets = _assets_folder(output)
    html_page = page.Page(f"Corpus report: {report.folder.directory}")
    html_page.add("Corpus", _summary(report))
    html_page.add("Job", _job(report))
    stage = corpus.caption_model_report(report.folder)
    if stage is not None:
        html_page.add("Caption model", _caption_model(stage, report.folder.job))
    html_page.add("Identities", _identities(report, assets))
    html_page.add("Attributes (every index)", _attributes(report, assets))
    html_page.add("Captions", _captions(report, assets))
    if report.accuracy is not None:
        html_page.add("Attributes against labels", _labels(report, assets, labels_source or "labels"))
    if report.samples or report.problems:
        html_page.add("Contact sheet", _sheet(report, assets, seed))
    subtitle = page.esc(f"{report.folder.totals.get('samples', 0):,} samples in {len(report.folder.shards):,} shards")
    staged = output.with_name(output.name + ".tmp")
    staged.write_text(html_page.render(subtitle), encoding="utf-8")
    os.replace(staged, output)
    report.page = output
    report.timings["page"] = time.perf_counter() - start
    return output


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    labels = _read_labels(args.labels) if args.labels else None
    output = Path(args.output) if args.output else default_output(args.directory)
    if output.suffix.lower() not in (".html", ".htm"):
        raise CliError(f"--output {output}: expected a .html file name")
    try:
        report = gather(
            args.directory,
            samples=args.samples,
            seed=args.seed,
            labels=labels,
            text_samples=args.text_samples,
            threads=args.threads,
            quiet=args.quiet,
        )
    except FileNotFoundError as exc:
        raise CliError(f"{args.directory}: {exc.strerror or 'not found'}: {exc.filename}") from None
    write_page(report, output, seed=args.seed, labels_source=args.labels)
    if not args.quiet:
        took = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in report.timings.items())
        print(f"read {len(report.folder.shards)} indexes and {len(report.samples)} samples ({took})", file=sys.stderr)
    for problem in report.problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"report: {output}")
    return 0
