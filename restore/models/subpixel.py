"""Sub-pixel output: ``pixel_shuffle(features, s) + nearest(skip, s)`` as one pass, or written later.

Real-ESRGAN's SRVGGNetCompact ends with a pixel shuffle and a nearest-neighbour skip. Shuffling the
skip repeated s*s times per channel is nearest(skip), so the skip is added on s*s times fewer
pixels, and the shuffle is a strided view of the features: one ``torch.add`` with ``out=`` reads
both and writes the output once, in the promoted dtype (bf16 features under autocast + the float32
skip give a float32 sum).

:class:`SubpixelOutput` holds the two parts unmaterialised, so that tiled inference writes a tile's
exact centre straight into the output image (one pass instead of a materialised tile plus a paste
copy; see :func:`restore.infer.tiling.tiled_forward`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Bytes of converted features per strip of ``SubpixelOutput.write_to``: a strip and its output rows
# stay in a core's L2 cache.
STRIP_BYTES = 2**19


def _grouped(features: torch.Tensor, channels: int, scale: int) -> torch.Tensor:
    """(N, C*s*s, h, w) -> the shuffled view (N, C, h, s, w, s)."""
    n, _, h, w = features.shape
    return features.reshape(n, channels, scale, scale, h, w).permute(0, 1, 4, 2, 5, 3)


def shuffle_add_nearest(features: torch.Tensor, skip: torch.Tensor, scale: int) -> torch.Tensor:
    """``pixel_shuffle(features, scale) + nearest(skip, scale)`` in one pass.

    features (N, C*s*s, H, W), skip (N, C, H, W) -> (N, C, sH, sW), contiguous whatever the inputs'
    layout, in the promoted dtype of the two. With autograd or under ``torch.compile`` (no ``out=``
    on a view there) the same sum is an add followed by one reshape copy. Both equal
    ``shuffle + nearest`` exactly.
    """
    n, _, h, w = features.shape
    c, s = skip.shape[1], scale
    nearest = skip[:, :, :, None, :, None]
    needs_grad = torch.is_grad_enabled() and (features.requires_grad or skip.requires_grad)
    if needs_grad or torch.compiler.is_compiling():
        return (_grouped(features, c, s) + nearest).reshape(n, c, h * s, w * s)
    output = SubpixelOutput(features, skip, scale)
    result = torch.empty(output.shape, dtype=output.dtype, device=features.device)
    output.write_to(result, 0, h * s, 0, w * s)
    return result


@dataclass(frozen=True)
class SubpixelOutput:
    """An unmaterialised ``shuffle_add_nearest(features, skip, scale)``.

    ``features`` (N, C*s*s, h, w), ``skip`` (N, C, h, w); ``shape`` is the output's (N, C, h*s, w*s).
    """

    features: torch.Tensor
    skip: torch.Tensor
    scale: int

    @property
    def shape(self) -> torch.Size:
        n, c, h, w = self.skip.shape
        return torch.Size((n, c, h * self.scale, w * self.scale))

    @property
    def dtype(self) -> torch.dtype:
        """The output's dtype: the promoted type of features and skip (bf16 + float32: float32)."""
        return torch.promote_types(self.features.dtype, self.skip.dtype)

    @property
    def ndim(self) -> int:
        return 4

    def batch(self, start: int, stop: int) -> SubpixelOutput:
        """Images ``start:stop`` of the batch."""
        return SubpixelOutput(self.features[start:stop], self.skip[start:stop], self.scale)

    def materialize(self) -> torch.Tensor:
        """The output tensor (N, C, h*s, w*s)."""
        return shuffle_add_nearest(self.features, self.skip, self.scale)

    def write_to(self, dest: torch.Tensor, top: int, bottom: int, left: int, right: int) -> None:
        """``dest[...] = output[..., top:bottom, left:right]`` in one pass (no autograd).

        ``dest`` (N, C, bottom - top, right - left) is a view into a larger image whose row and
        column strides let it be split into sub-pixel blocks (any slice of a contiguous image at
        offsets that are multiples of the scale); ``top`` ... ``right`` must be multiples of it.
        """
        s = self.scale
        if any(v % s for v in (top, bottom, left, right)):
            raise ValueError(f"sub-pixel crop {(top, bottom, left, right)} is not on the x{s} grid")
        n, c, rows, cols = dest.shape
        if (rows, cols) != (bottom - top, right - left):
            crop = (top, bottom, left, right)
            raise ValueError(f"destination {tuple(dest.shape)} does not match the crop {crop}")
        n_, c_, h_, w_ = dest.stride()
        row_bytes = self.features.shape[1] * (right - left) // s * self.dtype.itemsize
        step = max(1, STRIP_BYTES // max(1, n * row_bytes))  # input rows per strip
        for first in range(top // s, bottom // s, step):
            last = min(first + step, bottom // s)
            # Both in the output dtype first, each in its own layout (a contiguous pass over a strip
            # that stays in cache): an add of mixed dtypes would convert the strided shuffle view.
            features = self.features[:, :, first:last, left // s : right // s].to(self.dtype)
            skip = self.skip[:, :, first:last, left // s : right // s].to(self.dtype)
            # dest rows of the strip as (N, C, rows/s, s, cols/s, s): the same memory, s x s blocks
            offset = dest.storage_offset() + (first * s - top) * h_
            shape = (n, c, last - first, s, cols // s, s)
            blocks = dest.as_strided(shape, (n_, c_, h_ * s, h_, w_ * s, w_), offset)
            torch.add(_grouped(features, c, s), skip[:, :, :, None, :, None], out=blocks)
