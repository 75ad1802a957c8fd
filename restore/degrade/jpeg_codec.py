"""Baseline JPEG (libjpeg's default path) as batched tensor ops: the artefacts of a real encoder.

Encode: RGB -> YCbCr (JFIF, 8-bit), 4:2:0 chroma by 2x2 averaging, 8x8 DCT, quantisation by the IJG
standard tables scaled by quality (``jpeg_quality_scaling``), rounded. Decode: dequantise, inverse
DCT, 8-bit samples, chroma upsampled by libjpeg's "fancy" triangle filter (bilinear, 3/4 and 1/4),
YCbCr -> RGB, 8-bit. Every rounding is a hard round, as in the codec (this is for making degraded
training inputs, not for gradients), and every sample in a batch has its own quality.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# ITU T.81 Annex K tables (the IJG defaults), row-major by frequency.
LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    *((99,) * 8 for _ in range(4)),
)
MACROBLOCK = 16  # one 4:2:0 MCU: 16x16 luma, 8x8 of each chroma

# JFIF colour conversion (ITU-R BT.601, full range), as libjpeg's jccolor.c / jdcolor.c.
RGB_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168735892, -0.331264108, 0.5),
    (0.5, -0.418687589, -0.081312411),
)
YCBCR_TO_RGB = (
    (1.0, 0.0, 1.402),
    (1.0, -0.344136286, -0.714136286),
    (1.0, 1.772, 0.0),
)


def quantization_tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (N, 1, 1, 1, 8, 8) luma and chroma tables for quality (N,) in [1, 100] (IJG scaling)."""
    q = quality.clamp(1, 100).view(-1, 1, 1, 1, 1, 1)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q)

    def scaled(table: tuple) -> torch.Tensor:
        base = torch.tensor(table, dtype=q.dtype, device=q.device)
        return torch.floor((base * scale + 50) / 100).clamp(1, 255)

    return scaled(LUMA_TABLE), scaled(CHROMA_TABLE)


def dct_matrix(device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The orthonormal 8-point DCT-II matrix ``D`` (8, 8): coefficients = D @ block @ D^T."""
    k = torch.arange(8, dtype=torch.float64).view(8, 1)
    n = torch.arange(8, dtype=torch.float64).view(1, 8)
    d = torch.cos((2 * n + 1) * k * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.to(device=device, dtype=dtype)


def _blocks(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) with H, W multiples of 8 -> (N, C, H/8, W/8, 8, 8)."""
    n, c, h, w = x.shape
    return x.view(n, c, h // 8, 8, w // 8, 8).transpose(3, 4)


def _unblocks(x: torch.Tensor) -> torch.Tensor:
    n, c, bh, bw = x.shape[:4]
    return x.transpose(3, 4).reshape(n, c, bh * 8, bw * 8)


def _compress_plane(plane: torch.Tensor, table: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Quantise and reconstruct (N, C, H, W) 8-bit samples through the 8x8 DCT; returns 8-bit samples.

    The 2-D DCT of a block is one 64x64 matrix on the flattened block (``kron(D, D)``), so the whole
    batch is two large matrix products rather than many 8x8 ones.
    """
    n, c, h, w = plane.shape
    basis = torch.kron(d, d)  # row-major vec(D @ B @ D^T) = kron(D, D) @ vec(B)
    blocks = _blocks(plane - 128).reshape(n, -1, 64)
    coefficients = blocks @ basis.T
    table = table.reshape(n, 1, 64)
    restored = (torch.round(coefficients * table.reciprocal()) * table) @ basis
    return _round8(_unblocks(restored.view(n, c, h // 8, w // 8, 8, 8)) + 128)


def _round8(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x).clamp(0, 255)


def jpeg_roundtrip(images: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Encode and decode (N, 3, H, W) RGB in [0, 1] at per-sample ``quality`` (N,); float32 out in [0, 1].

    H and W must be multiples of 16 (pad first). Runs in float32.
    """
    x = _round8(images.float() * 255)
    (yr, yg, yb), (br, bg, bb), (rr, rg, rb) = RGB_TO_YCBCR
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = _round8(yr * r + yg * g + yb * b)
    cb = _round8(br * r + bg * g + bb * b + 128)
    cr = _round8(rr * r + rg * g + rb * b + 128)
    chroma = _round8(F.avg_pool2d(torch.cat([cb, cr], dim=1), 2))
    luma_table, chroma_table = quantization_tables(quality.to(torch.float32))
    d = dct_matrix(x.device)
    y = _compress_plane(y, luma_table, d)
    chroma = _compress_plane(chroma, chroma_table, d)
    chroma = _round8(F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)) - 128
    cb, cr = chroma[:, 0:1], chroma[:, 1:2]
    (_, _, rv), (_, gu, gv), (_, bu, _) = YCBCR_TO_RGB
    rgb = torch.cat([y + rv * cr, y + gu * cb + gv * cr, y + bu * cb], dim=1)
    return _round8(rgb) * (1 / 255)
