"""The linear probe: one linear layer on frozen image embeddings, and the model with it folded in.

:class:`LinearProbe` starts as the identity times a scale (so before training it ranks exactly as the zero-shot
model) and is trained on precomputed features (the encoders are frozen, so each image and caption is encoded once);
the loss is the identity-level CMPM of :func:`plip.losses.ivlc_loss` between probed image features and the frozen
text features. The image encoder ends in a linear layer (the attention pool's ``c_proj``), so :func:`fold_probe`
can fold the probe into it: the result is an ordinary PLIP model that every program reads.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from common.errors import InputError
from plip.losses import ivlc_loss
from plip.model import PLIPModel


class LinearProbe(nn.Module):
    """``dim -> dim`` linear layer on image embeddings times a learned scale: ``exp(log_scale) * (W f + b)``,
    starting at W = I, b = 0, scale 1. A scale changes no cosine ranking, so at any starting scale the probe scores
    exactly as the zero-shot model; it sets how peaked CMPM's softmax over raw image features is
    (:func:`best_start_scale`)."""

    def __init__(self, dim: int, scale: float = 1.0) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"probe dimension must be positive, got {dim}")
        if not scale > 0:
            raise ValueError(f"probe scale must be positive, got {scale}")
        self.linear = nn.Linear(dim, dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(dim))
            self.linear.bias.zero_()

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        return self.log_scale.exp() * self.linear(image_features)


START_SCALES = tuple(2.0**k for k in range(-6, 9))  # 1/64 ... 256


@torch.no_grad()
def best_start_scale(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    identity_ids: torch.Tensor,
    target_norm: str = "l1",
    scales: tuple[float, ...] = START_SCALES,
    batch_size: int = 64,
) -> float:
    """The starting scale (of ``scales``) with the lowest mean CMPM on the training features, in batches of
    ``batch_size`` pairs in their given order: raw features with large norms saturate the softmax (no gradient),
    small ones flatten it."""

    def loss_at(scale: float) -> float:
        total, batches = 0.0, 0
        for start in range(0, len(image_features), batch_size):
            stop = start + batch_size
            total += float(
                ivlc_loss(
                    scale * image_features[start:stop], text_features[start:stop], identity_ids[start:stop], target_norm
                )
            )
            batches += 1
        return total / batches

    return min(scales, key=loss_at)


def probe_loss(
    probe: LinearProbe,
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    identity_ids: torch.Tensor,
    target_norm: str = "l1",
) -> torch.Tensor:
    """Identity-level CMPM (image->text plus text->image) of the probed image features and the text features."""
    return ivlc_loss(probe(image_features), text_features, identity_ids, target_norm)


def fold_probe(model: PLIPModel, probe: LinearProbe) -> PLIPModel:
    """A copy of ``model`` whose image embedding is ``probe(embedding)``: with the probe's s W_p and s b_p,
    c_proj becomes (s W_p W_c, s W_p b_c + s b_p)."""
    c_proj = model.image_encoder.attnpool.c_proj
    if probe.linear.in_features != c_proj.out_features:
        raise InputError(
            f"the probe takes {probe.linear.in_features}-d features, the model gives {c_proj.out_features}"
        )
    folded = copy.deepcopy(model)
    target = folded.image_encoder.attnpool.c_proj
    scale = probe.log_scale.detach().exp()
    weight = (scale * probe.linear.weight.detach()).to(c_proj.weight)
    bias = (scale * probe.linear.bias.detach()).to(c_proj.weight)
    with torch.no_grad():
        target.weight.copy_(weight @ c_proj.weight.detach())
        target.bias.copy_(weight @ c_proj.bias.detach() + bias)
    return folded
