"""The minimal embedding API: load a checkpoint in one call, then embed images and texts.

    from plip.embedding import load_embedder
    model = load_embedder("PLIP_MRN50.pth.tar")            # or one of our checkpoint directories
    images = model.embed_images(["a.jpg", "b.jpg"])     # [2, 768], L2-normalised, on the CPU
    texts = model.embed_texts(["a woman in a red coat"])
    scores = texts @ images.T                           # cosine similarities

Images go through the released evaluation transform (:func:`plip.transforms.eval_transform`: bicubic resize to
256x128, SYNTH-PEDES mean / std; at the model's own input size for a smaller test model); image files are read
under the project's decode policy (:func:`plip.transforms.read_image`). Work is batched on the model's device
(CPU or GPU) under ``torch.inference_mode``; results come back as float32 tensors on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from common.devices import resolve_device
from common.imaging import normalised_tensor
from plip.checkpoint import load_checkpoint_model
from plip.model import PLIPModel
from plip.transforms import EVAL_HEIGHT, EVAL_WIDTH, read_image

ImageLike = str | Path | Image.Image
T = TypeVar("T")
DEFAULT_IMAGE_BATCH, DEFAULT_TEXT_BATCH = 32, 128


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"batch_size must be positive, got {size}")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def preprocess_image(image: ImageLike, size: tuple[int, int] = (EVAL_HEIGHT, EVAL_WIDTH)) -> torch.Tensor:
    """A path (read under the decode policy) or a PIL image as the ``[3, H, W]`` input of a model taking ``size``
    (H, W): the released evaluation transform, at the model's own size for a smaller test model."""
    if not isinstance(image, Image.Image):
        if not isinstance(image, (str, Path)):
            raise ValueError(f"expected an image path or a PIL image, got {type(image).__name__}")
        image = read_image(image)
    return normalised_tensor(image, tuple(size))  # eval_transform is this at the released 256x128


class Embedder:
    """A PLIP model in eval mode on ``device``, with batched, L2-normalised image and text embeddings."""

    def __init__(self, model: PLIPModel, device: str | torch.device = "cpu") -> None:
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.model = model.to(self.device).eval()
        self.image_size = tuple(model.config.vision.image_size)

    @property
    def dim(self) -> int:
        """Size of an embedding (768 for the released RN50)."""
        return self.model.embed_dim

    def preprocess(self, image: ImageLike) -> torch.Tensor:
        """One image (a path or a PIL image) as the ``[3, H, W]`` tensor the image encoder takes."""
        return preprocess_image(image, self.image_size)

    @torch.inference_mode()
    def embed_image_tensors(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Embeddings of an already transformed ``[B, 3, H, W]`` batch (:meth:`preprocess`), on the CPU."""
        features = self.model.encode_image(images.to(self.device, non_blocking=True)).float()
        return (F.normalize(features, dim=1) if normalize else features).cpu()

    @torch.inference_mode()
    def embed_text_batch(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        """Embeddings of one batch of texts (tokenised to the model's length, 64), on the CPU."""
        tokens = self.model.tokenize(list(texts))
        features = self.model.encode_text(
            tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)
        ).float()
        return (F.normalize(features, dim=1) if normalize else features).cpu()

    def embed_images(
        self,
        images: Sequence[ImageLike],
        batch_size: int = DEFAULT_IMAGE_BATCH,
        progress: bool = False,
        normalize: bool = True,
    ) -> torch.Tensor:
        """``[len(images), dim]`` L2-normalised embeddings of image paths and / or PIL images, in order
        (``normalize=False``: the encoder's raw features)."""
        if isinstance(images, (str, Path, Image.Image)):
            raise ValueError("embed_images expects a list of images, got a single image")
        if not images:
            return torch.empty(0, self.dim)
        total = -(-len(images) // max(batch_size, 1))
        return torch.cat(
            [
                self.embed_image_tensors(torch.stack([self.preprocess(i) for i in batch]), normalize)
                for batch in tqdm(
                    batched(images, batch_size), total=total, desc="images", unit="batch", disable=not progress
                )
            ]
        )

    def embed_texts(
        self, texts: Sequence[str], batch_size: int = DEFAULT_TEXT_BATCH, progress: bool = False, normalize: bool = True
    ) -> torch.Tensor:
        """``[len(texts), dim]`` L2-normalised embeddings of texts, in order (``normalize=False``: raw)."""
        if isinstance(texts, str):
            raise ValueError("embed_texts expects a list of texts, got a single string")
        bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
        if bad:
            raise ValueError(f"embed_texts expects strings, got {bad[0]}")
        if not texts:
            return torch.empty(0, self.dim)
        total = -(-len(texts) // max(batch_size, 1))
        return torch.cat(
            [
                self.embed_text_batch(batch, normalize)
                for batch in tqdm(
                    batched(texts, batch_size), total=total, desc="texts", unit="batch", disable=not progress
                )
            ]
        )


def load_embedder(
    checkpoint: str | Path | PLIPModel,
    device: str | torch.device = "cpu",
    preset: str = "RN50",
    tokenizer: str | None = None,
) -> Embedder:
    """An :class:`Embedder` of ``checkpoint``: one of our checkpoint directories (or its ``model.safetensors``),
    a released-format file such as ``PLIP_MRN50.pth.tar`` (architecture ``preset``, tokenizer ``tokenizer``,
    default the bundled bert-base-uncased WordPiece vocabulary) or a model already built. ``device``: cpu,
    cuda, cuda:N or auto. A missing or unreadable checkpoint is a one-line ``CheckpointError`` (an InputError)."""
    resolved = resolve_device(device) if isinstance(device, str) else torch.device(device)
    if isinstance(checkpoint, PLIPModel):
        return Embedder(checkpoint, resolved)
    return Embedder(load_checkpoint_model(checkpoint, resolved, preset, tokenizer), resolved)
