"""Peak memory (RSS) of the synthesis job and of the corpus loader, as ratios between corpus sizes.

    python benchmarks/peak_memory.py                      # job at 2,000 and 20,000 images, loader likewise
    python benchmarks/peak_memory.py --sizes 500,2000     # quicker

Each measurement runs in a fresh child process (`--child`), so its peak RSS is its own: the job on
DirectRunner in memory over a folder of copies of the bundled sample images (the bundled demo predictor), and
`shards.open_corpus` streaming every sample of the resulting shards with a shuffle buffer, decoded.
The baseline is a child that only imports the same modules. What should hold: the loader's peak does not
grow with the corpus (it is bounded by its shuffle buffer and one shard's member at a time); the job's
peak grows much less than the corpus (DirectRunner keeps a bundle, not the corpus, per stage).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGES_PER_IDENTITY = 8
SAMPLES = Path(__file__).resolve().parent.parent / "spac" / "assets" / "samples"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def make_images(root: Path, count: int) -> None:
    """``count`` images in identity folders of 8: copies of the bundled rendered samples (one sample
    identity per folder, so the demo predictor's filters keep most of them, as on the default input)."""
    identities = sorted(p for p in SAMPLES.iterdir() if p.is_dir())
    for n in range(count):
        source = identities[(n // IMAGES_PER_IDENTITY) % len(identities)]
        folder = root / f"{n // IMAGES_PER_IDENTITY:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{n % IMAGES_PER_IDENTITY}.jpg").write_bytes(
            (source / f"{n % IMAGES_PER_IDENTITY:03d}.jpg").read_bytes()
        )


def child_job(images: str, output: str) -> dict:
    from pipelines.synthesize import counters, run

    start = time.perf_counter()
    found = counters(
        run(
            [
                "--runner=DirectRunner",
                "--input",
                images,
                "--output",
                output,
                "--torch_threads",
                "1",
                "--shard_size",
                "1000",
            ],
            save_main_session=False,
        )
    )
    return {"seconds": time.perf_counter() - start, "written": found.get("written", 0), "peak_mb": _peak_mb()}


def child_loader(corpus: str) -> dict:
    from shards import open_corpus

    start, count = time.perf_counter(), 0
    for _ in open_corpus(corpus, shuffle=1000, split_by_node=False, split_by_worker=False):
        count += 1
    return {"seconds": time.perf_counter() - start, "samples": count, "peak_mb": _peak_mb()}


def child_baseline() -> dict:
    import pipelines.synthesize  # noqa: F401  (the job's imports: Beam, torch, transformers, spaCy-free)
    import shards  # noqa: F401

    return {"peak_mb": _peak_mb()}


def _measure(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000", help="comma-separated image counts (default 2000,20000)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = {"job": child_job, "loader": child_loader, "baseline": child_baseline}[kind](*rest)
        print(json.dumps(result))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    baseline = _measure("baseline")["peak_mb"]
    print(f"baseline (imports only): {baseline:.0f} MB")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            images, corpus = Path(tmp) / f"images{size}", Path(tmp) / f"corpus{size}"
            make_images(images, size)
            job = _measure("job", str(images), str(corpus))
            loader = _measure("loader", str(corpus))
            rows.append((size, job, loader))
    first_job, first_loader = rows[0][1]["peak_mb"], rows[0][2]["peak_mb"]
    print(f"{'images':>8} {'job s':>7} {'job MB':>8} {'x first':>8} {'loader s':>9} {'loader MB':>10} {'x first':>8}")
    for size, job, loader in rows:
        print(
            f"{size:>8} {job['seconds']:7.1f} {job['peak_mb']:8.0f} {job['peak_mb'] / first_job:8.2f} "
            f"{loader['seconds']:9.1f} {loader['peak_mb']:10.0f} {loader['peak_mb'] / first_loader:8.2f}"
            f"   (written {job['written']}, streamed {loader['samples']})"
        )


if __name__ == "__main__":
    main()
