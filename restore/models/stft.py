"""STFT and inverse STFT for audio models, always in float32 with autocast off.

    stft = STFT(n_fft=512, hop=128)
    spec = stft(x)                     # (N, 1, T) -> complex64 (N, F, frames), F = n_fft // 2 + 1
    y = stft.inverse(spec, length=T)   # -> (N, 1, T) float32

Mixed precision: FFTs in half precision lose too much (and cuFFT's fp16 path needs power-of-two
sizes), so both directions disable autocast and cast their input to float32 (DESIGN "Mixed precision").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["STFT", "istft", "stft"]


def _window(window: Tensor | None, win_length: int, device: torch.device) -> Tensor:
    if window is None:
        return torch.hann_window(win_length, device=device)
    return window.to(device=device, dtype=torch.float32)


def stft(
    x: Tensor, n_fft: int, hop: int, win_length: int | None = None, window: Tensor | None = None
) -> Tensor:
    """Complex spectrogram of ``x`` ``(N, 1, T)`` or ``(N, T)`` -> ``(N, F, frames)`` complex64.

    Centred frames with reflect padding (``torch.stft(center=True)``); a signal shorter than
    ``n_fft // 2 + 1`` samples is zero-padded instead, since reflection needs that many.
    """
    if x.dim() == 3:
        if x.shape[1] != 1:
            raise ValueError(f"stft expects mono audio (N, 1, T), got {tuple(x.shape)}")
        x = x[:, 0]
    if x.dim() != 2:
        raise ValueError(f"stft expects (N, 1, T) or (N, T) audio, got {tuple(x.shape)}")
    win_length = win_length or n_fft
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float()
        pad_mode = "reflect" if x.shape[-1] > n_fft // 2 else "constant"
        return torch.stft(
            x,
            n_fft,
            hop_length=hop,
            win_length=win_length,
            window=_window(window, win_length, x.device),
            center=True,
            pad_mode=pad_mode,
            return_complex=True,
        )


def istft(
    spec: Tensor,
    n_fft: int,
    hop: int,
    length: int,
    win_length: int | None = None,
    window: Tensor | None = None,
) -> Tensor:
    """Inverse of :func:`stft`: ``(N, F, frames)`` complex -> ``(N, 1, length)`` float32."""
    win_length = win_length or n_fft
    with torch.autocast(device_type=spec.device.type, enabled=False):
        if not spec.is_complex():
            raise ValueError(f"istft expects a complex spectrogram, got dtype {spec.dtype}")
        y = torch.istft(
            spec.to(torch.complex64),
            n_fft,
            hop_length=hop,
            win_length=win_length,
            window=_window(window, win_length, spec.device),
            center=True,
            length=length,
        )
    return y[:, None]


class STFT(nn.Module):
    """STFT / inverse STFT pair with a Hann window kept as a non-persistent buffer."""

    def __init__(self, n_fft: int = 512, hop: int = 128, win_length: int | None = None) -> None:
        super().__init__()
        if n_fft < 2 or hop < 1:
            raise ValueError(f"n_fft must be >= 2 and hop >= 1, got n_fft={n_fft}, hop={hop}")
        self.n_fft, self.hop = n_fft, hop
        self.win_length = win_length or n_fft
        if self.win_length > n_fft:
            raise ValueError(f"win_length ({self.win_length}) must be <= n_fft ({n_fft})")
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)

    @property
    def bins(self) -> int:
        """Frequency bins F = n_fft // 2 + 1."""
        return self.n_fft // 2 + 1

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 1, T)`` -> complex ``(N, F, frames)``."""
        return stft(x, self.n_fft, self.hop, self.win_length, self.window)

    def inverse(self, spec: Tensor, length: int) -> Tensor:
        """Complex ``(N, F, frames)`` -> ``(N, 1, length)`` float32."""
        return istft(spec, self.n_fft, self.hop, length, self.win_length, self.window)

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop={self.hop}, win_length={self.win_length}"
