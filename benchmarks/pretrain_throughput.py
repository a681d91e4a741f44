"""Training throughput of PLIP pre-training steps (forward + IVLC/TIC/IAP losses + backward + AdamW) per preset.

    python benchmarks/pretrain_throughput.py --presets RN-tiny,RN50-MiniLM --batch-size 16 --steps 3 --threads 2

Batches are synthetic (random pixels, attribute captions masked for IAP) so that only the model step is
timed; the first step (allocations, lazy init) is a warm-up and not counted. Prints samples/s per preset
and each preset's speed relative to the first.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from plip.losses import PLIPLoss
from plip.masking import mask_batch
from plip.programs import distributed
from plip.programs.pretrain import ModelChoice, Training, build_model, train_step
from plip.programs.schedule import warmup_step_decay
from plip.programs.training import build_optimizer, freeze_text_layers

CAPTIONS = (
    "A woman with long black hair wears a red t-shirt, blue jeans and white sneakers.",
    "The man in a grey coat and black trousers carries a black backpack.",
)


def synthetic_batch(model, batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    height, width = model.config.vision.image_size
    generator = torch.Generator().manual_seed(seed)
    texts = [CAPTIONS[i % len(CAPTIONS)] for i in range(batch_size)]
    tokens = mask_batch(texts, model.tokenizer, 0.5, random.Random(seed), max_length=model.config.text.max_length)
    return {
        "images": torch.randn(batch_size, 3, height, width, generator=generator),
        "identity_ids": torch.arange(batch_size) // 4,
        **tokens,
    }


def make_training(preset: str) -> Training:
    """The pre-training state of ``preset`` on the CPU, as the program builds it (4 trainable text layers)."""
    choice = ModelChoice(
        preset=preset,
        model_overrides={},
        text_model=None,
        losses=("ivlc", "tic", "iap"),
        tic_weight=0.02,
        iap_weight=0.1,
    )
    torch.manual_seed(0)
    model = build_model(choice)
    freeze_text_layers(model, 4)
    optimizer = build_optimizer(model, 2e-3, 0.1, 0.01)
    return Training(
        model,
        model,
        PLIPLoss.from_config(model.config),
        optimizer,
        warmup_step_decay(optimizer, 0, []),
        torch.amp.GradScaler("cpu", enabled=False),
        distributed.Context(),
        torch.device("cpu"),
    )


def samples_per_second(preset: str, batch_size: int, steps: int, precision: str) -> float:
    training = make_training(preset)
    model = training.model
    batch = synthetic_batch(model, batch_size, seed=0)
    model.train()
    train_step(training, batch, precision, 5.0)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        train_step(training, batch, precision, 5.0)
    return batch_size * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="RN-tiny,RN50-MiniLM", help="comma-separated presets to time")
    parser.add_argument("--batch-size", type=int, default=16, help="samples per step (4 images per identity)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per preset, after one warm-up step")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="CPU autocast precision")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for preset in args.presets.split(","):
        results[preset] = samples_per_second(preset, args.batch_size, args.steps, args.precision)
        print(
            f"{preset}: {results[preset]:.2f} samples/s (batch {args.batch_size}, {args.threads} threads, "
            f"{args.precision})",
            flush=True,
        )
    first = next(iter(results))
    for preset, speed in results.items():
        print(f"{preset} / {first}: {speed / results[first]:.3f}x")


if __name__ == "__main__":
    main()
