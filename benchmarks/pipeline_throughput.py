"""Images/s of the synthesis job on DirectRunner, per runner setting, as ratios to the first setting.

    python benchmarks/pipeline_throughput.py --identities 200 --images-per-identity 10

Renders a labelled folder once (spac.render), then runs the whole job into a fresh output folder for each
setting and prints wall time, images/s, the counters, and each setting's speed relative to the first one.
The machine is shared and noisy: compare the ratios, which come from runs in the same process.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pipelines.synthesize import counters, run
from spac.render import render_dataset

SETTINGS = {
    "in memory, torch threads default": [],
    "in memory, --torch_threads 1": ["--torch_threads", "1"],
    "multi_processing x2, --torch_threads 1": ["--direct_running_mode=multi_processing", "--direct_num_workers=2",
                                              "--torch_threads", "1"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=200)
    parser.add_argument("--images-per-identity", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        render_dataset(images, args.identities, args.images_per_identity, seed=11)
        total = args.identities * args.images_per_identity
        first = None
        for n, (name, flags) in enumerate(SETTINGS.items()):
            start = time.perf_counter()
            result = run(["--runner=DirectRunner", "--input", str(images), "--output", str(Path(tmp) / f"out{n}"),
                          "--batch_size", str(args.batch_size), *flags], save_main_session=False)
            seconds = time.perf_counter() - start
            rate = total / seconds
            first = first or rate
            counts = counters(result)
            print(f"{name:<42} {seconds:7.1f} s {rate:7.1f} images/s  x{rate / first:.2f}  "
                  f"read {counts.get('read', 0)} written {counts.get('written', 0)} dead {counts.get('dead_lettered', 0)}")


if __name__ == "__main__":
    main()
