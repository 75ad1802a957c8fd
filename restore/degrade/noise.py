"""Additive noise with per-sample parameters: Gaussian and Poisson (shot) noise as in Real-ESRGAN.

Every random draw comes from the optional ``generator`` on its device (the global RNG of the images'
device when it is None), so a seed reproduces a batch exactly. Noise levels ``sigma`` are on the
0-255 scale, as in the denoising literature and Real-ESRGAN's configs (``sigma=25`` adds noise of
standard deviation 25/255 to [0, 1] images).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from restore.degrade.sampling import (
    check_images,
    check_range,
    draw_device,
    per_sample,
    rand_bernoulli,
    rand_uniform,
)

__all__ = [
    "GaussianNoise",
    "PoissonNoise",
    "add_gaussian_noise",
    "add_poisson_noise",
    "random_gaussian_noise",
    "random_poisson_noise",
]

# ITU-R BT.601 luma, as torchvision's rgb_to_grayscale (used by Real-ESRGAN's gray Poisson noise)
_LUMA = (0.299, 0.587, 0.114)


def add_gaussian_noise(
    images: torch.Tensor,
    sigma: float | torch.Tensor,
    gray: bool | torch.Tensor = False,
    clip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Add zero-mean Gaussian noise of standard deviation ``sigma / 255``.

    Args:
        images: (N, C, H, W) in [0, 1].
        sigma: noise level on the 0-255 scale, a number or per sample (N,).
        gray: the same noise in every channel (luminance noise), a bool or per sample (N,) bool.
        clip: clamp the result to [0, 1].
        generator: draws the noise on its device.

    Returns:
        (N, C, H, W) noisy images.
    """
    check_images(images)
    n = images.shape[0]
    sigma = per_sample(sigma, n, images.device, "sigma")
    gray = per_sample(gray, n, images.device, "gray").bool()
    noise = torch.randn(images.shape, generator=generator, device=draw_device(generator, images.device))
    noise = noise.to(images.device, images.dtype)
    noise = torch.where(gray.view(n, 1, 1, 1), noise[:, :1].expand_as(noise), noise)
    out = images + noise * (sigma / 255.0).to(images.dtype).view(n, 1, 1, 1)
    return out.clamp(0, 1) if clip else out


def _levels_count(quantized: torch.Tensor) -> torch.Tensor:
    """Number of distinct 8-bit levels per sample of an (N, ...) tensor of integers in [0, 255]."""
    n = quantized.shape[0]
    offsets = torch.arange(n, device=quantized.device).view(n, *([1] * (quantized.ndim - 1))) * 256
    counts = torch.bincount((quantized + offsets).flatten(), minlength=n * 256).view(n, 256)
    return (counts > 0).sum(dim=1)


