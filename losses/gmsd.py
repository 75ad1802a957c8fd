"""Gradient-similarity perceptual losses: ``gmsd``, ``ms_gmsd`` and ``haarpsi`` (1 - HaarPSI).

The same computations as piq's ``gmsd``, ``multi_scale_gmsd`` and ``haarpsi`` (RGB -> Y of YIQ,
2x2 average downsampling, Prewitt or Haar filters, the papers' constants), with one change: every
square root has a zero gradient at 0 instead of ``inf * 0 = NaN``. piq's gradient is NaN at
identity (the deviation is ``sqrt(0)``) and wherever a 3x3 patch is flat (the gradient magnitude
is ``sqrt(0)``); values elsewhere are unchanged. Inputs ``(N, C, H, W)`` with C = 1 (grey) or 3
(RGB) in ``[0, data_range]``; the functions run in float32 with autocast off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .precision import float32
from .reduction import check_reduction, weighted_reduce
from .registry import register

GMSD_T = 170 / 255.0**2
MS_GMSD_SCALE_WEIGHTS = (0.096, 0.596, 0.289, 0.019)


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(x)`` for ``x >= 0`` whose gradient at 0 is 0 (torch's is ``inf``, giving NaN)."""
    positive = x > 0
    return torch.where(
        positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), torch.zeros_like(x)
    )


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    """RGB ``(N, 3, H, W)`` -> YIQ ``(N, 3, H, W)`` (the matrix piq uses)."""
    weights = torch.tensor(
        [[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]],
        dtype=x.dtype,
        device=x.device,
    ).t()
    return torch.matmul(x.permute(0, 2, 3, 1), weights).permute(0, 3, 1, 2)


def _check(pred: torch.Tensor, target: torch.Tensor, data_range: float) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim != 4 or pred.shape[1] not in (1, 3):
        raise ValueError(f"expected images (N, 1, H, W) or (N, 3, H, W), got shape {tuple(pred.shape)}")
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")


def _half_size(x: torch.Tensor) -> torch.Tensor:
    """2x2 average downsampling, padding odd sizes at the bottom/right with zeros (piq)."""
    pad = max(x.shape[2] % 2, x.shape[3] % 2)
    return F.avg_pool2d(F.pad(x, [0, pad, 0, pad]), kernel_size=2, stride=2)


