"""Pre-training steps fed from corpus shards against the same steps fed from tensors already in memory.

    python benchmarks/pretrain_loader.py [--preset RN-tiny] [--ids-per-batch 2 --images-per-id 4] [--steps 2]
        [--rounds 3] [--workers 0]

Writes a small corpus (4 images per identity), builds the pre-training state of ``--preset`` on the CPU
(benchmarks/pretrain_throughput.py), and alternates: ``--steps`` steps whose batches come from
``plip.programs.train_data.train_batches`` (open_corpus, grouping, decode, transform, tokenize, IAP
masks; one stream for all rounds, so its start-up is the warm-up, not timed), and the same number of steps
over batches collated once beforehand. The ratio is what the loader
costs the model: 1.0 when it never starves it. The loader alone (batches made, no step) is timed too: what
bounds the ratio when it is below 1.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile

import torch
from bench_common import alternate, report, write_bench_corpus
from pretrain_throughput import make_training

from plip.programs.pretrain import train_step
from plip.programs.train_data import BatchSpec, train_batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="RN-tiny")
    parser.add_argument("--ids-per-batch", type=int, default=2)
    parser.add_argument("--images-per-id", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (the program's --workers)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    training = make_training(args.preset)
    model = training.model
    model.train()
    batch_size = args.ids_per_batch * args.images_per_id
    with tempfile.TemporaryDirectory() as directory:
        write_bench_corpus(directory, max(2, args.workers), 400, identity_size=args.images_per_id)
        spec = BatchSpec(
            source=directory,
            tokenizer=model.tokenizer,
            ids_per_batch=args.ids_per_batch,
            images_per_id=args.images_per_id,
            steps_per_epoch=10**6,
            total_steps=10**6,
            image_size=model.config.vision.image_size,
            max_length=model.config.text.max_length,
            shuffle=200,
            group_buffer=1000,
            masking=model.iap_head is not None,
        )
        memory = [
            {k: v for k, v in b.items() if k not in ("batch_index", "skipped_samples")}
            for b in itertools.islice(train_batches(spec, 1), args.steps)
        ]
        stream = train_batches(spec, 0, workers=args.workers)  # one long epoch: the steady state, not its start

        def from_shards() -> int:
            for batch in itertools.islice(stream, args.steps):
                del batch["batch_index"], batch["skipped_samples"]
                train_step(training, batch, "fp32", 5.0)
            return args.steps * batch_size

        def from_memory() -> int:
            for batch in memory:
                train_step(training, dict(batch), "fp32", 5.0)
            return args.steps * batch_size

        def loader_alone() -> int:
            return sum(len(batch["images"]) for batch in itertools.islice(stream, args.steps))

        rates = alternate(
            {
                "steps from shards": from_shards,
                "steps from tensors in memory": from_memory,
                "loader alone (no model)": loader_alone,
            },
            args.rounds,
        )
        report(
            f"pre-training {args.preset}, batch {batch_size}, {args.steps} steps per round, "
            f"{args.workers} workers (samples/s)",
            rates,
            "steps from shards",
            "steps from tensors in memory",
            0.9,
            "samples/s",
        )


if __name__ == "__main__":
    main()
