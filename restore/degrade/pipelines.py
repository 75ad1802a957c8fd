"""Task degradations behind one interface: ``forward(clean (N, C, H, W), generator=None) -> degraded``.

``build_degradation(name, **kwargs)`` makes one by name ("bicubic", "realesrgan", "blur", "noise",
"jpeg"). Every module has an int ``scale`` (output = input size // scale; 1 for same-size tasks), keeps
its output in [0, 1], and draws every random choice from ``generator`` (per sample), so a seed
reproduces a batch.

The audio entries ("audio_denoise", "audio_bandwidth"; :mod:`restore.degrade.audio`) take audio
``(N, C, T)`` in [-1, 1] and ``forward(clean, noise=None, sample_rate=16000, generator=None)``; they
also have ``scale = 1`` and accept ``generator=`` by keyword like the image entries.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch
from torch import nn

from restore.degrade.audio import AudioBandwidthDegradation, AudioDenoiseDegradation
from restore.degrade.blur import apply_kernels, gaussian_kernels, motion_kernels
from restore.degrade.jpeg import JPEG
from restore.degrade.noise import random_gaussian_noise
from restore.degrade.realesrgan import RealESRGANConfig, RealESRGANDegradation
from restore.degrade.resize import BOUNDARIES, imresize
from restore.degrade.sampling import rand_bernoulli, rand_uniform

__all__ = [
    "DEGRADATIONS",
    "BicubicDegradation",
    "BlurDegradation",
    "JPEGDegradation",
    "NoiseDegradation",
    "available_degradations",
    "build_degradation",
]


class BicubicDegradation(nn.Module):
    """Classic SR pairs: MATLAB bicubic downscaling by ``scale`` (8-bit levels as the benchmark files)."""

    def __init__(self, scale: int = 4, quantize: bool = True, boundary: str = "replicate") -> None:
        super().__init__()
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be a positive int, got {scale!r}")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        self.scale, self.quantize, self.boundary = scale, quantize, boundary

    def forward(self, clean: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H // scale, W // scale); crops H, W to multiples of scale first."""
        h, w = clean.shape[-2:]
        h, w = h - h % self.scale, w - w % self.scale
        if h == 0 or w == 0:
            raise ValueError(f"clean must be at least scale={self.scale} pixels a side, got {clean.shape}")
        lr = imresize(clean[..., :h, :w], 1 / self.scale, boundary=self.boundary, quantize=self.quantize)
        return lr.clamp(0, 1)


