"""Shared helpers: reductions and per-pixel weights, as in BasicSR's ``weighted_loss``."""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def weighted_reduce(
    loss: torch.Tensor, weight: torch.Tensor | None = None, reduction: str = "mean"
) -> torch.Tensor:
    """Reduce an element-wise loss map ``(N, C, ...)`` with an optional per-element weight.

    ``weight`` broadcasts against ``loss`` (a mask ``(N, 1, H, W)`` is typical). With a weight and
    ``reduction="mean"`` the sum is divided by the weight's total over the broadcast shape, so a
    mask averages over the pixels it selects (BasicSR convention).
    """
    check_reduction(reduction)
    if weight is not None:
        weight = weight.to(loss.dtype)
        loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if weight is None:
        return loss.mean()
    denom = torch.broadcast_to(weight, loss.shape).sum().clamp_min(1e-12)
    return loss.sum() / denom
