"""Images/s of the synthesis job on DirectRunner against a bare loop doing the same work, in one process.

    python benchmarks/pipeline_throughput.py [--identities 20 --images-per-identity 10] [--rounds 3]
        [--settings default,threads1,multiprocess2]

Renders a labelled folder once (spac.render), then alternates, round after round: the whole job into a fresh
output folder (each chosen runner setting), and the bare loop, the same work in straight-line Python with
the same batch size and thread settings: read each file, decode it under the job's decode policy (draft to
256x128), encode the corpus JPEG, decode that and preprocess it, predict in batches, apply the per-image and
per-identity filters (default thresholds), caption the kept images, find the captions' attribute spans,
and write the samples into shards of the same size. The job also groups identities, orders them and writes its indexes,
manifest, dataset file and job record: what it costs beyond the loop is what the ratio shows.
The process first takes the malloc thresholds every job run sets for itself (``common.allocator``), so the
loop's rounds run under the same allocator as the job's rather than faulting in their batch buffers afresh
until a job has grown the heap (measured: a first loop 10.9 million page faults and 25 s of kernel time at
20,000 images, one after a job none). Prints medians and the median per-round ratio job / bare loop. Each
round also runs the job on a folder of two images: its time is the runner's start-up (graph construction and
translation, stage set-up, model load), and the job's rate with that time taken out says what each further
image costs against the loop.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
from pathlib import Path

import torch
from bench_common import alternate, report
from PIL import Image

from common.allocator import keep_freed_memory
from pipelines.shared.spans import caption_spans
from pipelines.synthesize import counters, run
from shards import IMAGE_SIZE, encode_image, make_sample, write_shard
from shards.images import decode_image
from spac.captioning.captioner import Captioner
from spac.corpus import filters as corpus_filters
from spac.predictor.model import load_predictor
from spac.render import render_dataset

SETTINGS = {
    "default": [],
    "threads1": ["--torch_threads", "1"],
    "multiprocess2": ["--direct_running_mode=multi_processing", "--direct_num_workers=2", "--torch_threads", "1"],
}
SHARD_SIZE = 1000


def bare_loop(paths: list[Path], out: Path, batch_size: int, predictor, captioner) -> int:
    """The job's work in straight-line Python; returns the images read (the job's rate counts them too)."""
    by_identity: dict[str, dict[str, tuple[Path, bytes, object]]] = {}
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        jpgs = [encode_image(decode_image(p.read_bytes(), min_size=IMAGE_SIZE)) for p in chunk]
        predictions = predictor.predict_tensors(predictor.preprocess_batch([Image.open(io.BytesIO(j)) for j in jpgs]))
        for path, jpg, prediction in zip(chunk, jpgs, predictions):
            if corpus_filters.image_rejection(prediction.attributes) is None:  # the job's per-image filter
                by_identity.setdefault(path.parent.name, {})[f"{path.parent.name}_{path.stem}"] = (
                    path,
                    jpg,
                    prediction,
                )
    samples, shard = [], 0
    for identity in sorted(by_identity):  # the identity filters, then captions only for the kept images
        images = by_identity[identity]
        verdict = corpus_filters.filter_identity({key: image[2].attributes for key, image in images.items()})
        for key in sorted(verdict.kept):
            path, jpg, prediction = images[key]
            texts = captioner(verdict.kept[key], key)
            styled = [t for t in texts if t.style != "template"]
            prompt = [t for t in texts if t.style == "template"][:1]
            spans, _ = caption_spans(styled + prompt)  # the captioner's own spans, as the job stores them
            record = {
                "key": key,
                "id": int(identity),
                "file_path": f"{identity}/{path.name}",
                "attributes": {
                    g: {"value": v, "confidence": round(float(prediction.confidences[g]), 4)}
                    for g, v in verdict.kept[key].items()
                },
                "captions": [t.text for t in styled],
                "styles": [t.style for t in styled],
                "prompt_caption": [t.text for t in prompt],
                "source": str(path),
                "attribute_spans": spans,
            }
            samples.append(make_sample(record, jpg))
            if len(samples) == SHARD_SIZE:
                write_shard(str(out), shard, samples)
                samples, shard = [], shard + 1
    if samples:
        write_shard(str(out), shard, samples)
    return len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=20)
    parser.add_argument("--images-per-identity", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settings", default="default", help=f"comma-separated runner settings: {', '.join(SETTINGS)}")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SETTINGS]
    if unknown or not chosen:
        parser.error(f"--settings: expected some of {', '.join(SETTINGS)}")
    keep_freed_memory()
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        render_dataset(images, args.identities, args.images_per_identity, seed=11)
        paths = sorted(images.glob("*/*.jpg"))
        predictor, captioner = load_predictor(), Captioner()
        outputs = iter(range(10**6))
        threads = torch.get_num_threads()

        def job(flags: list[str], folder: Path):
            def one() -> int:
                result = run(
                    [
                        "--runner=DirectRunner",
                        "--input",
                        str(folder),
                        "--output",
                        str(Path(tmp) / f"out{next(outputs)}"),
                        "--batch_size",
                        str(args.batch_size),
                        *flags,
                    ],
                    save_main_session=False,
                )
                torch.set_num_threads(threads)  # the job may have changed it (--torch_threads)
                return counters(result).get("read", 0)  # images in, as the loop counts (the job writes fewer)

            return one

        def loop() -> int:
            out = Path(tmp) / f"bare{next(outputs)}"
            out.mkdir()
            return bare_loop(paths, out, args.batch_size, predictor, captioner)

        tiny = Path(tmp) / "tiny"
        render_dataset(tiny, 1, 2, seed=12)

        def startup(flags: list[str]):
            run_tiny = job(flags, tiny)
            return lambda: (run_tiny(), 1)[1]  # one job: its rate is 1 / seconds

        runs = {f"job ({name})": job(SETTINGS[name], images) for name in chosen}
        runs |= {f"start-up ({name})": startup(SETTINGS[name]) for name in chosen}
        runs["bare loop"] = loop
        rates = alternate(runs, args.rounds, warmup=["bare loop"])  # the job's start-up is its own cost
        for name in chosen:
            title = f"synthesis job vs bare loop, {len(paths)} images, batch {args.batch_size} (images/s)"
            report(
                title,
                {f"job ({name})": rates[f"job ({name})"], "bare loop": rates["bare loop"]},
                f"job ({name})",
                "bare loop",
                0.9,
                "images/s",
            )
            seconds = [1 / rate for rate in rates[f"start-up ({name})"]]
            print(f"  start-up ({name}): median {statistics.median(seconds):.2f} s (the job on 2 images)")
            beyond = [
                len(paths) / (len(paths) / job_rate - start) for job_rate, start in zip(rates[f"job ({name})"], seconds)
            ]
            report(
                "  the same with the start-up taken out (images/s)",
                {f"job beyond start-up ({name})": beyond, "bare loop": rates["bare loop"]},
                f"job beyond start-up ({name})",
                "bare loop",
                0.9,
                "images/s",
            )


if __name__ == "__main__":
    main()
