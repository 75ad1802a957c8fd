"""Resizing: MATLAB-compatible bicubic ``imresize`` and a cheap ``resize`` on top of ``F.interpolate``.

MATLAB's ``imresize(img, scale, 'bicubic')`` is what made the LR images of every classic SR benchmark
(Set5, Set14, BSD100, DIV2K). It differs from ``F.interpolate(mode="bicubic")``: the cubic kernel is
widened by ``1/scale`` when shrinking (antialiasing), every output pixel's weights are normalised to sum
to one, and out-of-range taps are clamped to the edge pixel. :func:`imresize` reproduces its weights and
indices exactly (computed in float64) and applies them as two dense matrix products, one per axis, on the
images' device.

Two facts measured on the distributed Set5/Set14 LR files (x2, x3, x4; every pixel identical with
``quantize=True``): MATLAB's ``contributions`` clamps indices ("replicating end-points"), where BasicSR's
port mirrors them (``boundary="symmetric"``, up to 7 levels off in the outer rows and columns); and on a
uint8 image MATLAB rounds and saturates to uint8 after each axis, so a float resize differs where the
first pass overshoots [0, 1] (up to 12 levels on the sharp edges of Set14's ppt3).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from restore.degrade.sampling import check_images

__all__ = ["BOUNDARIES", "RESIZE_MODES", "Imresize", "imresize", "imresize_weights", "resize"]

RESIZE_MODES = ("bilinear", "bicubic", "area", "nearest")
BOUNDARIES = ("replicate", "symmetric")


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's cubic convolution kernel (Keys, a = -0.5), support [-2, 2]."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return inner + outer


@lru_cache(maxsize=64)
def imresize_weights(
    in_length: int, out_length: int, scale: float, antialias: bool = True, boundary: str = "replicate"
) -> torch.Tensor:
    """The (out_length, in_length) float64 matrix of MATLAB's bicubic ``imresize`` along one axis.

    Row ``i`` holds the weights of output pixel ``i``: MATLAB's ``contributions`` (kernel widened by
    ``1/scale`` when ``scale < 1`` and ``antialias``; rows normalised to sum to one). Taps outside
    ``[0, in_length)`` are folded in: clamped to the edge (``"replicate"``, MATLAB's
    ``min(max(1, indices), in_length)``) or mirrored (``"symmetric"``, BasicSR's port:
    ``aux = [1:L, L:-1:1]``); a folded tap's weight is added to the pixel it lands on.
    """
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    kernel_width = 4.0
    shrink = scale < 1 and antialias
    if shrink:
        kernel_width /= scale
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # output pixel centre in input coordinates (1-based)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    distance = u[:, None] - indices
    weights = scale * _cubic(distance * scale) if shrink else _cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    k = indices.long() - 1  # 0-based
    if boundary == "replicate":
        k = k.clamp(0, in_length - 1)
    else:
        period = 2 * in_length
        k = torch.remainder(k, period)
        k = torch.where(k < in_length, k, period - 1 - k)
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    matrix.scatter_add_(1, k, weights)
    return matrix


_DEVICE_CACHE: dict[tuple, torch.Tensor] = {}


def _weights_on(
    in_length: int,
    out_length: int,
    scale: float,
    antialias: bool,
    boundary: str,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    key = (in_length, out_length, scale, antialias, boundary, str(device), dtype)
    matrix = _DEVICE_CACHE.get(key)
    if matrix is None:
        if len(_DEVICE_CACHE) > 128:
            _DEVICE_CACHE.clear()
        matrix = imresize_weights(in_length, out_length, scale, antialias, boundary)
        matrix = matrix.to(device=device, dtype=dtype)
        _DEVICE_CACHE[key] = matrix
    return matrix


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Round half away from zero and saturate to [0, 255], as MATLAB's cast to uint8."""
    return torch.floor(x + 0.5).clamp_(0, 255)


def _output_geometry(
    height: int, width: int, scale: float | tuple[float, float] | None, size: tuple[int, int] | None
) -> tuple[tuple[int, int], tuple[float, float]]:
    """Output size and per-axis scale as MATLAB derives them from ``scale`` or ``size``."""
    if (scale is None) == (size is None):
        raise ValueError(f"give exactly one of scale or size, got scale={scale!r}, size={size!r}")
    if scale is not None:
        scales = (float(scale), float(scale)) if isinstance(scale, (int, float)) else tuple(map(float, scale))
        if len(scales) != 2 or min(scales) <= 0:
            raise ValueError(f"scale must be a positive number or a pair of them, got {scale!r}")
        out = (math.ceil(height * scales[0]), math.ceil(width * scales[1]))
        return out, scales  # type: ignore[return-value]
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"size must be a pair of positive ints (height, width), got {size!r}")
    out = (int(size[0]), int(size[1]))
    return out, (out[0] / height, out[1] / width)


