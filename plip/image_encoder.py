"""CLIP-style modified ResNet with attention pooling, laid out so its state dict matches the released
PLIP_MRN50 image encoder key for key (see shared/REFERENCE.md section 4)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from plip.config import VisionConfig


class ImageEncoderOutput(NamedTuple):
    embedding: torch.Tensor  # [B, output_dim]
    features: list[torch.Tensor]  # four stage maps at H/4, H/8, H/16, H/32


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> (avgpool for the stride) -> 1x1 x4 channels, with a pooled 1x1 shortcut when shapes change."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        outplanes = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, outplanes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(outplanes)
        self.downsample: nn.Sequential | None = None
        self.downsample_pool: nn.Module = nn.Identity()
        if stride > 1 or inplanes != outplanes:
            # The pool lives outside the Sequential so the released keys stay downsample.0 (conv) / .1 (BN).
            self.downsample_pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, bias=False), nn.BatchNorm2d(outplanes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.pool(out)))
        identity = x if self.downsample is None else self.downsample(self.downsample_pool(x))
        return F.relu(out + identity)


class AttentionPool2d(nn.Module):
    """One query (the mean token) attends over all positions; output projected to ``output_dim``."""

    def __init__(self, num_positions: int, embed_dim: int, heads: int, output_dim: int) -> None:
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(num_positions + 1, embed_dim) / embed_dim**0.5)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        if height * width + 1 != self.positional_embedding.shape[0]:
            raise ValueError(
                f"feature map {height}x{width} does not match the positional embedding of "
                f"{self.positional_embedding.shape[0] - 1} positions (wrong input image size?)"
            )
        tokens = x.flatten(2).transpose(1, 2)  # [B, HW, C]
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1) + self.positional_embedding
        head_dim = channels // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, t.shape[1], self.heads, head_dim).transpose(1, 2)

        query = split(self.q_proj(tokens[:, :1]))
        key, value = split(self.k_proj(tokens)), split(self.v_proj(tokens))
        pooled = F.scaled_dot_product_attention(query, key, value)  # [B, heads, 1, head_dim]
        return self.c_proj(pooled.transpose(1, 2).reshape(batch, channels))


class ModifiedResNet(nn.Module):
    """3-conv stem + avgpool, four bottleneck stages, attention pooling; returns embedding + stage maps."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.config = config
        width = config.width
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.avgpool = nn.AvgPool2d(2)

        self._inplanes = width
        self.layer1 = self._make_layer(width, config.layers[0])
        self.layer2 = self._make_layer(width * 2, config.layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, config.layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, config.layers[3], stride=2)

        height, width_px = config.image_size
        self.attnpool = AttentionPool2d((height // 32) * (width_px // 32), width * 32, config.heads, config.output_dim)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        layers = [Bottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self._inplanes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    @property
    def stage_channels(self) -> list[int]:
        return [self.config.width * 4 * 2**i for i in range(4)]

    def stages(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The four stage maps alone, for callers that do not need the pooled embedding (TIC's gray pass)."""
        x = F.relu(self.bn1(self.conv1(images)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.avgpool(F.relu(self.bn3(self.conv3(x))))
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            features.append(x)
        return features

    def forward(self, images: torch.Tensor) -> ImageEncoderOutput:
        features = self.stages(images)
        return ImageEncoderOutput(self.attnpool(features[-1]), features)
