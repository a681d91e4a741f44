"""Pre-training heads: text-guided colorization (TIC) and image-guided attribute prediction (IAP)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MultimodalSE(nn.Module):
    """Squeeze-and-excitation whose channel weights also see the global text embedding."""

    def __init__(self, channels: int, text_dim: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Linear(channels + text_dim, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        squeezed = torch.cat([x.mean(dim=(2, 3)), text], dim=1)
        weights = torch.sigmoid(self.fc2(F.relu(self.fc1(squeezed))))
        return x * weights[:, :, None, None]


class ColorizationHead(nn.Module):
    """Stage maps of a grayscale image + text -> colour image at full resolution.

    Each stage is first narrowed by its own 1x1 conv to channels/4 (at its own resolution: far cheaper than
    reducing the concatenation, which for RN50 would cost as much as the backbone), then all are resized to
    the first stage's H/4 x W/4 and concatenated, reweighted by two text-aware SE blocks around a 3x3 conv,
    and two stride-2 deconvolutions bring the result back to 3 x H x W.
    """

    def __init__(self, stage_channels: list[int], text_dim: int, channels: int, se_reduction: int) -> None:
        super().__init__()
        if channels % len(stage_channels):
            raise ValueError(f"tic channels {channels} must be a multiple of the {len(stage_channels)} stages")
        lateral = channels // len(stage_channels)
        self.laterals = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, lateral, 1, bias=False), nn.BatchNorm2d(lateral), nn.ReLU())
            for c in stage_channels
        )
        self.se1 = MultimodalSE(channels, text_dim, se_reduction)
        self.mix = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU())
        self.se2 = MultimodalSE(channels, text_dim, se_reduction)
        self.up1 = nn.Sequential(
            nn.ConvTranspose2d(channels, channels // 2, 4, stride=2, padding=1),
            nn.BatchNorm2d(channels // 2),
            nn.ReLU(),
        )
        self.up2 = nn.ConvTranspose2d(channels // 2, 3, 4, stride=2, padding=1)

    def forward(self, features: list[torch.Tensor], text: torch.Tensor) -> torch.Tensor:
        size = features[0].shape[-2:]
        narrowed = [lateral(f) for lateral, f in zip(self.laterals, features)]
        stacked = torch.cat(
            [narrowed[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in narrowed[1:]],
            dim=1,
        )
        x = self.se1(stacked, text)
        x = self.se2(self.mix(x), text)
        return self.up2(self.up1(x))


class AttributeHead(nn.Module):
    """Masked caption tokens fused with the image embedding -> one transformer block -> vocabulary logits.

    Logits are computed only at the masked positions (labels != -100): a full [B, L, vocab] tensor would
    dominate memory at the paper's batch size.
    """

    def __init__(self, hidden_size: int, image_dim: int, vocab_size: int, heads: int) -> None:
        super().__init__()
        self.image_proj = nn.Linear(image_dim, hidden_size)
        self.block = nn.TransformerEncoderLayer(
            hidden_size, heads, dim_feedforward=4 * hidden_size, activation="gelu", batch_first=True, norm_first=True
        )
        self.norm = nn.LayerNorm(hidden_size)
        self.vocab = nn.Linear(hidden_size, vocab_size)

    def forward(
        self, hidden: torch.Tensor, image: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (logits [N, vocab], labels [N]) for the N masked tokens of the batch."""
        masked = labels != -100
        # The image embedding is added to the masked tokens only; the block lets it reach their context.
        fused = hidden + masked.unsqueeze(-1).to(hidden.dtype) * self.image_proj(image).unsqueeze(1)
        fused = self.block(fused, src_key_padding_mask=attention_mask == 0)
        return self.vocab(self.norm(fused[masked])), labels[masked]
