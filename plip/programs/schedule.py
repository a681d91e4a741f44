"""Learning-rate schedule of PLIP pre-training: linear warm-up, then step decay at milestones.

All positions are optimizer steps; :func:`epoch_schedule` converts epoch flags with a fixed number of
steps per epoch. The IAP masking-ratio schedule lives in :func:`plip.masking.masking_ratio`; training
feeds it ``progress = step / total_steps``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.optim.lr_scheduler import LambdaLR


def lr_factor(step: int, warmup_steps: int, milestones: Sequence[int], gamma: float = 0.1) -> float:
    """Multiplier of the base learning rate for the update made at ``step`` (0-based).

    Warm-up rises linearly over ``warmup_steps`` updates (the first update already uses 1/warmup_steps,
    so none is wasted at lr 0); after it, the rate is multiplied by ``gamma`` at every milestone reached.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    warm = (step + 1) / warmup_steps if step < warmup_steps else 1.0
    return warm * gamma ** sum(step >= milestone for milestone in milestones)


def check_schedule(warmup_steps: int, milestones: Sequence[int], gamma: float) -> None:
    """ValueError naming the first bad setting."""
    if warmup_steps < 0:
        raise ValueError(f"warm-up must be >= 0 steps, got {warmup_steps}")
    if any(m < 1 for m in milestones) or list(milestones) != sorted(set(milestones)):
        raise ValueError(f"milestones must be increasing positive step counts, got {list(milestones)}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")


def warmup_step_decay(
    optimizer: torch.optim.Optimizer, warmup_steps: int, milestones: Sequence[int], gamma: float = 0.1
) -> LambdaLR:
    """A scheduler stepped once per optimizer update; every parameter group keeps its own base rate."""
    check_schedule(warmup_steps, milestones, gamma)
    milestones = tuple(milestones)
    return LambdaLR(optimizer, lambda step: lr_factor(step, warmup_steps, milestones, gamma))


def epoch_schedule(
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    warmup_epochs: float,
    milestone_epochs: Sequence[float],
    gamma: float = 0.1,
) -> LambdaLR:
    """:func:`warmup_step_decay` with its warm-up and milestones given in (fractional) epochs."""
    return warmup_step_decay(
        optimizer,
        round(warmup_epochs * steps_per_epoch),
        [max(1, round(m * steps_per_epoch)) for m in milestone_epochs],
        gamma,
    )
