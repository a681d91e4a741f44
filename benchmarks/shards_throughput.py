"""Reading a corpus against its limits, measured in one process (alternated rounds, medians):

- ``open_corpus(decode=False)`` against a raw ``tarfile`` read of the same shards (every member's bytes);
- ``open_corpus`` decoded (+ the same to-tensor step) against a bare PIL decode + to-tensor loop over the same
  JPEGs already in memory.

    python benchmarks/shards_throughput.py [--shards 4] [--per-shard 1000] [--rounds 7] [--write]

``--write`` also prints the absolute rates of encoding, shard writing and verification (no limit to compare).
"""

from __future__ import annotations

import argparse
import ctypes
import io
import os
import tarfile
import tempfile
import time
from glob import glob

import torch
from bench_common import alternate, report, write_bench_corpus
from PIL import Image

from shards import open_corpus, verify_corpus


def steady_malloc() -> None:
    """Keep glibc from mapping and unmapping each 384 KiB float image (its mmap threshold moves with the
    allocation history, which made the same to-tensor step cost 50 or 200 us by turns); no-op elsewhere."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 64 * 2**20)  # M_TRIM_THRESHOLD


def to_tensor(image: Image.Image) -> torch.Tensor:
    """uint8 HWC bytes -> float CHW in [0, 1]: what a loader does after decoding."""
    width, height = image.size
    return (
        torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(height, width, 3).permute(2, 0, 1).float()
        / 255
    )


def raw_tar_read(paths: list[str]) -> int:
    members = 0
    for path in paths:
        with tarfile.open(path, "r|") as archive:
            for info in archive:
                archive.members = []
                archive.extractfile(info).read()
                members += 1
    return members // 3


def corpus_raw(directory: str) -> int:
    return sum(1 for _ in open_corpus(directory, decode=False, split_by_node=False, split_by_worker=False))


def corpus_decoded(directory: str, limit: int) -> int:
    n = 0
    for sample in open_corpus(directory, split_by_node=False, split_by_worker=False):
        to_tensor(sample["jpg"])
        n += 1
        if n == limit:
            break
    return n


def bare_decode(jpgs: list[bytes]) -> int:
    for data in jpgs:
        to_tensor(Image.open(io.BytesIO(data)).convert("RGB"))
    return len(jpgs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--per-shard", type=int, default=1000)
    parser.add_argument("--decoded-samples", type=int, default=1000, help="samples per decoded round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="also time encode, write and verify (absolute)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steady_malloc()
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        jpgs = write_bench_corpus(directory, args.shards, args.per_shard)
        built = time.perf_counter() - start
        paths = sorted(glob(os.path.join(directory, "*.tar")))
        size = sum(os.path.getsize(p) for p in paths)
        total = args.shards * args.per_shard
        print(
            f"corpus: {total} samples in {args.shards} shards, {size / 2**20:.1f} MiB, "
            f"mean jpg {sum(map(len, jpgs)) / len(jpgs) / 1024:.1f} KiB (built in {built:.1f} s)"
        )
        rates = alternate(
            {
                "open_corpus(decode=False)": lambda: corpus_raw(directory),
                "raw tarfile read": lambda: raw_tar_read(paths),
            },
            args.rounds,
        )
        report(
            "open_corpus(decode=False) vs raw tarfile read (samples/s)",
            rates,
            "open_corpus(decode=False)",
            "raw tarfile read",
            0.8,
            "samples/s",
        )
        n = min(args.decoded_samples, total)
        rates = alternate(
            {
                "open_corpus decoded + to-tensor": lambda: corpus_decoded(directory, n),
                "bare PIL decode + to-tensor": lambda: bare_decode(jpgs[:n]),
            },
            args.rounds,
        )
        report(
            "open_corpus decoded vs bare PIL decode + to-tensor loop (samples/s)",
            rates,
            "open_corpus decoded + to-tensor",
            "bare PIL decode + to-tensor",
            0.9,
            "samples/s",
        )
        if args.write:
            from bench_common import corpus_record, person_crops

            from shards import encode_image, make_sample, write_shard

            crops = person_crops(args.per_shard, seed=1)
            t = time.perf_counter()
            encoded = [encode_image(c) for c in crops]
            t_enc = time.perf_counter() - t
            samples = [make_sample(corpus_record(i), j) for i, j in enumerate(encoded)]
            with tempfile.TemporaryDirectory() as other:
                t = time.perf_counter()
                write_shard(other, 0, samples)
                t_write = time.perf_counter() - t
            t = time.perf_counter()
            assert verify_corpus(directory) == []
            t_ver = time.perf_counter() - t
            print(
                f"encode_image {len(crops) / t_enc:,.0f} img/s; write_shard {len(samples) / t_write:,.0f} samples/s; "
                f"verify {total / t_ver:,.0f} samples/s"
            )


if __name__ == "__main__":
    main()
