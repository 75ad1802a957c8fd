"""Waveform losses and ratios: SI-SDR, SNR and L1-SNR, for ``(N, C, T)`` / ``(N, T)`` audio in [-1, 1].

:func:`si_sdr` and :func:`snr` return per-signal values in dB (higher is better, as torchmetrics);
the registered entries are their negatives, so that lower is better. Everything runs in float32
(float64 inputs stay float64) with autocast off: sums of squares overflow in float16.
"""

from __future__ import annotations

import torch
from torch import nn

from .precision import float32
from .reduction import check_reduction, weighted_reduce
from .registry import register


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim not in (2, 3):
        raise ValueError(f"expected audio of shape (N, C, T) or (N, T), got {tuple(pred.shape)}")


@float32
def si_sdr(
    pred: torch.Tensor, target: torch.Tensor, zero_mean: bool = False, eps: float = 1e-8
) -> torch.Tensor:
    """Scale-invariant signal-to-distortion ratio in dB, per signal (Le Roux et al. 2019).

    Same formula as ``torchmetrics.functional.audio.scale_invariant_signal_distortion_ratio``
    (with ``eps`` in place of the dtype's machine epsilon): ``alpha = (<p, t> + eps) / (||t||^2 + eps)``,
    ``10 log10((||alpha t||^2 + eps) / (||alpha t - p||^2 + eps))``.

    Args:
        pred, target: ``(N, C, T)`` or ``(N, T)``.
        zero_mean: subtract each signal's mean first.

    Returns:
        ``(N, C)`` (or ``(N,)``) values in dB.
    """
    _check(pred, target)
    if zero_mean:
        target = target - target.mean(dim=-1, keepdim=True)
        pred = pred - pred.mean(dim=-1, keepdim=True)
    dot = (pred * target).sum(dim=-1, keepdim=True)
    alpha = (dot + eps) / (target.square().sum(dim=-1, keepdim=True) + eps)
    target_scaled = alpha * target
    noise = target_scaled - pred
    ratio = (target_scaled.square().sum(dim=-1) + eps) / (noise.square().sum(dim=-1) + eps)
    return 10 * torch.log10(ratio)


@float32
def snr(pred: torch.Tensor, target: torch.Tensor, zero_mean: bool = False, eps: float = 1e-8) -> torch.Tensor:
    """Signal-to-noise ratio in dB per signal, ``10 log10((||t||^2 + eps) / (||t - p||^2 + eps))``.

    As ``torchmetrics.functional.audio.signal_noise_ratio``; returns ``(N, C)`` (or ``(N,)``).
    """
    _check(pred, target)
    if zero_mean:
        target = target - target.mean(dim=-1, keepdim=True)
        pred = pred - pred.mean(dim=-1, keepdim=True)
    ratio = (target.square().sum(dim=-1) + eps) / ((target - pred).square().sum(dim=-1) + eps)
    return 10 * torch.log10(ratio)


@float32
def l1_snr_loss(
    pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3, reduction: str = "mean"
) -> torch.Tensor:
    """L1-SNR loss, ``-10 log10((||t||_1 + eps) / (||p - t||_1 + eps))`` per example.

    The L1 norms run over each example's channels and samples together (Watcharasupat et al.,
    bandit / Banquet separation models); ``reduction`` then averages (or sums) over the batch.
    Returns a scalar, or ``(N,)`` with ``reduction="none"``.
    """
    _check(pred, target)
    check_reduction(reduction)
    n = pred.shape[0]
    err = (pred - target).reshape(n, -1).abs().sum(dim=-1)
    ref = target.reshape(n, -1).abs().sum(dim=-1)
    return weighted_reduce(-10 * torch.log10((ref + eps) / (err + eps)), None, reduction)


class _RatioLoss(nn.Module):
    def __init__(self, eps: float, reduction: str) -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.eps = float(eps)
        self.reduction = check_reduction(reduction)


@register("si_sdr", kind="waveform", modality="audio", input_range="[-1,1]", fp32=True)
class SISDRLoss(_RatioLoss):
    """Negative scale-invariant SDR in dB, averaged over batch and channels.

    ``reduction="none"`` gives ``(N, C)`` (``(N,)`` for ``(N, T)`` input). Very negative at
    ``pred == target`` (about ``-10 log10(||t||^2 / eps)``), not zero.
    """

    def __init__(self, zero_mean: bool = False, eps: float = 1e-8, reduction: str = "mean") -> None:
        super().__init__(eps, reduction)
        self.zero_mean = bool(zero_mean)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return weighted_reduce(-si_sdr(pred, target, self.zero_mean, self.eps), None, self.reduction)


@register("snr", kind="waveform", modality="audio", input_range="[-1,1]", fp32=True)
class SNRLoss(_RatioLoss):
    """Negative signal-to-noise ratio in dB, averaged over batch and channels.

    ``reduction="none"`` gives ``(N, C)``. Very negative at ``pred == target``, not zero.
    """

    def __init__(self, zero_mean: bool = False, eps: float = 1e-8, reduction: str = "mean") -> None:
        super().__init__(eps, reduction)
        self.zero_mean = bool(zero_mean)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return weighted_reduce(-snr(pred, target, self.zero_mean, self.eps), None, self.reduction)


@register("l1_snr", kind="waveform", modality="audio", input_range="[-1,1]", fp32=True)
class L1SNRLoss(_RatioLoss):
    """L1-SNR loss -10 log10(||t||_1 / ||p - t||_1) per example, as in band-split separation models.

    Norms over each example's channels and samples; ``reduction="none"`` gives ``(N,)``.
    Very negative at ``pred == target`` (the ``eps`` in both terms keeps it finite).
    """

    def __init__(self, eps: float = 1e-3, reduction: str = "mean") -> None:
        super().__init__(eps, reduction)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return l1_snr_loss(pred, target, self.eps, self.reduction)
