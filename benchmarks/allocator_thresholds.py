"""The synthesis job with and without the malloc thresholds of ``common.allocator``, each run in a fresh process.

    python benchmarks/allocator_thresholds.py [--identities 200 --images-per-identity 10] [--rounds 3]

Renders a labelled folder once (spac.render), then alternates, round after round, one job with the thresholds
(what every job now sets for itself) and one with glibc's own malloc behaviour (the job's call to
``keep_freed_memory`` replaced by a no-op in that process). A fresh process per run, because a heap grown by
an earlier run is exactly what the thresholds change. Prints each side's images/s, minor page faults, kernel
seconds and peak RSS (medians: what the thresholds keep costs memory) and the median per-round ratio
thresholds / glibc's own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_common import report

from spac.render import render_dataset

# One job in this process: its images/s, page faults and kernel time as a JSON line.
_ONE_JOB = """
import json, resource, sys, time
import pipelines.shared.launch as launch
from pipelines.synthesize import counters, run
if sys.argv[3] == "glibc":
    launch.keep_freed_memory = lambda: False
before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
result = run(["--runner=DirectRunner", "--input", sys.argv[1], "--output", sys.argv[2]], save_main_session=False)
seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({
    "rate": counters(result)["read"] / seconds,
    "faults": after.ru_minflt - before.ru_minflt,
    "kernel": after.ru_stime - before.ru_stime,
    "peak_mb": after.ru_maxrss / 1024,
}))
"""


def one_job(images: Path, output: Path, side: str) -> dict:
    env = {name: value for name, value in os.environ.items() if name != "GLIBC_TUNABLES"}  # each side its own
    done = subprocess.run(
        [sys.executable, "-c", _ONE_JOB, str(images), str(output), side],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=200)
    parser.add_argument("--images-per-identity", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sides = ("thresholds", "glibc")
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        render_dataset(images, args.identities, args.images_per_identity, seed=11)
        for round_index in range(args.rounds):
            for side in sides if round_index % 2 == 0 else sides[::-1]:
                runs[side].append(one_job(images, Path(tmp) / f"out-{side}-{round_index}", side))
    count = args.identities * args.images_per_identity
    report(
        f"synthesis job, {count} images, a fresh process per run (images/s)",
        {side: [run["rate"] for run in runs[side]] for side in sides},
        "thresholds",
        "glibc",
        1.0,
        "images/s",
    )
    for side in sides:
        faults = statistics.median(run["faults"] for run in runs[side])
        kernel = statistics.median(run["kernel"] for run in runs[side])
        peak = statistics.median(run["peak_mb"] for run in runs[side])
        print(
            f"  {side}: median {faults:,.0f} minor page faults, {kernel:.1f} s in the kernel, peak RSS {peak:,.0f} MB"
        )


if __name__ == "__main__":
    main()
