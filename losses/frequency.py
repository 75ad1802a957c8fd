"""Frequency-domain losses: ``fft`` (amplitude and phase) and ``focal_frequency``.

Images ``(N, C, H, W)``. FFTs run in float32 (CUDA half FFTs need power-of-two sizes and bf16
FFTs are unsupported), so both entries are ``fp32``.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register


def fft_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    amplitude_weight: float = 1.0,
    phase_weight: float = 1.0,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Amplitude L1 plus phase distance between the 2-D spectra (``rfft2``, orthonormal).

    The phase term is ``mean(1 - cos(delta phase))`` computed from the cross-spectrum with ``eps``
    so that it is smooth everywhere (no ``atan2(0, 0)``), exactly 0 at identity, and weights
    phase errors of vanishing coefficients down.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    fp = torch.fft.rfft2(pred, norm="ortho")
    ft = torch.fft.rfft2(target, norm="ortho")
    power_p = fp.real.square() + fp.imag.square() + eps
    power_t = ft.real.square() + ft.imag.square() + eps
    loss = pred.new_zeros(())
    if amplitude_weight:
        loss = loss + amplitude_weight * (power_p.sqrt() - power_t.sqrt()).abs().mean()
    if phase_weight:
        cross = fp.real * ft.real + fp.imag * ft.imag + eps  # Re(fp * conj(ft)) + eps
        loss = loss + phase_weight * (1 - cross / torch.sqrt(power_p * power_t)).mean()
    return loss


def _patch_spectrum(x: torch.Tensor, patch_factor: int) -> torch.Tensor:
    """``(N, C, H, W)`` -> spectrum of each patch as real/imag pairs ``(N, P, C, h, w, 2)``."""
    n, c, h, w = x.shape
    if h % patch_factor or w % patch_factor:
        raise ValueError(f"image size {h}x{w} is not divisible by patch_factor={patch_factor}")
    ph, pw = h // patch_factor, w // patch_factor
    patches = x.view(n, c, patch_factor, ph, patch_factor, pw).permute(0, 2, 4, 1, 3, 5)
    freq = torch.fft.fft2(patches.reshape(n, patch_factor * patch_factor, c, ph, pw), norm="ortho")
    return torch.stack([freq.real, freq.imag], -1)


def focal_frequency_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 1.0,
    patch_factor: int = 1,
    ave_spectrum: bool = False,
    log_matrix: bool = False,
    batch_matrix: bool = False,
) -> torch.Tensor:
    """Focal frequency loss (Jiang et al. 2021), as the authors' ``FocalFrequencyLoss``.

    Frequencies are weighted by their (normalised, detached) current error to the power
    ``alpha``, so hard frequencies get more weight.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    fp, ft = _patch_spectrum(pred, patch_factor), _patch_spectrum(target, patch_factor)
    if ave_spectrum:
        fp, ft = fp.mean(0, keepdim=True), ft.mean(0, keepdim=True)
    distance = (fp - ft).square().sum(-1)  # |F_pred - F_target|^2, (N, P, C, h, w)
    with torch.no_grad():
        matrix = distance.sqrt() ** alpha
        if log_matrix:
            matrix = torch.log(matrix + 1.0)
        if batch_matrix:
            matrix = matrix / matrix.max()
        else:
            matrix = matrix / matrix.amax(dim=(-2, -1), keepdim=True)
        matrix = torch.nan_to_num(matrix, nan=0.0).clamp(0.0, 1.0)
    return (matrix * distance).mean()


@register("fft", kind="frequency", modality="image", input_range="[0,1]", fp32=True)
class FFTLoss(nn.Module):
    """Amplitude (L1) and phase (1 - cos) distance between 2-D Fourier spectra."""

    def __init__(self, amplitude_weight: float = 1.0, phase_weight: float = 1.0, eps: float = 1e-8) -> None:
        super().__init__()
        if amplitude_weight < 0 or phase_weight < 0 or amplitude_weight + phase_weight == 0:
            raise ValueError("amplitude_weight and phase_weight must be >= 0 and not both 0")
        self.amplitude_weight, self.phase_weight, self.eps = amplitude_weight, phase_weight, eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return fft_loss(pred, target, self.amplitude_weight, self.phase_weight, self.eps)


@register("focal_frequency", kind="frequency", modality="image", input_range="[0,1]", fp32=True)
class FocalFrequencyLoss(nn.Module):
    """Focal frequency loss: spectrum distance weighted towards the hardest frequencies."""

    def __init__(
        self,
        alpha: float = 1.0,
        patch_factor: int = 1,
        ave_spectrum: bool = False,
        log_matrix: bool = False,
        batch_matrix: bool = False,
    ) -> None:
        super().__init__()
        if alpha <= 0 or patch_factor < 1:
            raise ValueError("alpha must be positive and patch_factor >= 1")
        self.kwargs = dict(
            alpha=alpha,
            patch_factor=patch_factor,
            ave_spectrum=ave_spectrum,
            log_matrix=log_matrix,
            batch_matrix=batch_matrix,
        )

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_frequency_loss(pred, target, **self.kwargs)
