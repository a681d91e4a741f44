"""PLIP training-step throughput on this machine: forward + backward of the summed losses, samples/s.

    python benchmarks/plip_throughput.py --model RN-tiny --batch 16
    python benchmarks/plip_throughput.py --model RN50 --random-text --batch 8 --steps 2

Synthetic images and captions; every switched-on task (IVLC, TIC, IAP) runs, as in pre-training.
"""
from __future__ import annotations

import argparse
import random
import time

import torch

from plip.config import MINILM, create_model
from plip.losses import PLIPLoss
from plip.masking import mask_batch

CAPTIONS = [
    "a man with short black hair wearing a red shirt, blue jeans and white shoes",
    "a woman in a white dress with long brown hair carrying a black bag",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="RN-tiny", help="preset name (plip/configs/*.json)")
    parser.add_argument("--batch", type=int, default=16, help="samples per step")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy shared CPU)")
    parser.add_argument("--random-text", action="store_true",
                        help="randomly initialise the preset's text encoder (for presets whose weights are not local)")
    parser.add_argument("--tasks", default="ivlc,tic,iap", help="comma list of tasks to run (others get weight 0)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tasks = set(args.tasks.split(","))
    overrides: dict = {"tic": {"weight": 0.02 if "tic" in tasks else 0}, "iap": {"weight": 0.1 if "iap" in tasks else 0}}
    if args.random_text:
        overrides["text"] = {"pretrained": False, "tokenizer": MINILM}
    model = create_model(args.model, **overrides).train()
    loss_fn = PLIPLoss.from_config(model.config)
    height, width = model.config.vision.image_size
    texts = [CAPTIONS[i % 2] for i in range(args.batch)]
    batch = mask_batch(texts, model.tokenizer, progress=0.5, rng=random.Random(0))
    batch |= {"images": torch.randn(args.batch, 3, height, width), "identity_ids": torch.arange(args.batch) // 2}

    def step() -> None:
        model.zero_grad(set_to_none=True)
        sum(loss_fn(**model(batch)).values()).backward()

    step()  # warm-up: allocator and kernel selection
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    elapsed = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(
        f"{args.model} {height}x{width} tasks={args.tasks} batch={args.batch} threads={args.threads} "
        f"params={params:.1f}M: {args.batch * args.steps / elapsed:.2f} samples/s "
        f"({elapsed / args.steps:.2f} s/step)"
    )


if __name__ == "__main__":
    main()
