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

import functools
from dataclasses import dataclass

import torch

# Bytes of converted features per strip of ``SubpixelOutput.write_to``: each op on a strip runs on
# both threads of a 2-core CPU, so half a strip per core stays in its L2 cache (1 MiB on an AMD EPYC),
# and there are few enough strips that the per-op overhead stays small: 2 MiB strips made
# ``restore.upscale`` of a 2000x1500 photo 4-7% faster than 512 KiB ones (three alternating runs).
STRIP_BYTES = 2**21


def interleaved_order(channels: int, scale: int) -> torch.Tensor:
    """Indices that reorder PixelShuffle's feature channels (c, i, j) into the interleaved order (i, j, c).

    ``features[:, interleaved_order(C, s)]``: for each input pixel the s*s*C values of its output
    block in the order of an (H, W, C) image's memory, colour last.
    """
    return torch.arange(channels * scale * scale).view(channels, scale, scale).permute(1, 2, 0).reshape(-1)


def _grouped(features: torch.Tensor, channels: int, scale: int, interleaved: bool) -> torch.Tensor:
    """(N, C*s*s, h, w) -> the shuffled view (N, C, h, s, w, s)."""
    n, _, h, w = features.shape
    if interleaved:  # channel index (i*s + j)*C + c
        return features.reshape(n, scale, scale, channels, h, w).permute(0, 3, 4, 1, 5, 2)
    return features.reshape(n, channels, scale, scale, h, w).permute(0, 1, 4, 2, 5, 3)


def shuffle_add_nearest(
    features: torch.Tensor, skip: torch.Tensor, scale: int, interleaved: bool = False
) -> torch.Tensor:
    """``pixel_shuffle(features, scale) + nearest(skip, scale)`` in one pass.

    features (N, C*s*s, H, W), skip (N, C, H, W) -> (N, C, sH, sW), contiguous whatever the inputs'
    layout, in the promoted dtype of the two. ``interleaved``: the feature channels are in the order
    (i, j, c) of :func:`interleaved_order` instead of PixelShuffle's (c, i, j). With autograd or under
    ``torch.compile`` (no in-place writes there) the same sum is an add followed by one reshape copy.
    Both equal ``shuffle + nearest`` exactly.
    """
    n, _, h, w = features.shape
    c, s = skip.shape[1], scale
    needs_grad = torch.is_grad_enabled() and (features.requires_grad or skip.requires_grad)
    if needs_grad or torch.compiler.is_compiling():
        nearest = skip[:, :, :, None, :, None]
        return (_grouped(features, c, s, interleaved) + nearest).reshape(n, c, h * s, w * s)
    output = SubpixelOutput(features, skip, scale, interleaved)
    result = torch.empty(output.shape, dtype=output.dtype, device=features.device)
    output.write_to(result, 0, h * s, 0, w * s)
    return result


@dataclass(frozen=True)
class SubpixelOutput:
    """An unmaterialised ``shuffle_add_nearest(features, skip, scale, interleaved)``.

    ``features`` (N, C*s*s, h, w), ``skip`` (N, C, h, w); ``shape`` is the output's (N, C, h*s, w*s).
    ``interleaved``: feature channels in the order (i, j, c) (:func:`interleaved_order`), which
    :meth:`write_to` copies into a channels_last (H, W, C) destination s*C contiguous values at a time.
    """

    features: torch.Tensor
    skip: torch.Tensor
    scale: int
    interleaved: bool = False

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
        return SubpixelOutput(self.features[start:stop], self.skip[start:stop], self.scale, self.interleaved)

    def materialize(self) -> torch.Tensor:
        """The output tensor (N, C, h*s, w*s), contiguous."""
        return shuffle_add_nearest(self.features, self.skip, self.scale, self.interleaved)

    def write_to(self, dest: torch.Tensor, top: int, bottom: int, left: int, right: int) -> None:
        """``dest[...] = output[..., top:bottom, left:right]`` (no autograd).

        ``dest`` (N, C, bottom - top, right - left), in any memory format, is a view into a larger
        image whose row and column strides let it be split into sub-pixel blocks (any slice of a
        contiguous or channels_last image at offsets that are multiples of the scale); ``top`` ...
        ``right`` must be multiples of it.

        A strip of input rows at a time (:data:`STRIP_BYTES`), the features converted to the output
        dtype first. Into an NCHW destination: one add of the shuffled features and the broadcast skip
        (runs of s values). Into a channels_last one: the skip is added to the contiguous strip as
        ``skip @ spread`` (a GEMM whose inner products have one non-zero term: exactly the float sum,
        vectorised, where a broadcast add would run C values at a time), then one copy shuffles the
        strip into place, in runs of s*C values for interleaved features.
        """
        s = self.scale
        if any(v % s for v in (top, bottom, left, right)):
            raise ValueError(f"sub-pixel crop {(top, bottom, left, right)} is not on the x{s} grid")
        n, c, rows, cols = dest.shape
        if (rows, cols) != (bottom - top, right - left):
            crop = (top, bottom, left, right)
            raise ValueError(f"destination {tuple(dest.shape)} does not match the crop {crop}")
        n_, c_, h_, w_ = dest.stride()
        k, w = self.features.shape[1], cols // s
        channels_last = c_ == 1 and c > 1
        device = self.features.device
        step = max(1, STRIP_BYTES // max(1, n * k * w * self.dtype.itemsize))  # input rows per strip
        if channels_last:
            spread = _spread(c, s, self.interleaved, self.dtype, device)
            buffer = torch.empty(n * min(step, rows // s) * w * k, dtype=self.dtype, device=device)
        for first in range(top // s, bottom // s, step):
            last = min(first + step, bottom // s)
            features = self.features[:, :, first:last, left // s : right // s]
            skip = self.skip[:, :, first:last, left // s : right // s].to(self.dtype)
            # dest rows of the strip as (N, C, rows/s, s, cols/s, s): the same memory, s x s blocks
            offset = dest.storage_offset() + (first * s - top) * h_
            shape = (n, c, last - first, s, w, s)
            blocks = dest.as_strided(shape, (n_, c_, h_ * s, h_, w_ * s, w_), offset)
            if not channels_last:
                # both in the output dtype first, each in its own layout (a contiguous pass over a strip
                # that stays in cache): an add of mixed dtypes would convert the strided shuffle view
                grouped = _grouped(features.to(self.dtype), c, s, self.interleaved)
                torch.add(grouped, skip[:, :, :, None, :, None], out=blocks)
                continue
            strip = buffer[: n * (last - first) * w * k].view(n, last - first, w, k)  # (N, rows, w, C*s*s)
            strip.copy_(features.permute(0, 2, 3, 1))
            strip.view(-1, k).addmm_(skip.permute(0, 2, 3, 1).reshape(-1, c), spread)
            blocks.copy_(_grouped(strip.permute(0, 3, 1, 2), c, s, self.interleaved))


@functools.cache
def _spread(
    channels: int, scale: int, interleaved: bool, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """(C, C*s*s) with a one where a feature channel belongs to colour c: ``skip @ spread`` repeats
    each pixel's colour over its s*s sub-pixels in the features' channel order. Cached: one per
    strip would cost more than the GEMM on small strips; never written to."""
    colours = torch.arange(channels)
    of_channel = colours.repeat(scale * scale) if interleaved else colours.repeat_interleave(scale * scale)
    return (of_channel[None, :] == colours[:, None]).to(dtype=dtype, device=device)
