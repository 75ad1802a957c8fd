"""Chunked processing of long audio with overlap-add: memory bounded by the chunk, no seams.

A signal of ``T`` samples is cut into cores of ``hop`` samples; each core is processed together with
``context`` samples on both sides (which are then discarded), and neighbouring cores overlap by
``fade`` samples that are cross-faded with complementary raised-cosine ramps (``cos^2`` + ``sin^2``
= 1: a partition of unity, so identical overlaps add up to themselves exactly).

For a model whose receptive field fits in ``context`` (convolutions), the chunked output equals the
whole-signal output to float rounding. For models with fading memory (recurrent layers, noise
trackers) ``context`` is their warm-up, and the cross-fade hides what difference is left.

    y = process_chunked(model, x, chunk=160_000, context=16_000, fade=800)   # x: (N, 1, T)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Chunk", "chunk_plan", "process_chunked"]


@dataclass(frozen=True)
class Chunk:
    """One chunk: read ``[read_start, read_end)``, keep ``[core_start, core_end)`` of the output,
    with a fade-in over the first ``fade_in`` and a fade-out over the last ``fade_out`` kept samples."""

    read_start: int
    read_end: int
    core_start: int
    core_end: int
    fade_in: int
    fade_out: int


def chunk_plan(length: int, chunk: int, context: int, fade: int = 0) -> list[Chunk]:
    """The chunks that cover ``length`` samples, each reading at most ``chunk`` samples.

    ``chunk`` must exceed ``2 * context + 2 * fade``: a chunk holds its core (at least ``fade + 1``
    samples) plus ``context`` on each side. A signal that fits in one chunk is one chunk.
    """
    for name, value in (("length", length), ("chunk", chunk), ("context", context), ("fade", fade)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    if length == 0:
        return []
    if length <= chunk:
        return [Chunk(0, length, 0, length, 0, 0)]
    hop = chunk - 2 * context - fade  # new samples per chunk
    if hop <= fade:
        raise ValueError(
            f"chunk ({chunk}) must be larger than 2 * context + 2 * fade = {2 * context + 2 * fade} samples"
        )
    count = math.ceil((length - fade) / hop)
    plan = []
    for k in range(count):
        core_start = k * hop
        core_end = min(core_start + hop + fade, length)
        plan.append(
            Chunk(
                read_start=max(core_start - context, 0),
                read_end=min(core_end + context, length),
                core_start=core_start,
                core_end=core_end,
                fade_in=fade if k > 0 else 0,
                fade_out=fade if k < count - 1 else 0,
            )
        )
    return plan


def _ramp(fade: int, device: torch.device) -> Tensor:
    """``sin^2`` rising over ``fade`` samples (its mirror ``cos^2`` falls; they sum to 1)."""
    t = (torch.arange(fade, device=device, dtype=torch.float64) + 0.5) / fade
    return torch.sin(t * (math.pi / 2)).square().float()


def process_chunked(
    fn: Callable[[Tensor], Tensor], x: Tensor, chunk: int, context: int, fade: int = 0
) -> Tensor:
    """``fn`` applied to ``x`` ``(N, C, T)`` chunk by chunk; returns ``(N, C', T)`` float32.

    ``fn`` maps ``(N, C, t)`` to ``(N, C', t)`` (same length). Only one chunk's activations exist
    at a time; the output is assembled in place.
    """
    if x.dim() != 3:
        raise ValueError(f"process_chunked expects (N, C, T) audio, got {tuple(x.shape)}")
    plan = chunk_plan(x.shape[-1], chunk, context, fade)
    out: Tensor | None = None
    ramp = _ramp(fade, x.device) if fade else None
    for piece in plan:
        y = fn(x[..., piece.read_start : piece.read_end])
        if y.shape[-1] != piece.read_end - piece.read_start or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"the model returned {tuple(y.shape)} for a chunk of "
                f"{(x.shape[0], x.shape[1], piece.read_end - piece.read_start)}; "
                "audio models must keep the batch size and the length"
            )
        if out is None:
            out = torch.zeros(x.shape[0], y.shape[1], x.shape[-1], dtype=torch.float32, device=x.device)
        offset = piece.core_start - piece.read_start
        core = y[..., offset : offset + piece.core_end - piece.core_start].float()
        target = out[..., piece.core_start : piece.core_end]
        target += core  # then take back what the ramps remove (never writes into ``y``: it may alias ``x``)
        if piece.fade_in:
            target[..., : piece.fade_in] -= core[..., : piece.fade_in] * (1 - ramp)
        if piece.fade_out:
            target[..., -piece.fade_out :] -= core[..., -piece.fade_out :] * (1 - ramp.flip(0))
    if out is None:
        return x.new_zeros(x.shape, dtype=torch.float32)
    return out
