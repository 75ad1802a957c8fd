"""Shared helpers: reductions and per-pixel weights (as BasicSR's ``weighted_loss``), input lists."""

from __future__ import annotations

from typing import Any

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


def tensor_list(obj: Any, name: str) -> list[torch.Tensor]:
    """A tensor or a non-empty list/tuple of tensors (one per discriminator or layer) -> a list."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(t, torch.Tensor) for t in obj):
        return list(obj)
    raise TypeError(
        f"{name} must be a tensor or a non-empty list of tensors (one per discriminator or layer), "
        f"got {type(obj).__name__}"
    )
