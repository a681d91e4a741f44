"""Fine-tuning data: the (image, caption) pairs of a CUHK-PEDES / ICFG-PEDES / RSTPReid training split,
identity-aware batch plans over them, and a torch Dataset that loads a planned batch.

A batch holds ``batch_size / pairs_per_id`` distinct identities with ``pairs_per_id`` pairs each, so CMPM
sees positives in every batch. The plan of epoch ``e`` and every horizontal flip in it come from seeds of
``(seed, e)``: the same flags give the same batches, with or without DataLoader workers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from common.digests import stable_int
from common.errors import InputError
from plip.programs.eval_data import DatasetFormatError, read_split
from plip.transforms import read_image, train_transform


@dataclass(frozen=True)
class TrainPairs:
    """Every (image, caption) pair of the training split; ``labels`` are the identities mapped to 0..N-1."""

    images: tuple[Path, ...]
    captions: tuple[str, ...]
    labels: tuple[int, ...]
    identities: tuple[int, ...]  # dataset identity of each class index

    def __len__(self) -> int:
        return len(self.captions)


def load_train_entries(dataset: str, root: str | Path) -> tuple[list[dict[str, Any]], str]:
    """Entries of the training split and their source file (:func:`plip.programs.eval_data.read_split`)."""
    split = read_split(dataset, root, "train")
    return split.entries, split.source


def train_pairs(entries: Sequence[dict[str, Any]], images_root: str | Path, source: str = "dataset") -> TrainPairs:
    """One pair per caption of every entry; each image must exist under ``images_root``."""
    images_root = Path(images_root)
    identities = sorted({entry["id"] for entry in entries})
    label_of = {identity: label for label, identity in enumerate(identities)}
    images, captions, labels = [], [], []
    for index, entry in enumerate(entries):
        path = images_root / entry["file_path"]
        if not path.is_file():
            raise DatasetFormatError(f"{source}: training entry {index}: image not found: {path}")
        for caption in entry["captions"]:
            images.append(path)
            captions.append(caption)
            labels.append(label_of[entry["id"]])
    return TrainPairs(tuple(images), tuple(captions), tuple(labels), tuple(identities))


def _identity_chunks(members: list[int], size: int, rng: random.Random) -> list[list[int]]:
    """An identity's shuffled pairs cut into chunks of ``size``, the remainder left for another epoch (as
    identity samplers in re-identification do); an identity with fewer pairs repeats some to fill one chunk."""
    if len(members) < size:
        return [members + rng.choices(members, k=size - len(members))]
    rng.shuffle(members)
    return [members[start : start + size] for start in range(0, len(members) - size + 1, size)]


def epoch_plan(labels: Sequence[int], batch_size: int, pairs_per_id: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of pair indices for one epoch: ``batch_size / pairs_per_id`` distinct identities each.

    An epoch holds about ``len(labels) / batch_size`` batches: each identity's pairs are split into whole
    chunks (a random remainder waits for another epoch), and the chunks of batches still unfinished when the
    chunks run out (too few distinct identities left) are dropped."""
    if pairs_per_id < 1 or batch_size % pairs_per_id:
        raise InputError(f"batch size {batch_size} must be a multiple of the pairs per identity {pairs_per_id}")
    ids_per_batch = batch_size // pairs_per_id
    rng = random.Random(stable_int(seed, "finetune-plan", epoch))
    members: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        members.setdefault(label, []).append(index)
    if len(members) < ids_per_batch:
        raise InputError(
            f"{len(members)} training identities cannot fill a batch of {ids_per_batch} identities "
            f"(batch size {batch_size} / {pairs_per_id} pairs per identity)"
        )
    chunks = [
        (label, chunk) for label in sorted(members) for chunk in _identity_chunks(members[label], pairs_per_id, rng)
    ]
    rng.shuffle(chunks)
    # Each chunk joins the oldest open batch without its identity; a batch is done when it has enough.
    open_batches: list[tuple[set[int], list[int]]] = []
    batches: list[list[int]] = []
    for label, chunk in chunks:
        target = next((b for b in open_batches if label not in b[0]), None)
        if target is None:
            target = (set(), [])
            open_batches.append(target)
        target[0].add(label)
        target[1].extend(chunk)
        if len(target[0]) == ids_per_batch:
            batches.append(target[1])
            open_batches.remove(target)
    return batches


class PairDataset(Dataset):
    """Item ``(pair index, flip)`` -> (image tensor [3, H, W], caption, label)."""

    def __init__(self, pairs: TrainPairs, image_size: tuple[int, int]) -> None:
        self.pairs, self.image_size = pairs, tuple(image_size)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, item: tuple[int, bool]) -> tuple[torch.Tensor, str, int]:
        index, flip = item
        tensor = train_transform(read_image(self.pairs.images[index]), self.image_size, flip)
        return tensor, self.pairs.captions[index], self.pairs.labels[index]


def collate_pairs(items: list[tuple[torch.Tensor, str, int]]) -> dict[str, Any]:
    images, captions, labels = zip(*items)
    return {"images": torch.stack(images), "captions": list(captions), "labels": torch.tensor(labels)}


def epoch_loader(
    pairs: TrainPairs,
    image_size: tuple[int, int],
    plan: list[list[int]],
    seed: int,
    epoch: int,
    workers: int = 0,
    pin_memory: bool = False,
    start: int = 0,
) -> DataLoader:
    """Batches of ``{"images", "captions", "labels"}`` in plan order from batch ``start`` on (a resumed epoch
    skips the batches it already trained on), each pair flipped with probability 1/2 as in the whole epoch."""
    rng = random.Random(stable_int(seed, "finetune-flip", epoch))
    batches = [[(index, rng.random() < 0.5) for index in batch] for batch in plan]
    # Its own generator: a DataLoader otherwise draws its worker seed from torch's global RNG, so opening the
    # loader mid-epoch on resume would shift the dropout noise of every later step.
    generator = torch.Generator().manual_seed(stable_int(seed, "finetune-loader", epoch))
    return DataLoader(
        PairDataset(pairs, image_size),
        batch_sampler=batches[start:],
        collate_fn=collate_pairs,
        num_workers=workers,
        pin_memory=pin_memory,
        generator=generator,
    )
