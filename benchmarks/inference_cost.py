"""Per-image costs behind docker/README.md's cost table, measured on this machine (one process).

* decode: a source JPEG -> the corpus JPEG (``decode_image`` with the draft target, ``encode_image``), as
  the job's DecodeImage step does, for the bundled 128x256 samples and for rendered 512x1024 sources;
* predict: ``SpacPredictorHandler.run_inference`` at ``--batch_size`` (decode of the corpus JPEG,
  preprocess, padded forward) with the bundled demo predictor and with untrained ResNet-18 / ResNet-50
  backbones of the same predictor (the sizes a real predictor has);
* the forward FLOPs per image of each (torch's FLOP counter), from which docker/README.md estimates GPU costs.

    python benchmarks/inference_cost.py [--batch_size 32] [--threads 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipelines.synthesis.model_handler import SpacPredictorHandler  # noqa: E402
from shards.images import decode_image  # noqa: E402
from shards.sample import IMAGE_SIZE, encode_image  # noqa: E402
from spac.attributes import load_schema  # noqa: E402
from spac.predictor.model import BACKBONE_PRESETS, PredictorConfig, build_predictor  # noqa: E402
from spac.render.identity import random_identity  # noqa: E402
from spac.render.person import render_person  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "spac" / "assets" / "samples"


def _jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def per_second(work, count: int, rounds: int) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process) after one warm-up call, medians.

    The CPU figure (all threads together) is the cost that holds on a busy shared machine; on an idle one
    with T threads the wall rate is up to T times it."""
    work()
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return count / statistics.median(walls), count / statistics.median(cpus)


def forward_flops(model, batch: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(batch)
    return counter.get_total_flops() / batch.shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: 2)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    samples = [p.read_bytes() for p in sorted(SAMPLES.rglob("*.jpg"))]
    large = [_jpeg(render_person(random_identity(random.Random(i)), i, (512, 1024))[0]) for i in range(8)]
    for name, sources in (("decode 128x256 samples", samples), ("decode 512x1024 rendered", large)):
        rate, cpu = per_second(
            lambda sources=sources: [encode_image(decode_image(d, min_size=IMAGE_SIZE)) for d in sources],
            len(sources),
            args.rounds,
        )
        print(f"{name:<30} {rate:8.1f} images/s wall  {1e3 / cpu:7.2f} CPU ms/image (1 thread)")

    corpus = [encode_image(decode_image(d, min_size=IMAGE_SIZE)) for d in samples]
    batches = [corpus[i : i + args.batch_size] for i in range(0, len(corpus), args.batch_size)]
    schema = load_schema()
    for name in ("demo", "resnet18", "resnet50"):
        handler = SpacPredictorHandler(None, "cpu", args.batch_size)
        if name == "demo":
            model = handler.load_model()
            predictor = model._predictor
        else:
            predictor = build_predictor(PredictorConfig.for_schema(schema, BACKBONE_PRESETS[name])).eval()
            model = handler.wrap(predictor)
        chosen = batches[:3] if name == "demo" else batches[:1]  # full batches only: no padding in the rate
        count = sum(len(b) for b in chosen)
        rate, cpu = per_second(
            lambda handler=handler, model=model, chosen=chosen: [handler.run_inference(b, model) for b in chosen],
            count,
            args.rounds,
        )
        flops = forward_flops(predictor, torch.zeros(2, 3, *IMAGE_SIZE))
        print(
            f"predict {name:<8} batch {args.batch_size:<4}    {rate:8.1f} images/s wall  "
            f"{1e3 / cpu:7.2f} CPU ms/image ({args.threads} threads)  {flops / 1e9:5.2f} GFLOP/image forward"
        )


if __name__ == "__main__":
    main()
