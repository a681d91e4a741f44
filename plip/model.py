"""The PLIP model: image encoder + text encoder + the TIC / IAP heads of the switched-on tasks.

``forward(batch)`` returns named outputs that are the keyword arguments of ``plip.losses.PLIPLoss``.
Batch keys: ``images`` [B,3,H,W], ``input_ids`` / ``attention_mask`` [B,L], ``identity_ids`` [B];
with TIC on, optionally ``gray_images`` (else derived from ``images``); with IAP on, ``mlm_input_ids``
and ``mlm_labels`` (built by ``plip.masking.mask_batch``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from plip.config import PLIPConfig
from plip.heads import AttributeHead, ColorizationHead
from plip.image_encoder import ModifiedResNet
from plip.text_encoder import TextEncoder, load_tokenizer

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


def to_grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma of each pixel, repeated on 3 channels so the image encoder takes it unchanged."""
    weights = images.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True).expand(-1, 3, -1, -1)


class PLIPModel(nn.Module):
    def __init__(self, config: PLIPConfig, safetensors_only: bool = False) -> None:
        """``safetensors_only``: a pretrained text model loads from safetensors weights only (a checkpoint's
        config names it: no pickled weights)."""
        super().__init__()
        self.config = config
        self.image_encoder = ModifiedResNet(config.vision)
        self.text_encoder = TextEncoder(config.text, config.vision.output_dim, safetensors_only)
        self.tokenizer = load_tokenizer(config.text)
        embed_dim = config.vision.output_dim
        self.tic_head = (
            ColorizationHead(self.image_encoder.stage_channels, embed_dim, config.tic.channels, config.tic.se_reduction)
            if config.tic.weight > 0
            else None
        )
        self.iap_head = (
            AttributeHead(self.text_encoder.hidden_size, embed_dim, self.text_encoder.vocab_size, config.iap.heads)
            if config.iap.weight > 0
            else None
        )

    @property
    def embed_dim(self) -> int:
        return self.config.vision.output_dim

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask``, padded/truncated to the configured length (64)."""
        if isinstance(texts, str):
            raise ValueError("tokenize expects a list of captions, got a single string")
        encoded = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.config.text.max_length,
            return_tensors="pt",
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(images).embedding

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(input_ids, attention_mask).embedding

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, attention_mask = batch["images"], batch["attention_mask"]
        image_features = self.encode_image(images)
        text_features = self.encode_text(batch["input_ids"], attention_mask)
        outputs = {
            "image_features": image_features,
            "text_features": text_features,
            "identity_ids": batch["identity_ids"],
        }
        if self.tic_head is not None:
            gray = batch["gray_images"] if "gray_images" in batch else to_grayscale(images)
            outputs["colorized"] = self.tic_head(self.image_encoder.stages(gray), text_features)
            outputs["color_target"] = images
        if self.iap_head is not None:
            if "mlm_input_ids" not in batch or "mlm_labels" not in batch:
                raise ValueError(
                    "IAP is on but the batch lacks mlm_input_ids / mlm_labels "
                    "(build batches with plip.masking.mask_batch, or set iap.weight to 0)"
                )
            hidden = self.text_encoder(batch["mlm_input_ids"], attention_mask).hidden_states
            logits, labels = self.iap_head(hidden, image_features, attention_mask, batch["mlm_labels"])
            outputs["attribute_logits"], outputs["attribute_labels"] = logits, labels
        return outputs
