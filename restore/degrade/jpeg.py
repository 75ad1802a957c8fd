"""JPEG compression artefacts on the device, per-sample quality, via kornia's differentiable codec.

``kornia.enhance.jpeg_codec_differentiable`` models baseline JPEG (YCbCr, 4:2:0 chroma, 8x8 DCT, the
IJG quality-scaled standard tables) with smooth stand-ins for rounding and flooring so that gradients
flow. Its stand-in rounding keeps a cubic fraction of the rounding error, so at the same quality it
degrades a little less than libjpeg: measured on scikit-image's astronaut, coffee and chelsea (256x256),
PSNR(ours, PIL) is 40.5-47 dB at qualities 30-95 and ours is 0.3-0.9 dB closer to the clean image than
PIL's (tests/test_degrade.py checks both). Images are replicate-padded on the bottom and right to a
multiple of 16 (one 4:2:0 macroblock) and cropped back, as an encoder does, whatever kornia's version
does itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from restore.degrade.noise import per_sample, rand_uniform

__all__ = ["JPEG", "jpeg", "random_jpeg"]

_MACROBLOCK = 16


def jpeg(images: torch.Tensor, quality: float | torch.Tensor) -> torch.Tensor:
    """JPEG-compress and decode each image at its own quality.

    Args:
        images: (N, 3, H, W) RGB; clamped to [0, 1] first (as Real-ESRGAN does before its JPEG).
        quality: JPEG quality in [1, 100], a number or per sample (N,) (fractions allowed).

    Returns:
        (N, 3, H, W) decoded images in [0, 1], same dtype (computed in float32, autocast off).
    """
    from kornia.enhance import jpeg_codec_differentiable

    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W) RGB, got shape {tuple(images.shape)}")
    if isinstance(quality, (int, float)) and not 1 <= quality <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    n, _, h, w = images.shape
    q = per_sample(quality, n, images.device, "quality").clamp(1, 100).contiguous()
    with torch.autocast(device_type=images.device.type, enabled=False):
        x = images.float().clamp(0, 1)
        pad_h, pad_w = -h % _MACROBLOCK, -w % _MACROBLOCK
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        out = jpeg_codec_differentiable(x, q)[..., :h, :w]
    return out.clamp(0, 1).to(images.dtype)


def random_jpeg(
    images: torch.Tensor,
    quality_range: Sequence[float] = (30.0, 95.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """JPEG with a quality drawn per sample from U(quality_range), on the generator's device."""
    low, high = _check_quality_range(quality_range)
    quality = rand_uniform(images.shape[0], low, high, generator, images.device)
    return jpeg(images, quality.to(images.device))


def _check_quality_range(quality_range: Sequence[float]) -> tuple[float, float]:
    if len(quality_range) != 2 or not 1 <= quality_range[0] <= quality_range[1] <= 100:
        raise ValueError(f"quality_range must be (low, high), 1 <= low <= high <= 100, got {quality_range!r}")
    return float(quality_range[0]), float(quality_range[1])


class JPEG(nn.Module):
    """JPEG compression artefacts, quality drawn per sample from a range."""

    def __init__(self, quality_range: Sequence[float] = (30.0, 95.0)) -> None:
        super().__init__()
        self.quality_range = _check_quality_range(quality_range)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> JPEG-decoded (N, 3, H, W) in [0, 1]."""
        return random_jpeg(images, self.quality_range, generator)
