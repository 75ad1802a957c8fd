"""Pixel losses: l1, mse, charbonnier, pseudo_huber (optionally with a scheduled ``c``).

All take ``pred`` and ``target`` of the same shape (``N, C, H, W`` images or ``N, C, T`` audio)
and an optional per-element ``weight`` (a mask such as ``N, 1, H, W`` broadcasts).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .reduction import check_reduction, weighted_reduce
from .registry import register


def _check_shapes(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")


def l1_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, reduction: str = "mean"
) -> torch.Tensor:
    """Mean absolute error, ``|pred - target|``, weighted and reduced."""
    _check_shapes(pred, target)
    return weighted_reduce((pred - target).abs(), weight, reduction)


def mse_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, reduction: str = "mean"
) -> torch.Tensor:
    """Mean squared error, ``(pred - target)^2``, weighted and reduced."""
    _check_shapes(pred, target)
    return weighted_reduce((pred - target).square(), weight, reduction)


def charbonnier_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    eps: float = 1e-3,
    reduction: str = "mean",
) -> torch.Tensor:
    """Charbonnier (smooth L1), ``sqrt((pred - target)^2 + eps^2)``.

    Registered as float32-only: ``eps^2`` underflows in float16 for the small eps used in the
    literature (1e-6 to 1e-12), which gives NaN gradients at zero residual.
    """
    _check_shapes(pred, target)
    return weighted_reduce(torch.sqrt((pred - target).square() + eps * eps), weight, reduction)


def pseudo_huber_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    c: float | torch.Tensor = 0.03,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Pseudo-Huber, ``sqrt((pred - target)^2 + c^2) - c``; ``c`` may be per sample, shape ``(N,)``.

    Quadratic for residuals below ``c`` and linear above (Song & Dhariwal 2023).
    """
    _check_shapes(pred, target)
    if isinstance(c, torch.Tensor) and c.ndim == 1:
        c = c.to(pred.dtype).view(-1, *([1] * (pred.ndim - 1)))
    return weighted_reduce(torch.sqrt((pred - target).square() + c * c) - c, weight, reduction)


class _PixelLoss(nn.Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)


@register("l1", kind="pixel", input_range="any", optional_inputs=("weight",))
class L1Loss(_PixelLoss):
    """Mean absolute error, with an optional per-pixel weight or mask."""

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        return l1_loss(pred, target, weight, self.reduction)


@register("mse", kind="pixel", input_range="any", optional_inputs=("weight",))
class MSELoss(_PixelLoss):
    """Mean squared error, with an optional per-pixel weight or mask."""

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        return mse_loss(pred, target, weight, self.reduction)


@register("charbonnier", kind="pixel", input_range="any", fp32=True, optional_inputs=("weight",))
class CharbonnierLoss(_PixelLoss):
    """Charbonnier loss sqrt(d^2 + eps^2) (LapSRN, EDVR, NAFNet), computed in float32."""

    def __init__(self, eps: float = 1e-3, reduction: str = "mean") -> None:
        super().__init__(reduction)
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.eps = float(eps)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        return charbonnier_loss(pred, target, weight, self.eps, self.reduction)


HUBER_SCHEDULES = ("constant", "linear", "exponential", "cosine")


@register("pseudo_huber", kind="pixel", input_range="any", fp32=True, optional_inputs=("weight", "progress"))
class PseudoHuberLoss(_PixelLoss):
    """Pseudo-Huber loss with an optionally scheduled ``c`` (scheduled pseudo-Huber, Khrapov 2024).

    With ``schedule != "constant"``, ``c`` moves from ``c`` to ``c_end`` as ``progress`` goes from
    0 to 1. ``progress`` is a float (fraction of training) or a per-sample tensor ``(N,)`` (for
    diffusion: timestep / num_timesteps). Without ``progress`` the starting ``c`` is used.
    """

    def __init__(
        self,
        c: float = 0.03,
        c_end: float | None = None,
        schedule: str = "constant",
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        if schedule not in HUBER_SCHEDULES:
            raise ValueError(f"schedule must be one of {HUBER_SCHEDULES}, got {schedule!r}")
        if c <= 0 or (c_end is not None and c_end <= 0):
            raise ValueError("c and c_end must be positive")
        if schedule != "constant" and c_end is None:
            raise ValueError(f"schedule {schedule!r} needs c_end")
        self.c, self.c_end, self.schedule = float(c), c_end, schedule

    def c_at(self, progress: float | torch.Tensor) -> float | torch.Tensor:
        """The value of ``c`` at ``progress`` in [0, 1]."""
        if self.schedule == "constant" or self.c_end is None:
            return self.c
        p = (
            progress.clamp(0, 1)
            if isinstance(progress, torch.Tensor)
            else min(max(float(progress), 0.0), 1.0)
        )
        if self.schedule == "linear":
            return self.c + (self.c_end - self.c) * p
        if self.schedule == "exponential":
            log_ratio = math.log(self.c_end / self.c)
            return self.c * (
                torch.exp(log_ratio * p) if isinstance(p, torch.Tensor) else math.exp(log_ratio * p)
            )
        cos = torch.cos(math.pi * p) if isinstance(p, torch.Tensor) else math.cos(math.pi * p)
        return self.c_end + (self.c - self.c_end) * 0.5 * (1 + cos)

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        progress: float | torch.Tensor | None = None,
    ) -> torch.Tensor:
        c = self.c if progress is None else self.c_at(progress)
        if isinstance(c, torch.Tensor):
            c = c.to(pred.device, pred.dtype)
        return pseudo_huber_loss(pred, target, c, weight, self.reduction)
