"""PLIP pre-training losses. Each takes named model outputs and returns a scalar; ``PLIPLoss`` returns
the weighted terms as a dict (keys ``ivlc_loss``, ``tic_loss``, ``iap_loss``) that training sums.
A task with weight 0 is off: its term is absent and its model outputs are not needed."""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from plip.config import PLIPConfig

EPSILON = 1e-8


def _identity_targets(identity_ids: torch.Tensor, norm: str) -> torch.Tensor:
    match = (identity_ids.reshape(-1, 1) == identity_ids.reshape(1, -1)).to(torch.float32)
    if norm == "l1":
        return match / match.sum(dim=1, keepdim=True)
    if norm == "l2":  # the reference CMPM implementation divides by the row's L2 norm
        return match / match.norm(dim=1, keepdim=True)
    raise ValueError(f"target norm must be 'l1' or 'l2', got {norm!r}")


def _projection_kl(anchor: torch.Tensor, other: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = anchor @ F.normalize(other, dim=1).T  # scalar projection of each anchor onto each other direction
    log_p = F.log_softmax(logits, dim=1)
    return (log_p.exp() * (log_p - torch.log(targets + EPSILON))).sum(dim=1).mean()


def ivlc_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, identity_ids: torch.Tensor, target_norm: str = "l1"
) -> torch.Tensor:
    """Identity-level CMPM: KL(p || q) for image->text plus text->image, averaged over rows.

    p = softmax(image @ normalize(text).T) per row; q = the rows' identity-match matrix, row-normalised.
    """
    if not (image_features.shape[0] == text_features.shape[0] == identity_ids.shape[0]):
        raise ValueError(
            f"ivlc: batch sizes differ: {image_features.shape[0]} images, {text_features.shape[0]} texts, "
            f"{identity_ids.shape[0]} identity ids"
        )
    targets = _identity_targets(identity_ids, target_norm).to(image_features.dtype)
    return _projection_kl(image_features, text_features, targets) + _projection_kl(
        text_features, image_features, targets
    )


def tic_loss(colorized: torch.Tensor, color_target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the colorized grayscale image and the colour image."""
    if colorized.shape != color_target.shape:
        raise ValueError(f"tic: colorized {tuple(colorized.shape)} vs target {tuple(color_target.shape)}")
    return F.mse_loss(colorized, color_target)


def iap_loss(attribute_logits: torch.Tensor, attribute_labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (NLL) of the masked attribute tokens; 0 (with a graph) when none was masked."""
    if attribute_labels.numel() == 0:
        return attribute_logits.sum() * 0.0
    return F.cross_entropy(attribute_logits, attribute_labels)


class PLIPLoss(nn.Module):
    """L = w_ivlc L_ivlc + w_tic L_tic + w_iap L_iap; returns the weighted terms by name."""

    def __init__(
        self, ivlc_weight: float = 1.0, tic_weight: float = 0.02, iap_weight: float = 0.1, ivlc_target_norm: str = "l1"
    ) -> None:
        super().__init__()
        self.weights = {"ivlc": ivlc_weight, "tic": tic_weight, "iap": iap_weight}
        self.terms = {
            "ivlc": functools.partial(ivlc_loss, target_norm=ivlc_target_norm),
            "tic": tic_loss,
            "iap": iap_loss,
        }

    @classmethod
    def from_config(cls, config: PLIPConfig) -> PLIPLoss:
        return cls(config.ivlc_weight, config.tic.weight, config.iap.weight, config.ivlc_target_norm)

    def forward(self, **outputs: Any) -> dict[str, torch.Tensor]:
        losses = {}
        for name, weight in self.weights.items():
            if weight == 0:
                continue
            missing = [key for key in _INPUTS[name] if key not in outputs]
            if missing:
                raise ValueError(f"{name} loss is on (weight {weight}) but the model outputs lack {missing}")
            losses[f"{name}_loss"] = weight * self.terms[name](*(outputs[key] for key in _INPUTS[name]))
        return losses


_INPUTS = {
    "ivlc": ("image_features", "text_features", "identity_ids"),
    "tic": ("colorized", "color_target"),
    "iap": ("attribute_logits", "attribute_labels"),
}