def _poisson_residual(images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Real-ESRGAN's Poisson residual: quantise to 8 bits, ``vals = 2**ceil(log2(#levels))``,
    ``poisson(img * vals) / vals - img``, per sample."""
    levels = torch.clamp((images * 255.0).round(), 0, 255)
    quantized = levels / 255.0
    count = _levels_count(levels.long()).clamp(min=1)
    vals = torch.exp2(torch.ceil(torch.log2(count.double()))).to(images.dtype)
    vals = vals.view(-1, *([1] * (images.ndim - 1)))
    rate = (quantized * vals).float()
    device = draw_device(generator, images.device)
    sample = torch.poisson(rate.to(device), generator=generator).to(images.device, images.dtype)
    return sample / vals - quantized


def add_poisson_noise(
    images: torch.Tensor,
    scale: float | torch.Tensor = 1.0,
    gray: bool | torch.Tensor = False,
    clip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Add Poisson (shot) noise as Real-ESRGAN does, scaled by ``scale``.

    The image is quantised to 8 bits, the number of distinct levels ``L`` per sample sets the photon
    count ``vals = 2**ceil(log2(L))``, and the residual ``poisson(img * vals) / vals - img`` (computed
    on the BT.601 luminance and shared by the channels for gray samples) is added times ``scale``.

    Args:
        images: (N, C, H, W) in [0, 1]; C must be 3 where a sample is gray.
        scale: noise scale, a number or per sample (N,).
        gray: luminance noise, a bool or per sample (N,) bool.
        clip: clamp the result to [0, 1].
        generator: draws the noise on its device.

    Returns:
        (N, C, H, W) noisy images.
    """
    check_images(images)
    n, c = images.shape[:2]
    scale = per_sample(scale, n, images.device, "scale").to(images.dtype)
    gray = per_sample(gray, n, images.device, "gray").bool()
    noise = torch.zeros_like(images)
    gray_idx, colour_idx = gray.nonzero().flatten(), (~gray).nonzero().flatten()
    if colour_idx.numel():
        noise[colour_idx] = _poisson_residual(images[colour_idx], generator)
    if gray_idx.numel():
        if c != 3:
            raise ValueError(f"gray Poisson noise needs RGB images (C=3), got C={c}")
        luma = torch.tensor(_LUMA, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        y = (images[gray_idx] * luma).sum(dim=1, keepdim=True)
        noise[gray_idx] = _poisson_residual(y, generator).expand(-1, c, -1, -1)
    out = images + noise * scale.view(n, 1, 1, 1)
    return out.clamp(0, 1) if clip else out


def random_gaussian_noise(
    images: torch.Tensor,
    sigma_range: Sequence[float] = (1.0, 30.0),
    gray_prob: float = 0.0,
    clip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian noise, per sample ``sigma ~ U(sigma_range)`` (0-255 scale) and gray with ``gray_prob``."""
    low, high = check_range(sigma_range, "sigma_range")
    n = images.shape[0]
    sigma = rand_uniform(n, low, high, generator, images.device)
    gray = rand_bernoulli(n, gray_prob, generator, images.device)
    return add_gaussian_noise(images, sigma, gray, clip, generator)


def random_poisson_noise(
    images: torch.Tensor,
    scale_range: Sequence[float] = (0.05, 3.0),
    gray_prob: float = 0.0,
    clip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Poisson noise with ``scale ~ U(scale_range)`` and gray with ``gray_prob``, per sample."""
    low, high = check_range(scale_range, "scale_range")
    n = images.shape[0]
    scale = rand_uniform(n, low, high, generator, images.device)
    gray = rand_bernoulli(n, gray_prob, generator, images.device)
    return add_poisson_noise(images, scale, gray, clip, generator)


class GaussianNoise(nn.Module):
    """Additive Gaussian noise, sigma drawn per sample from a range (0-255 scale)."""

    def __init__(self, sigma_range: Sequence[float] = (1.0, 30.0), gray_prob: float = 0.0) -> None:
        super().__init__()
        self.sigma_range = check_range(sigma_range, "sigma_range")
        if not 0.0 <= gray_prob <= 1.0:
            raise ValueError(f"gray_prob must be in [0, 1], got {gray_prob}")
        self.gray_prob = gray_prob

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> noisy (N, C, H, W) in [0, 1]."""
        return random_gaussian_noise(images, self.sigma_range, self.gray_prob, True, generator)


class PoissonNoise(nn.Module):
    """Poisson (shot) noise as Real-ESRGAN, scale drawn per sample from a range."""

    def __init__(self, scale_range: Sequence[float] = (0.05, 3.0), gray_prob: float = 0.0) -> None:
        super().__init__()
        self.scale_range = check_range(scale_range, "scale_range")
        if not 0.0 <= gray_prob <= 1.0:
            raise ValueError(f"gray_prob must be in [0, 1], got {gray_prob}")
        self.gray_prob = gray_prob

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> noisy (N, C, H, W) in [0, 1]."""
        return random_poisson_noise(images, self.scale_range, self.gray_prob, True, generator)
