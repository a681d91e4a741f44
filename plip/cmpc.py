"""CMPC: cross-modal projection classification (Zhang & Lu, ECCV 2018), the identity loss of fine-tuning.

Each image feature is projected onto the direction of its paired text feature (and each text feature onto
its image's), and one shared identity classifier without bias, whose class vectors are L2-normalised,
scores both projections; the loss is the cross-entropy of the identity labels for images plus for texts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def norm_projection(features: torch.Tensor, onto: torch.Tensor) -> torch.Tensor:
    """Row-wise vector projection of ``features`` onto the unit direction of ``onto``: (f . t̂) t̂."""
    direction = F.normalize(onto, dim=1)
    return (features * direction).sum(dim=1, keepdim=True) * direction


def cmpc_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor
) -> torch.Tensor:
    """CE(W_n · proj(image on text), y) + CE(W_n · proj(text on image), y), W_n = rows of W L2-normalised.

    ``class_weights`` is [num_classes, D]; ``labels`` are class indices 0..num_classes-1 of the pairs.
    """
    if not (image_features.shape == text_features.shape and image_features.shape[0] == labels.shape[0]):
        raise ValueError(
            f"cmpc: {tuple(image_features.shape)} image features, {tuple(text_features.shape)} text "
            f"features and {tuple(labels.shape)} labels must describe the same pairs"
        )
    if class_weights.shape[1] != image_features.shape[1]:
        raise ValueError(
            f"cmpc: classifier has {class_weights.shape[1]}-d class vectors, features are {image_features.shape[1]}-d"
        )
    classes = F.normalize(class_weights, dim=1)
    image_logits = norm_projection(image_features, text_features) @ classes.T
    text_logits = norm_projection(text_features, image_features) @ classes.T
    return F.cross_entropy(image_logits, labels) + F.cross_entropy(text_logits, labels)


class IdentityClassifier(nn.Module):
    """The shared CMPC classifier: one D-dimensional class vector per training identity, no bias."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        if num_classes < 1 or dim < 1:
            raise ValueError(f"classifier needs at least one class and dimension, got {num_classes} x {dim}")
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return cmpc_loss(image_features, text_features, labels, self.weight)
