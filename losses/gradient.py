"""Edge losses: ``gradient`` (L1 between image gradients) and ``edge`` (MPRNet's Laplacian loss).

Images ``(N, C, H, W)`` in [0, 1]. Gradients come from kornia's ``spatial_gradient``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .pixel import charbonnier_loss
from .reduction import check_reduction, weighted_reduce
from .registry import register

GRADIENT_OPERATORS = ("sobel", "diff")


def gradient_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    operator: str = "sobel",
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """L1 distance between the x/y gradients of ``pred`` and ``target`` ``(N, C, H, W)``."""
    if operator not in GRADIENT_OPERATORS:
        raise ValueError(f"operator must be one of {GRADIENT_OPERATORS}, got {operator!r}")
    import kornia

    grads = kornia.filters.spatial_gradient(torch.cat([pred, target]), mode=operator, normalized=True)
    g_pred, g_target = grads.chunk(2)  # each (N, C, 2, H, W)
    if weight is not None:
        weight = weight.unsqueeze(2)
    return weighted_reduce((g_pred - g_target).abs(), weight, reduction)


def _laplacian_5x5(x: torch.Tensor) -> torch.Tensor:
    """MPRNet's Laplacian: ``x`` minus its gaussian-pyramid reconstruction, ``(N, C, H, W)``."""
    k1 = torch.tensor([0.05, 0.25, 0.4, 0.25, 0.05], device=x.device, dtype=x.dtype)
    c = x.shape[1]
    kernel = torch.outer(k1, k1).expand(c, 1, 5, 5)

    def gauss(img: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(img, (2, 2, 2, 2), mode="replicate"), kernel, groups=c)

    filtered = gauss(x)
    upsampled = torch.zeros_like(filtered)
    upsampled[:, :, ::2, ::2] = filtered[:, :, ::2, ::2] * 4
    return x - gauss(upsampled)


def edge_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier distance between Laplacian edge maps (MPRNet, Zamir et al. 2021)."""
    return charbonnier_loss(_laplacian_5x5(pred), _laplacian_5x5(target), eps=eps)


@register("gradient", kind="structural", modality="image", input_range="[0,1]", optional_inputs=("weight",))
class GradientLoss(nn.Module):
    """L1 between Sobel (or finite-difference) image gradients."""

    def __init__(self, operator: str = "sobel", reduction: str = "mean") -> None:
        super().__init__()
        if operator not in GRADIENT_OPERATORS:
            raise ValueError(f"operator must be one of {GRADIENT_OPERATORS}, got {operator!r}")
        self.operator, self.reduction = operator, check_reduction(reduction)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        return gradient_loss(pred, target, self.operator, weight, self.reduction)


@register("edge", kind="structural", modality="image", input_range="[0,1]", fp32=True)
class EdgeLoss(nn.Module):
    """Charbonnier loss between Laplacian edge maps (MPRNet's edge loss)."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return edge_loss(pred, target, self.eps)