class BlurDegradation(nn.Module):
    """Deblurring pairs: a random Gaussian or linear motion kernel per sample, then light Gaussian noise."""

    def __init__(
        self,
        kernel_size: int = 21,
        motion_prob: float = 0.5,
        sigma_range: Sequence[float] = (0.5, 3.0),
        length_range: Sequence[float] = (5.0, 21.0),
        noise_range: Sequence[float] = (0.0, 3.0),
    ) -> None:
        """
        Args:
            kernel_size: odd side of the kernels.
            motion_prob: probability of a motion kernel (else an anisotropic Gaussian).
            sigma_range: Gaussian standard deviations along both rotated axes, pixels.
            length_range: motion streak lengths in pixels (at most ``kernel_size``); angle U(0, 180).
            noise_range: Gaussian noise sigma on the 0-255 scale.
        """
        super().__init__()
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd positive int, got {kernel_size!r}")
        if not 0.0 <= motion_prob <= 1.0:
            raise ValueError(f"motion_prob must be in [0, 1], got {motion_prob!r}")
        if not 0 < sigma_range[0] <= sigma_range[1]:
            raise ValueError(f"sigma_range must be (low, high) with 0 < low <= high, got {sigma_range!r}")
        if not 1 <= length_range[0] <= length_range[1] <= kernel_size:
            raise ValueError(f"length_range must be (low, high) in [1, kernel_size], got {length_range!r}")
        if not 0 <= noise_range[0] <= noise_range[1]:
            raise ValueError(f"noise_range must be (low, high) with 0 <= low <= high, got {noise_range!r}")
        self.scale = 1
        self.kernel_size, self.motion_prob = kernel_size, motion_prob
        self.sigma_range, self.length_range = tuple(sigma_range), tuple(length_range)
        self.noise_range = tuple(noise_range)

    def kernels(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """(n, k, k) kernels drawn on the generator's device, returned on ``device``."""
        draw = generator.device if generator is not None else torch.device(device or "cpu")
        motion = rand_bernoulli(n, self.motion_prob, generator, draw)
        sigma_x = rand_uniform(n, *self.sigma_range, generator, draw)
        sigma_y = rand_uniform(n, *self.sigma_range, generator, draw)
        theta = rand_uniform(n, -torch.pi, torch.pi, generator, draw)
        length = rand_uniform(n, *self.length_range, generator, draw)
        angle = rand_uniform(n, 0.0, 180.0, generator, draw)
        target = torch.device(device) if device is not None else draw
        k = self.kernel_size
        gauss = gaussian_kernels(sigma_x.to(target), sigma_y.to(target), theta.to(target), size=k)
        lines = motion_kernels(length.to(target), angle.to(target), size=k)
        return torch.where(motion.to(target).view(n, 1, 1), lines, gauss)

    def forward(self, clean: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, C, H, W) -> blurred, noisy (N, C, H, W) in [0, 1]."""
        blurred = apply_kernels(clean, self.kernels(clean.shape[0], generator, clean.device))
        return random_gaussian_noise(blurred, self.noise_range, 0.0, True, generator)


class NoiseDegradation(nn.Module):
    """Denoising pairs: additive Gaussian noise, sigma per sample from a range (0-255 scale)."""

    def __init__(self, sigma_range: Sequence[float] = (5.0, 50.0), gray_prob: float = 0.0) -> None:
        super().__init__()
        if len(sigma_range) != 2 or not 0 <= sigma_range[0] <= sigma_range[1]:
            raise ValueError(f"sigma_range must be (low, high) with 0 <= low <= high, got {sigma_range!r}")
        if not 0.0 <= gray_prob <= 1.0:
            raise ValueError(f"gray_prob must be in [0, 1], got {gray_prob!r}")
        self.scale = 1
        self.sigma_range, self.gray_prob = tuple(sigma_range), gray_prob

    def forward(self, clean: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, C, H, W) -> noisy (N, C, H, W), clamped to [0, 1]."""
        return random_gaussian_noise(clean, self.sigma_range, self.gray_prob, True, generator)


class JPEGDegradation(JPEG):
    """JPEG artefact removal pairs: quality per sample from a range."""

    def __init__(self, quality_range: Sequence[float] = (30.0, 95.0)) -> None:
        super().__init__(quality_range)
        self.scale = 1


def _realesrgan(scale: int = 4, config: RealESRGANConfig | dict | None = None) -> RealESRGANDegradation:
    return RealESRGANDegradation(scale, config)


DEGRADATIONS: dict[str, Callable[..., nn.Module]] = {
    "bicubic": BicubicDegradation,
    "realesrgan": _realesrgan,
    "blur": BlurDegradation,
    "noise": NoiseDegradation,
    "jpeg": JPEGDegradation,
    "audio_denoise": AudioDenoiseDegradation,
    "audio_bandwidth": AudioBandwidthDegradation,
}


def available_degradations() -> list[str]:
    """Names accepted by :func:`build_degradation`."""
    return sorted(DEGRADATIONS)


def build_degradation(name: str, **kwargs) -> nn.Module:
    """Make a degradation module by name; unknown names and arguments get a "did you mean".

    >>> build_degradation("bicubic", scale=2).scale
    2
    """
    from losses.registry import did_you_mean

    if name not in DEGRADATIONS:
        raise KeyError(
            f"unknown degradation {name!r}.{did_you_mean(name, list(DEGRADATIONS))} "
            f"Available: {', '.join(available_degradations())}."
        )
    factory = DEGRADATIONS[name]
    params = [p for p in inspect.signature(factory).parameters if p != "self"]
    for key in kwargs:
        if key not in params:
            raise TypeError(
                f"degradation {name!r} has no argument {key!r}.{did_you_mean(key, params)} "
                f"Arguments: {', '.join(params)}."
            )
    return factory(**kwargs)