def imresize(
    images: torch.Tensor,
    scale: float | tuple[float, float] | None = None,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
    boundary: str = "replicate",
    quantize: bool = False,
) -> torch.Tensor:
    """MATLAB ``imresize(images, scale, 'bicubic')`` on a batch, on the images' device.

    Args:
        images: (N, C, H, W) floating tensor.
        scale: output/input size ratio, one number or (scale_h, scale_w); the output is
            ``ceil(H * scale_h) x ceil(W * scale_w)`` as in MATLAB.
        size: (H_out, W_out) instead of ``scale``; the per-axis scale is then ``H_out / H``, ``W_out / W``.
        antialias: widen the kernel by ``1/scale`` when shrinking (MATLAB's default).
        boundary: "replicate" (MATLAB) or "symmetric" (BasicSR's ``matlab_functions.imresize``).
        quantize: do what MATLAB does to a uint8 image: round half away from zero and saturate to the
            256 levels of [0, 1] after each axis. The input should then hold 8-bit levels (``k / 255``).
            Off: MATLAB on a double image (no clamping, no rounding).

    Returns:
        (N, C, H_out, W_out) tensor of the input dtype. MATLAB resizes the axis with the smaller scale
        first (height on ties); so does this. Half-precision inputs are computed in float32.
    """
    check_images(images)
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    height, width = images.shape[-2:]
    (out_h, out_w), (scale_h, scale_w) = _output_geometry(height, width, scale, size)
    compute = torch.float32 if images.dtype in (torch.float16, torch.bfloat16) else images.dtype
    x = images.to(compute)
    if quantize:  # work on the 0..255 scale, as MATLAB does on uint8 data, so ties round the same way
        x = x * 255
    with torch.autocast(device_type=images.device.type, enabled=False):
        for axis in ("h", "w") if scale_h <= scale_w else ("w", "h"):
            if axis == "h" and (out_h != height or scale_h != 1):
                weights = _weights_on(height, out_h, scale_h, antialias, boundary, x.device, compute)
                x = torch.matmul(weights, x)
            elif axis == "w" and (out_w != width or scale_w != 1):
                weights = _weights_on(width, out_w, scale_w, antialias, boundary, x.device, compute)
                x = torch.matmul(x, weights.T)
            else:
                continue
            if quantize:
                x = _to_uint8(x)
    if quantize:
        x = _to_uint8(x) / 255
    return x.to(images.dtype)


class Imresize(nn.Module):
    """MATLAB-compatible bicubic resize by a fixed scale or to a fixed size."""

    def __init__(
        self,
        scale: float | tuple[float, float] | None = None,
        size: tuple[int, int] | None = None,
        antialias: bool = True,
        boundary: str = "replicate",
        quantize: bool = False,
    ) -> None:
        super().__init__()
        if (scale is None) == (size is None):
            raise ValueError(f"give exactly one of scale or size, got scale={scale!r}, size={size!r}")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        self.scale, self.size, self.antialias = scale, size, antialias
        self.boundary, self.quantize = boundary, quantize

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H_out, W_out)."""
        return imresize(images, self.scale, self.size, self.antialias, self.boundary, self.quantize)


def resize(
    images: torch.Tensor, size: tuple[int, int], mode: str = "bicubic", antialias: bool = False
) -> torch.Tensor:
    """Cheap resize with ``F.interpolate`` (``align_corners=False``): bilinear, bicubic, area or nearest.

    Args:
        images: (N, C, H, W) floating tensor.
        size: (H_out, W_out).
        mode: one of :data:`RESIZE_MODES`; "area" is adaptive average pooling (exact box filter).
        antialias: torch's antialiasing for bilinear/bicubic downscaling (off in Real-ESRGAN).

    Returns:
        (N, C, H_out, W_out); bicubic can overshoot the input range (not clamped).
    """
    check_images(images, floating=False)
    if mode not in RESIZE_MODES:
        raise ValueError(f"mode must be one of {RESIZE_MODES}, got {mode!r}")
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"size must be a pair of positive ints (height, width), got {size!r}")
    size = (int(size[0]), int(size[1]))
    if tuple(images.shape[-2:]) == size:
        return images
    if mode in ("area", "nearest"):
        return F.interpolate(images, size=size, mode=mode)
    return F.interpolate(images, size=size, mode=mode, align_corners=False, antialias=antialias)