def _gradient_magnitude(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    grads = F.conv2d(x, kernels, padding=kernels.size(-1) // 2)
    return _safe_sqrt(grads.square().sum(dim=1, keepdim=True))


def _similarity(a: torch.Tensor, b: torch.Tensor, constant: float, alpha: float = 0.0) -> torch.Tensor:
    return (2.0 * a * b - alpha * a * b + constant) / (a**2 + b**2 - alpha * a * b + constant)


def _gmsd_map_deviation(x: torch.Tensor, y: torch.Tensor, t: float, alpha: float = 0.0) -> torch.Tensor:
    """Standard deviation of the gradient magnitude similarity of grey images ``(N, 1, H, W)`` -> ``(N,)``."""
    prewitt = torch.tensor([[[-1.0, 0.0, 1.0]] * 3], dtype=x.dtype, device=x.device) / 3
    kernels = torch.stack([prewitt, prewitt.transpose(-1, -2)])
    gms = _similarity(_gradient_magnitude(x, kernels), _gradient_magnitude(y, kernels), t, alpha)
    deviation = (gms - gms.mean(dim=(1, 2, 3), keepdim=True)).square().mean(dim=(1, 2, 3))
    return _safe_sqrt(deviation)


@float32
def gmsd(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    reduction: str = "mean",
    t: float = GMSD_T,
) -> torch.Tensor:
    """Gradient Magnitude Similarity Deviation (Xue et al. 2014), 0 at identity.

    ``pred``, ``target``: ``(N, 1|3, H, W)`` in ``[0, data_range]``; RGB uses the Y of YIQ. The
    images are halved (2x2 average) before the Prewitt gradients. Returns ``()`` or ``(N,)``.
    """
    _check(pred, target, data_range)
    check_reduction(reduction)
    x, y = pred / float(data_range), target / float(data_range)
    if x.shape[1] == 3:
        x, y = rgb_to_yiq(x)[:, :1], rgb_to_yiq(y)[:, :1]
    score = _gmsd_map_deviation(_half_size(x), _half_size(y), t)
    return weighted_reduce(score, None, reduction)


@float32
def multi_scale_gmsd(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    reduction: str = "mean",
    scale_weights: torch.Tensor | list[float] | tuple[float, ...] | None = None,
    chromatic: bool = False,
    alpha: float = 0.5,
    beta1: float = 0.01,
    beta2: float = 0.32,
    beta3: float = 15.0,
    t: float = 170.0,
) -> torch.Tensor:
    """Multi-scale GMSD (Zhang et al. 2017); ``chromatic=True`` is MS-GMSDc (RGB only).

    ``scale_weights`` (normalised to sum 1; default the paper's 0.096, 0.596, 0.289, 0.019) sets
    the number of scales: H and W must be at least ``2**scales + 1``. Images on a [0, 255] scale
    internally, as in the paper and piq. Returns ``()`` or ``(N,)``.
    """
    _check(pred, target, data_range)
    check_reduction(reduction)
    x, y = pred / float(data_range) * 255, target / float(data_range) * 255
    if scale_weights is None:
        weights = torch.tensor(MS_GMSD_SCALE_WEIGHTS, dtype=x.dtype, device=x.device)
    else:
        weights = torch.as_tensor(scale_weights, device=x.device).to(x.dtype).flatten()
        weights = weights / weights.sum()
    num_scales = weights.numel()
    min_size = 2**num_scales + 1
    if x.shape[-1] < min_size or x.shape[-2] < min_size:
        raise ValueError(
            f"images must be at least {min_size}x{min_size} for {num_scales} scales, "
            f"got {tuple(x.shape[-2:])}"
        )
    if chromatic and x.shape[1] != 3:
        raise ValueError("chromatic=True needs RGB images (N, 3, H, W)")
    if x.shape[1] == 3:
        x, y = rgb_to_yiq(x), rgb_to_yiq(y)
    scores = []
    for scale in range(num_scales):
        if scale > 0:
            x, y = _half_size(x), _half_size(y)
        scores.append(_gmsd_map_deviation(x[:, :1], y[:, :1], t, alpha))
    score = _safe_sqrt((weights.view(1, -1) * torch.stack(scores, dim=1) ** 2).sum(dim=1))
    if chromatic:
        rmse_iq = _safe_sqrt((x[:, 1:] - y[:, 1:]).square().mean(dim=(2, 3)))
        rmse_chrome = _safe_sqrt(rmse_iq.square().sum(dim=1))
        gamma = 2 / (1 + beta2 * torch.exp(-beta3 * score)) - 1
        score = gamma * score + (1 - gamma) * beta1 * rmse_chrome
    return weighted_reduce(score, None, reduction)


def _haar_kernels(size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    kernel = torch.ones((size, size), dtype=dtype, device=device) / size
    kernel[size // 2 :, :] = -kernel[size // 2 :, :]
    kernel = kernel.unsqueeze(0)
    return torch.stack([kernel, kernel.transpose(-1, -2)])


@float32
def haarpsi(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    reduction: str = "mean",
    scales: int = 3,
    subsample: bool = True,
    c: float = 30.0,
    alpha: float = 4.2,
) -> torch.Tensor:
    """Haar wavelet-based perceptual similarity (Reisenhofer et al. 2018), 1 at identity.

    ``pred``, ``target``: ``(N, 1|3, H, W)`` in ``[0, data_range]``, at least ``2**(scales+1)``
    pixels a side. Returns ``()`` or ``(N,)``; higher is better (the loss is ``1 - haarpsi``).
    """
    _check(pred, target, data_range)
    check_reduction(reduction)
    if scales != 3:
        raise ValueError(f"HaarPSI uses 3 scales (its weights come from the third), got {scales}")
    kernel_size = 2 ** (scales + 1)
    if pred.shape[-1] < kernel_size or pred.shape[-2] < kernel_size:
        raise ValueError(f"images must be at least {kernel_size}x{kernel_size} for {scales} scales")
    x, y = pred / float(data_range) * 255, target / float(data_range) * 255
    colour = x.shape[1] == 3
    if colour:
        x, y = rgb_to_yiq(x), rgb_to_yiq(y)
    if subsample:
        x, y = _half_size(x), _half_size(y)

    coeffs_x, coeffs_y = [], []
    for scale in range(scales):
        size = 2 ** (scale + 1)
        kernels = _haar_kernels(size, x.dtype, x.device)
        pad = [size // 2 - 1, size // 2, size // 2 - 1, size // 2]  # MATLAB conv2(..., 'same')
        coeffs_x.append(F.conv2d(F.pad(x[:, :1], pad), kernels))
        coeffs_y.append(F.conv2d(F.pad(y[:, :1], pad), kernels))
    cx, cy = torch.cat(coeffs_x, dim=1), torch.cat(coeffs_y, dim=1)

    weights = torch.max(cx[:, 4:].abs(), cy[:, 4:].abs())
    sim = []
    for orientation in range(2):
        mx, my = cx[:, (orientation, orientation + 2)].abs(), cy[:, (orientation, orientation + 2)].abs()
        sim.append(_similarity(mx, my, c).sum(dim=1, keepdim=True) / 2)
    if colour:
        x_iq = F.avg_pool2d(F.pad(x, [0, 1, 0, 1])[:, 1:], kernel_size=2, stride=1).abs()
        y_iq = F.avg_pool2d(F.pad(y, [0, 1, 0, 1])[:, 1:], kernel_size=2, stride=1).abs()
        weights = torch.cat([weights, weights.mean(dim=1, keepdim=True)], dim=1)
        sim.append(_similarity(x_iq, y_iq, c).sum(dim=1, keepdim=True) / 2)
    sim_map = torch.cat(sim, dim=1)

    eps = torch.finfo(sim_map.dtype).eps
    score = (((sim_map * alpha).sigmoid() * weights).sum(dim=(1, 2, 3)) + eps) / (
        weights.sum(dim=(1, 2, 3)) + eps
    )
    score = (torch.log(score / (1 - score)) / alpha) ** 2
    return weighted_reduce(score, None, reduction)


@register("gmsd", kind="perceptual", modality="image", input_range="[0,1]", fp32=True)
class GMSDLoss(nn.Module):
    """Gradient Magnitude Similarity Deviation (Xue et al. 2014), as piq.GMSDLoss, NaN-free gradients."""

    def __init__(self, data_range: float = 1.0, t: float = GMSD_T, reduction: str = "mean") -> None:
        super().__init__()
        if not data_range > 0:
            raise ValueError(f"data_range must be positive, got {data_range}")
        if not t > 0:
            raise ValueError(f"t must be positive, got {t}")
        self.data_range, self.t = float(data_range), float(t)
        self.reduction = check_reduction(reduction)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return gmsd(pred, target, self.data_range, self.reduction, self.t)


@register("ms_gmsd", kind="perceptual", modality="image", input_range="[0,1]", fp32=True)
class MultiScaleGMSDLoss(nn.Module):
    """Multi-scale GMSD (Zhang et al. 2017), chromatic MS-GMSDc optional, as piq.MultiScaleGMSDLoss.

    Needs images of at least ``2**scales + 1`` pixels a side (17 with the 4 default scales).
    """

    def __init__(
        self,
        data_range: float = 1.0,
        scale_weights: list[float] | tuple[float, ...] | None = None,
        chromatic: bool = False,
        alpha: float = 0.5,
        beta1: float = 0.01,
        beta2: float = 0.32,
        beta3: float = 15.0,
        t: float = 170.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if not data_range > 0:
            raise ValueError(f"data_range must be positive, got {data_range}")
        weights = torch.tensor(
            MS_GMSD_SCALE_WEIGHTS if scale_weights is None else scale_weights, dtype=torch.float32
        )
        if weights.ndim != 1 or weights.numel() == 0 or bool((weights < 0).any()) or not weights.sum() > 0:
            raise ValueError(
                f"scale_weights must be a non-empty list of non-negative numbers, got {scale_weights!r}"
            )
        if not t > 0:
            raise ValueError(f"t must be positive, got {t}")
        self.register_buffer("scale_weights", weights, persistent=False)
        self.data_range, self.chromatic = float(data_range), bool(chromatic)
        self.alpha, self.beta1, self.beta2, self.beta3, self.t = alpha, beta1, beta2, beta3, float(t)
        self.reduction = check_reduction(reduction)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return multi_scale_gmsd(
            pred,
            target,
            self.data_range,
            self.reduction,
            self.scale_weights,
            self.chromatic,
            self.alpha,
            self.beta1,
            self.beta2,
            self.beta3,
            self.t,
        )


@register("haarpsi", kind="perceptual", modality="image", input_range="[0,1]", fp32=True)
class HaarPSILoss(nn.Module):
    """1 - HaarPSI, the Haar wavelet-based perceptual similarity (Reisenhofer et al. 2018), as piq."""

    def __init__(
        self,
        data_range: float = 1.0,
        scales: int = 3,
        subsample: bool = True,
        c: float = 30.0,
        alpha: float = 4.2,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if not data_range > 0:
            raise ValueError(f"data_range must be positive, got {data_range}")
        if scales != 3:
            raise ValueError(f"HaarPSI uses 3 scales (its weights come from the third), got {scales}")
        if not c > 0 or not alpha > 0:
            raise ValueError(f"c and alpha must be positive, got c={c}, alpha={alpha}")
        self.data_range, self.scales, self.subsample = float(data_range), scales, bool(subsample)
        self.c, self.alpha = float(c), float(alpha)
        self.reduction = check_reduction(reduction)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        similarity = haarpsi(
            pred, target, self.data_range, "none", self.scales, self.subsample, self.c, self.alpha
        )
        return weighted_reduce(1 - similarity, None, self.reduction)
