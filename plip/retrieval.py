"""Text-to-image retrieval with a model: every query caption against every gallery image.

:func:`evaluate` encodes the gallery (through the released evaluation transform) and the queries, scores
them and returns :func:`plip.metrics.retrieval_metrics` as a dict. It needs only ``encode_image`` /
``encode_text`` / ``tokenize`` (:class:`RetrievalEncoder`), so zero-shot evaluation, pre-training's periodic
evaluation and fine-tuning share it. Building query sets and galleries from datasets is the programs' job.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from plip.metrics import retrieval_metrics
from plip.transforms import eval_transform, read_image


class RetrievalEncoder(Protocol):
    def encode_image(self, images: torch.Tensor) -> torch.Tensor: ...

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor: ...

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]: ...


@dataclass(frozen=True)
class QuerySet:
    """Text queries: one caption and its identity per query."""

    texts: tuple[str, ...]
    ids: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class Gallery:
    """Unique gallery images: each a file path or an in-memory PIL image, with its identity and key."""

    images: tuple[Path | Image.Image, ...]
    ids: tuple[int, ...]
    keys: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> Image.Image:
        image = self.images[index]
        return image if isinstance(image, Image.Image) else read_image(image)


class GalleryDataset(Dataset):
    """Gallery images through the evaluation transform, for a torch DataLoader."""

    def __init__(self, gallery: Gallery):
        self.gallery = gallery

    def __len__(self) -> int:
        return len(self.gallery)

    def __getitem__(self, index: int) -> torch.Tensor:
        return eval_transform(self.gallery.load(index))


def gallery_loader(gallery: Gallery, batch_size: int, num_workers: int = 0) -> DataLoader:
    """Batches of [B, 3, 256, 128] gallery tensors in gallery order."""
    return DataLoader(GalleryDataset(gallery), batch_size=batch_size, shuffle=False, num_workers=num_workers)


def text_batches(queries: QuerySet, batch_size: int) -> Iterator[list[str]]:
    """Query captions in order, ``batch_size`` at a time."""
    for start in range(0, len(queries), batch_size):
        yield list(queries.texts[start : start + batch_size])


def encode_gallery(
    model: RetrievalEncoder,
    gallery: Gallery,
    batch_size: int,
    device: str | torch.device,
    num_workers: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """[len(gallery), D] image embeddings, in gallery order, kept on ``device``."""
    batches = gallery_loader(gallery, batch_size, num_workers)
    embeddings = [
        model.encode_image(images.to(device, non_blocking=True))
        for images in tqdm(batches, desc="gallery", unit="batch", disable=not progress)
    ]
    return torch.cat(embeddings)


def encode_queries(
    model: RetrievalEncoder, queries: QuerySet, batch_size: int, device: str | torch.device, progress: bool = False
) -> torch.Tensor:
    """[len(queries), D] caption embeddings, in query order, kept on ``device``."""
    embeddings = []
    total = -(-len(queries) // batch_size)
    for texts in tqdm(
        text_batches(queries, batch_size), total=total, desc="queries", unit="batch", disable=not progress
    ):
        tokens = model.tokenize(texts)
        embeddings.append(model.encode_text(tokens["input_ids"].to(device), tokens["attention_mask"].to(device)))
    return torch.cat(embeddings)


def evaluate(
    model: RetrievalEncoder,
    queries: QuerySet,
    gallery: Gallery,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Text-to-image retrieval metrics of ``model`` (already on ``device``), as ``RetrievalMetrics.as_dict()``.

    Runs in eval mode under ``torch.inference_mode`` and puts an ``nn.Module`` back into training mode
    afterwards if it was training, so a training loop can call it between steps; every RNG (torch's CPU one
    and ``device``'s) is left as it was (a DataLoader draws its seed from it), so training after an
    evaluation, or resumed from a checkpoint written after one, sees the same random numbers.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    was_training = isinstance(model, torch.nn.Module) and model.training
    if isinstance(model, torch.nn.Module):
        model.eval()
    device = torch.device(device)
    cuda_devices = []
    if device.type == "cuda":
        cuda_devices = [torch.cuda.current_device() if device.index is None else device.index]
    try:
        with torch.random.fork_rng(devices=cuda_devices), torch.inference_mode():
            gallery_embeddings = encode_gallery(model, gallery, batch_size, device, num_workers, progress)
            query_embeddings = encode_queries(model, queries, batch_size, device, progress)
            result = retrieval_metrics(query_embeddings, queries.ids, gallery_embeddings, gallery.ids)
    finally:
        if was_training:
            model.train()
    return result.as_dict()
