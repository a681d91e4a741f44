"""Time `spac report` on corpora of growing size, built here with the shards writer (one process).

    python benchmarks/report_scale.py                       # 100 and 10,000 samples, 100 samples per shard
    python benchmarks/report_scale.py --sizes 10000 --per-shard 1   # 10,000 shards of one sample each

For each corpus: the time to read the small files, every index, the contact-sheet samples, and to draw the
plots and write the page (in process: the interpreter's start and the imports are not counted), and which
files it opened: every index, but only the tars that hold a contact-sheet sample, never all of them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, ".")
from fsspec.implementations.local import LocalFileSystem  # noqa: E402

from shards import encode_image, make_sample, write_manifest, write_shard  # noqa: E402
from spac.cli.report import gather, write_page  # noqa: E402
from tests.shards.corpus_factory import make_image, make_record  # noqa: E402

STYLES = ["plain", "dense", "narrative", "inventory", "appositive", "head_to_toe"]
STAGE_SHARDS = 250
COLOURS = ["red", "blue", "black", "white", "grey", "green", "yellow", "pink"]


def _record(index: int) -> dict:
    """A corpus record with some variety (colours, styles, a few texts per image)."""
    colour, other = COLOURS[index % len(COLOURS)], COLOURS[(index // 8) % len(COLOURS)]
    record = make_record(index)
    record["attributes"]["upper"]["value"] = f"{colour} t-shirt"
    record["attributes"]["lower"]["value"] = f"{other} jeans"
    record["captions"] = [
        f"A woman in a {colour} t-shirt and {other} jeans, number {index}.",
        f"She has long black hair and wears {other} jeans with a {colour} top.",
    ][: 1 + index % 2]
    record["styles"] = [STYLES[index % 6], STYLES[(index + 1) % 6]][: len(record["captions"])]
    return record


def build(directory: str, samples: int, per_shard: int) -> float:
    """Write ``samples`` samples, ``per_shard`` to a shard, then the manifest; return the seconds it took.

    Eight writers at once (each shard's files are fsync'ed, so one writer waits on the disk), each into its
    own staging folder of at most :data:`STAGE_SHARDS` shards, moved into ``directory`` at the end: the writer
    looks for its shard's leftover temporaries with a glob over its folder, which costs time in the number of
    files already there, so 10,000 shards written into one folder would take quadratic time. The files are
    the same bytes wherever they are written.
    """
    start = time.perf_counter()
    jpgs = [encode_image(make_image(i)) for i in range(min(samples, 64))]  # images repeat: content is not timed
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)

    def write(index: int) -> None:
        rows = range(index * per_shard, min(samples, (index + 1) * per_shard))
        stage = target.parent / f"{target.name}.stage-{index // STAGE_SHARDS}"
        write_shard(str(stage), index, [make_sample(_record(i), jpgs[i % len(jpgs)]) for i in rows])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(-(-samples // per_shard))))
    for stage in sorted(target.parent.glob(f"{target.name}.stage-*")):
        for path in stage.iterdir():
            path.rename(target / path.name)
        stage.rmdir()
    write_manifest(directory)
    return time.perf_counter() - start


def measure(directory: str, samples: int, out: Path) -> dict:
    opened: Counter = Counter()
    original = LocalFileSystem._open

    def counting(self, path, *args, **kwargs):
        opened[Path(str(path)).suffix or Path(str(path)).name] += 1
        return original(self, path, *args, **kwargs)

    LocalFileSystem._open = counting
    try:
        start = time.perf_counter()
        report = gather(directory, samples=samples, seed=0)
        write_page(report, out / "report.html")
        total = time.perf_counter() - start
    finally:
        LocalFileSystem._open = original
    return {
        "total": total,
        **report.timings,
        "tars opened": opened[".tar"],
        "indexes opened": opened[".parquet"],
        "shards": len(report.folder.shards),
        "text samples": report.texts.images,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000], help="corpus sizes in samples")
    parser.add_argument("--per-shard", type=int, default=100, help="samples per shard (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=48, help="contact-sheet samples (default: %(default)s)")
    args = parser.parse_args()
    for size in args.sizes:
        work = Path(tempfile.mkdtemp(prefix="report-scale-"))
        try:
            built = build(str(work / "corpus"), size, args.per_shard)
            warm = measure(str(work / "corpus"), args.samples, work)  # the first run also warms matplotlib
            result = measure(str(work / "corpus"), args.samples, work)
            phases = ", ".join(f"{k} {result[k]:.2f} s" for k in ("small files", "indexes", "samples", "page"))
            print(
                f"{size:>7} samples in {result['shards']:>5} shards (built in {built:.1f} s): "
                f"report {result['total']:.2f} s "
                f"(first run {warm['total']:.2f} s; {phases}); opened {result['indexes opened']} indexes, "
                f"{result['tars opened']} tars; text statistics over {result['text samples']} samples",
                flush=True,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
