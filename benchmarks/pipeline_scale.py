"""Does the synthesis graph scale? Wall time per image and peak RSS of the job at growing corpus sizes.

    python benchmarks/pipeline_scale.py                          # 10k, 50k and 200k images
    python benchmarks/pipeline_scale.py --sizes 2000,10000       # quicker

It measures the graph, not the model: the images are tiny solid-colour JPEGs made here (32x16) and the
predictor is a trivial hand-wired one (a tiny ResNet whose heads read the mean colour; see
``_save_trivial_predictor``), so decode, inference and captioning cost little next to the graph's own
work (shuffles, grouping, ordering, writing). Each size runs in a fresh child process (``--child``) on the
DirectRunner in memory, so its peak RSS is its own; a child that only imports the same modules gives the
baseline RSS. Printed: a row per size, then the ratios of the largest size to the smallest. Targets of
issue 10: peak RSS grows less than 1.5x from 10k to 200k images; time per image stays within 1.3x.

The DirectRunner keeps every shuffle (GroupByKey input) of the job in its own memory, so in-memory mode
its RSS grows with the corpus whatever the graph does. ``--mode multi_processing`` runs the work in SDK
worker processes and reports their peak separately: that is the part a Dataflow worker holds (Dataflow
keeps shuffles in its shuffle service), and it is what the graph's design bounds.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGES_PER_IDENTITY = 8
TINY_SIZE = (16, 32)  # width, height of the made images


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def make_images(root: Path, count: int) -> None:
    """``count`` tiny red JPEGs in identity folders of 8 (the trivial predictor keeps every one)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", TINY_SIZE, (255, 0, 0)).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    for n in range(count):
        folder = root / f"{n // IMAGES_PER_IDENTITY:07d}"
        if n % IMAGES_PER_IDENTITY == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{n % IMAGES_PER_IDENTITY}.jpg").write_bytes(data)


def _save_trivial_predictor(directory: Path) -> Path:
    """The pipeline tests' colour predictor (one stripe, solid colours -> fixed attributes) at 32x16 input."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from dataclasses import replace

    from spac.attributes import load_schema
    from spac.predictor.model import AttributePredictor, PredictorConfig, save_predictor
    from tests.pipelines import colour_predictor

    config = replace(PredictorConfig.for_schema(load_schema(), bands=1), image_size=(TINY_SIZE[1], TINY_SIZE[0]))
    model = AttributePredictor(config)
    colour_predictor._pass_channels_through(model)
    colour_predictor._wire_heads(model)
    return save_predictor(model, directory)


def child_job(images: str, output: str, predictor: str, mode: str = "in_memory") -> dict:
    from pipelines.synthesize import counters, run

    workers = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"] if mode == "multi_processing" else []
    start = time.perf_counter()
    found = counters(
        run(
            [
                "--runner=DirectRunner",
                "--input",
                images,
                "--output",
                output,
                "--predictor",
                predictor,
                "--torch_threads",
                "1",
                "--shard_size",
                "1000",
                "--batch_size",
                "64",
                *workers,
            ],
            save_main_session=False,
        )
    )
    # in multi-processing mode the SDK workers are child processes: their peak is what a Dataflow worker
    # holds, while this process (the runner) keeps every shuffle in memory, as Dataflow's shuffle service would
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "seconds": time.perf_counter() - start,
        "written": found.get("written", 0),
        "peak_mb": _peak_mb(),
        "worker_peak_mb": worker_mb,
    }


def child_baseline() -> dict:
    import torch  # noqa: F401

    import pipelines.synthesize  # noqa: F401  (the same imports as a job, nothing run)

    return {"peak_mb": _peak_mb()}


def _child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,50000,200000", help="corpus sizes in images (default: %(default)s)")
    parser.add_argument(
        "--mode",
        choices=("in_memory", "multi_processing"),
        default="in_memory",
        help="DirectRunner mode; multi_processing also reports the SDK workers' peak RSS, the "
        "memory a Dataflow worker needs (default: %(default)s)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        print(json.dumps(child_job(*rest) if kind == "job" else child_baseline()))
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    baseline = _child("baseline")["peak_mb"]
    print(f"baseline (imports only): peak RSS {baseline:.0f} MB")
    print(
        f"{'images':>8} {'written':>8} {'seconds':>9} {'ms/image':>9} {'peak MB':>8} {'over baseline':>13} "
        f"{'worker peak MB':>14}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        predictor = str(_save_trivial_predictor(Path(scratch) / "predictor"))
        for size in sizes:
            images, output = Path(scratch) / f"images{size}", Path(scratch) / f"corpus{size}"
            make_images(images, size)
            row = _child("job", str(images), str(output), predictor, args.mode)
            rows.append((size, row))
            print(
                f"{size:>8} {row['written']:>8} {row['seconds']:>9.1f} {1000 * row['seconds'] / size:>9.2f} "
                f"{row['peak_mb']:>8.0f} {row['peak_mb'] - baseline:>13.0f} "
                f"{row['worker_peak_mb'] if args.mode == 'multi_processing' else float('nan'):>14.0f}"
            )
            subprocess.run(["rm", "-rf", str(images), str(output)], check=True)
    (small, first), (large, last) = rows[0], rows[-1]
    print(f"\n{small} -> {large} images ({large / small:.0f}x the corpus):")
    print(f"  peak RSS ratio: {last['peak_mb'] / first['peak_mb']:.2f}x (target < 1.5x)")
    if args.mode == "multi_processing":
        print(f"  worker peak RSS ratio: {last['worker_peak_mb'] / first['worker_peak_mb']:.2f}x")
    print(f"  time per image ratio: {(last['seconds'] / large) / (first['seconds'] / small):.2f}x (target within 1.3x)")


if __name__ == "__main__":
    main()
