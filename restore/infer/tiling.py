"""Tiled inference: equal tiles, blended overlaps, exact for a model with a known receptive field.

An output pixel depends on the input pixels within ``receptive_field`` (input pixels) of it. A tile
gives that pixel exactly the whole-image value when the pixel is at least ``receptive_field`` input
pixels (``receptive_field * scale`` output pixels) away from every tile edge that is not an image
border. :func:`blend_window` therefore gives those pixels weight 0, then rises along a Hann (raised
cosine) ramp to 1, and :func:`tiled_forward` returns ``sum(weight * out) / sum(weight)``: each output
pixel is a mix of exact values only, and the ramp hides a seam when a model's true receptive field
is larger than its spec says.

Overlap. Two neighbouring tiles share ``overlap`` input pixels. With ``overlap = 2 * receptive_field
+ ramp`` the zero bands of both tiles sit at the two ends of the shared strip and their ramps lie on
the same ``ramp`` pixels in the middle, where the two Hann halves sum to exactly 1. The default ramp
is ``max(8, receptive_field // 2)`` input pixels: long enough to blend away an under-estimated
receptive field, short enough to cost little (a 512 tile of a model with receptive field 18 repeats
about 20% of its pixels). A given overlap smaller than ``2 * receptive_field`` is used, but the
result is no longer exact (warned). With ``overlap == 2 * receptive_field`` (models whose receptive
field is a true bound, ``ModelSpec.exact_tiling``) there is no ramp: the zero bands of neighbouring
tiles meet, and each tile's exact centre is pasted without accumulation or division.

Tiles. :func:`tile_boxes` picks per axis the fewest tiles of at most ``tile`` pixels and shrinks them
to the smallest equal side that covers the axis, spread evenly, so the recomputed overlap is as
small as the tile count allows.

Size multiples. The whole image is padded once (reflect, or replicate when the image is too small
to reflect) on the bottom and right to a multiple of ``size_multiple``; tile and overlap are
rounded to that multiple, so every tile starts on the model's grid (pixel-unshuffle, downsampling)
and a tiled result equals the one-pass result of the same padded image.
"""

from __future__ import annotations

import gc
import math
import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from restore.models.subpixel import STRIP_BYTES, SubpixelOutput

Box = tuple[int, int, int, int]
TileFn = Callable[..., torch.Tensor | SubpixelOutput]
# write(block (N, C, h, w) float, top, left): takes the output a block at a time instead of a tensor
WriteFn = Callable[[torch.Tensor, int, int], None]

OOM_MESSAGES = ("out of memory", "can't allocate memory")


def default_ramp(receptive_field: int) -> int:
    """Length in input pixels of the blending ramp: ``max(8, receptive_field // 2)``."""
    return max(8, receptive_field // 2)


def default_overlap(receptive_field: int, size_multiple: int = 1, exact: bool = False) -> int:
    """``2 * receptive_field + default_ramp(receptive_field)``, rounded up to ``size_multiple``;
    ``exact=True`` (the receptive field is a true bound): ``2 * receptive_field``, no ramp."""
    ramp = 0 if exact else default_ramp(receptive_field)
    return round_up(2 * receptive_field + ramp, size_multiple)


def min_tile_size(overlap: int, size_multiple: int = 1) -> int:
    """Smallest tile worth running: ``2 * overlap + 1`` rounded up to ``size_multiple``.

    Smaller tiles are still exact (any tile larger than the overlap is) but would compute each
    pixel more than four times.
    """
    return round_up(2 * overlap + 1, size_multiple)


def tile_boxes(height: int, width: int, tile: int, overlap: int, size_multiple: int = 1) -> list[Box]:
    """Boxes ``(top, left, h, w)`` of equal-sized tiles covering a ``height x width`` image.

    Per axis: the fewest tiles of at most ``tile`` pixels whose neighbours share at least ``overlap``
    pixels (one tile of the full side where the image is not larger than ``tile``), each shrunk to
    the smallest side that still covers the axis with that many, and spread evenly from border to
    border. All tiles have one shape and can be batched; recomputed overlap is as small as the count
    allows (a 1500-pixel side in 320-pixel tiles overlapping by 20: five of 316, not five of 320 with
    the last pushed back over its neighbour). With ``size_multiple`` (dividing the sides, ``tile``
    and ``overlap``), sides and positions stay multiples of it. Row-major order.
    """
    for name, value in (
        ("height", height),
        ("width", width),
        ("tile", tile),
        ("size_multiple", size_multiple),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(overlap, int) or overlap < 0:
        raise ValueError(f"overlap must be a non-negative int, got {overlap!r}")
    th, rows = _axis(height, tile, overlap, size_multiple)
    tw, cols = _axis(width, tile, overlap, size_multiple)
    return [(top, left, th, tw) for top in rows for left in cols]


def _axis(length: int, tile: int, overlap: int, multiple: int) -> tuple[int, list[int]]:
    """(tile side, starts) along one axis of ``length`` (module docstring of :func:`tile_boxes`)."""
    if tile >= length:
        return length, [0]
    if overlap >= tile:
        raise ValueError(f"overlap ({overlap}) must be smaller than tile ({tile})")
    count = math.ceil((length - overlap) / (tile - overlap))
    side = min(tile, round_up(math.ceil((length - overlap) / count) + overlap, multiple))
    # Spread evenly in units of the multiple: neighbours are at most side - overlap apart because
    # count * (side - overlap) + overlap >= length.
    units = (length - side) // multiple
    return side, [multiple * (i * units // (count - 1)) for i in range(count)]


def blend_profile(length: int, *, zero: int, ramp: int, start: bool = True, end: bool = True) -> torch.Tensor:
    """1-D blending weights (float32, ``length``) of one tile side.

    At an interior end (``start``/``end`` True) the first ``zero`` pixels get 0, the next ``ramp``
    pixels rise along a Hann half-period ``0.5 - 0.5 cos(pi (i + 0.5) / ramp)`` and the rest get 1;
    an end on the image border (False) gets 1 up to the edge. Where ``zero + ramp`` exceeds half the
    length the two ends multiply.
    """
    if zero < 0 or ramp < 0:
        raise ValueError(f"zero and ramp must be >= 0, got zero={zero!r}, ramp={ramp!r}")
    i = torch.arange(length, dtype=torch.float64)
    weight = torch.ones(length, dtype=torch.float64)
    for interior, dist in ((start, i), (end, length - 1 - i)):
        if interior:
            weight *= _ramp(dist, zero, ramp)
    return weight.float()


def _ramp(dist: torch.Tensor, zero: int, ramp: int) -> torch.Tensor:
    """0 for ``dist < zero``, a Hann rise over ``ramp`` pixels, then 1 (``dist``: index from the edge)."""
    if ramp == 0:
        return (dist >= zero).double()
    t = ((dist - zero + 0.5) / ramp).clamp(0, 1)
    return torch.where(dist < zero, 0.0, 0.5 - 0.5 * torch.cos(math.pi * t))


def blend_window(
    height: int,
    width: int,
    *,
    zero: int,
    ramp: int,
    interior: tuple[bool, bool, bool, bool] = (True, True, True, True),
) -> torch.Tensor:
    """2-D blending weights (float32, ``height x width``) of one tile: the outer product of the row
    and column profiles of :func:`blend_profile`.

    ``zero``: width in (output) pixels of the zero band along an interior edge (at least
    ``receptive_field * scale`` for exact tiling); ``ramp``: length of the Hann rise after it;
    ``interior``: (top, bottom, left, right), True for an edge inside the image, False for an
    image border (weight 1 up to the edge).
    """
    top, bottom, left, right = interior
    rows = blend_profile(height, zero=zero, ramp=ramp, start=top, end=bottom)
    cols = blend_profile(width, zero=zero, ramp=ramp, start=left, end=right)
    return rows[:, None] * cols[None, :]


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-value // multiple) * multiple


def round_down(value: int, multiple: int) -> int:
    """Largest multiple of ``multiple`` that is <= ``value``, at least ``multiple``."""
    return max(multiple, value // multiple * multiple)


def _as_tuple(inputs: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    tensors = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    if not tensors:
        raise ValueError("inputs must hold at least one tensor")
    first = tensors[0]
    for k, x in enumerate(tensors):
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"inputs[{k}] must be a 4-D tensor (N,C,H,W), got {shape}")
        if x.shape[0] != first.shape[0] or x.shape[-2:] != first.shape[-2:]:
            raise ValueError(
                f"inputs[{k}] has shape {tuple(x.shape)}; every input needs the N, H, W of inputs[0] "
                f"{tuple(first.shape)}"
            )
        if x.device != first.device:
            raise ValueError(f"inputs[{k}] is on {x.device}, inputs[0] on {first.device}")
    if first.numel() == 0:
        raise ValueError(f"inputs[0] is empty: shape {tuple(first.shape)}")
    return tensors


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom and right of (N,C,H,W) to multiples of ``multiple``: reflect, replicate if too small."""
    ph, pw = (-x.shape[-2]) % multiple, (-x.shape[-1]) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def tiled_forward(
    fn: TileFn,
    inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    scale: int,
    tile: int | None,
    overlap: int | None = None,
    receptive_field: int,
    size_multiple: int = 1,
    tile_batch: int = 4,
    write: WriteFn | None = None,
) -> torch.Tensor | None:
    """Run ``fn`` over equal, overlapping tiles of ``inputs`` and blend the results.

    - ``fn(*tiles) -> (B, C_out, h*scale, w*scale)``: called with one crop per input, all cut with
      the same boxes, ``tile_batch`` crops (tiles x images) concatenated along the batch dimension.
      It may return a :class:`~restore.models.subpixel.SubpixelOutput` instead of a tensor: pasted
      tile centres are then written straight into the output (one pass, no tile-sized copy).
    - ``inputs``: a tensor (N,C,H,W) or a sequence of tensors with equal N, H, W (image and mask).
    - ``tile``: tile side in input pixels (rounded down to ``size_multiple``); ``None`` or a tile
      covering the image: one pass over the whole padded image.
    - ``overlap``: default ``2 * receptive_field + max(8, receptive_field // 2)`` (module docstring).
      With ``overlap == 2 * receptive_field`` (rounded to ``size_multiple``) there is no ramp: each
      tile's exact centre is pasted, with no accumulation or division.

    - ``write``: None, or ``write(block, top, left)`` called with blocks (N, C_out, h, w) of the
      output that together cover it (e.g. :meth:`restore.io.quantise.QuantisedImage.write`):
      pasted tile centres are passed as they are computed, a cache-sized strip at a time, so the
      whole output never exists as one float tensor (neighbouring centres may share a few rows or
      columns; the later write holds the value); with blending, or in one pass, the finished
      output is passed whole.

    Returns (N, C_out, H*scale, W*scale) on the inputs' device, accumulated in float32 (float64 if
    ``fn`` returns float64) and returned in ``fn``'s output dtype; None when ``write`` is given.
    Gradients are not disabled here: call it under ``torch.inference_mode()``.
    """
    tensors = _as_tuple(inputs)
    for name, value in (("scale", scale), ("size_multiple", size_multiple), ("tile_batch", tile_batch)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(receptive_field, int) or receptive_field < 0:
        raise ValueError(f"receptive_field must be a non-negative int, got {receptive_field!r}")
    if tile is not None and (not isinstance(tile, int) or tile < 1):
        raise ValueError(f"tile must be a positive int or None, got {tile!r}")
    if overlap is None:
        overlap = default_overlap(receptive_field, size_multiple)
    elif not isinstance(overlap, int) or overlap < 0:
        raise ValueError(f"overlap must be a non-negative int or None, got {overlap!r}")
    else:
        overlap = round_up(overlap, size_multiple)

    n, _, height, width = tensors[0].shape
    padded = tuple(pad_to_multiple(x, size_multiple) for x in tensors)
    ph, pw = padded[0].shape[-2:]
    tile = max(ph, pw) if tile is None else round_down(tile, size_multiple)
    tiled = tile < max(ph, pw)
    if tiled and overlap >= tile:
        raise ValueError(
            f"tile {tile} must be larger than the overlap {overlap} (receptive_field {receptive_field}); "
            f"use tile >= {min_tile_size(overlap, size_multiple)} or tile=None for one pass"
        )
    if tiled and overlap < 2 * receptive_field:
        warnings.warn(
            f"overlap {overlap} < 2 * receptive_field ({receptive_field}): tiles are blended but not exact",
            stacklevel=2,
        )
    boxes = tile_boxes(ph, pw, tile, overlap, size_multiple)
    th, tw = boxes[0][2], boxes[0][3]

    # Blending in output pixels: zero band and ramp split the overlap symmetrically.
    # Exact when overlap >= 2 * receptive_field: the zero bands are then >= receptive_field * scale.
    spare = overlap - 2 * receptive_field if overlap >= 2 * receptive_field else overlap
    ramp = min(default_ramp(receptive_field), spare) * scale
    zero = (overlap * scale - ramp) // 2

    out_h, out_w = height * scale, width * scale
    if not tiled:  # one pass: the model's output, cropped; no accumulation buffer or copy
        result = fn(*padded)
        if isinstance(result, SubpixelOutput):
            result = result.materialize()
        expected = (n, ph * scale, pw * scale)
        if result.ndim != 4 or (result.shape[0], *result.shape[-2:]) != expected:
            raise ValueError(
                f"fn returned shape {tuple(result.shape)} for input {tuple(padded[0].shape)}; "
                f"expected (N={n}, C, {expected[1]}, {expected[2]}) with scale {scale}"
            )
        return _deliver(result[..., :out_h, :out_w].to(tensors[0].device), write)

    # Exact without a ramp: every output pixel is taken from one tile whose zero band it is not in.
    paste = ramp == 0 and overlap >= 2 * receptive_field
    out = row_sum = col_sum = None
    streamed = paste and write is not None  # tile centres go straight to write: no output tensor
    acc_dtype = out_dtype = None
    device = tensors[0].device
    per_call = max(1, tile_batch // n)
    for first in range(0, len(boxes), per_call):
        group = boxes[first : first + per_call]
        crops = [torch.cat([x[..., t : t + th, l : l + tw] for t, l, _, _ in group]) for x in padded]
        result = fn(*crops)
        subpixel = isinstance(result, SubpixelOutput)
        # written in place only where tile centres are pasted on the sub-pixel grid, on this device
        if subpixel and (not paste or zero % scale or result.skip.device != tensors[0].device):
            result = result.materialize()
            subpixel = False
        expected = (len(group) * n, th * scale, tw * scale)
        if result.ndim != 4 or (result.shape[0], *result.shape[-2:]) != expected:
            raise ValueError(
                f"fn returned shape {tuple(result.shape)} for input tiles {tuple(crops[0].shape)}; "
                f"expected (B={expected[0]}, C, {expected[1]}, {expected[2]}) with scale {scale}"
            )
        if acc_dtype is None:
            acc_dtype = torch.float64 if result.dtype == torch.float64 else torch.float32
            out_dtype = result.dtype
            if paste and not streamed:  # every pixel is written once or more: no zeros, no weight sums
                out = torch.empty(n, result.shape[1], out_h, out_w, dtype=acc_dtype, device=device)
            elif not paste:
                out = torch.zeros(n, result.shape[1], out_h, out_w, dtype=acc_dtype, device=device)
                row_sum = torch.zeros(ph * scale, dtype=acc_dtype, device=device)
                col_sum = torch.zeros(pw * scale, dtype=acc_dtype, device=device)
                profiles: dict[tuple[int, bool, bool], torch.Tensor] = {}
        if not subpixel:
            result = result.to(device=device, dtype=acc_dtype)
        for k, (top, left, h, w) in enumerate(group):
            y0, x0, y1, x1 = top * scale, left * scale, (top + h) * scale, (left + w) * scale
            piece = result.batch(k * n, (k + 1) * n) if subpixel else result[k * n : (k + 1) * n]
            if paste:
                # Drop the zero bands of interior edges and the bottom/right padding.
                a = zero if top > 0 else 0
                b = min(y1 - (zero if top + h < ph else 0), out_h) - y0
                c = zero if left > 0 else 0
                d = min(x1 - (zero if left + w < pw else 0), out_w) - x0
                if b > a and d > c and streamed:
                    _write_centre(piece, write, (a, b, c, d), y0, x0)
                elif b > a and d > c:
                    target = out[..., y0 + a : y0 + b, x0 + c : x0 + d]
                    if subpixel:  # shuffle + skip written straight into the output
                        piece.write_to(target, a, b, c, d)
                    else:
                        target.copy_(piece[..., a:b, c:d])
                continue
            rows = _profile(profiles, h * scale, top > 0, top + h < ph, zero, ramp, out)
            cols = _profile(profiles, w * scale, left > 0, left + w < pw, zero, ramp, out)
            if left == 0:
                row_sum[y0:y1] += rows
            if top == 0:
                col_sum[x0:x1] += cols
            # Crop to the unpadded output: tiles may reach into the bottom/right padding.
            ch, cw = min(y1, out_h) - y0, min(x1, out_w) - x0
            if ch <= 0 or cw <= 0:
                continue
            target = out[..., y0 : y0 + ch, x0 : x0 + cw]
            target.addcmul_(piece[..., :ch, :cw], rows[:ch, None] * cols[None, :cw])
    if streamed:
        return None
    assert out is not None
    if not paste:
        assert row_sum is not None and col_sum is not None
        # The weights are the outer product of row and column profiles, so their sum is too.
        out.div_(row_sum[:out_h, None]).div_(col_sum[None, :out_w])
    return _deliver(out if out.dtype == out_dtype else out.to(out_dtype), write)


def _deliver(out: torch.Tensor, write: WriteFn | None) -> torch.Tensor | None:
    """``out``, or None after passing it whole to ``write``."""
    if write is None:
        return out
    write(out, 0, 0)
    return None


def _write_centre(piece: torch.Tensor | SubpixelOutput, write: WriteFn, crop: Box, y0: int, x0: int) -> None:
    """Pass rows ``crop[0]:crop[1]``, columns ``crop[2]:crop[3]`` of a tile's output at ``(y0, x0)``
    to ``write``: a sub-pixel output is materialised a cache-sized strip at a time into one buffer
    (channels_last for interleaved features, the layout they are fastest to write in)."""
    a, b, c, d = crop
    if not isinstance(piece, SubpixelOutput):
        write(piece[..., a:b, c:d], y0 + a, x0 + c)
        return
    n, channels = piece.shape[:2]
    s = piece.scale
    rows = max(s, STRIP_BYTES // (n * channels * (d - c) * piece.dtype.itemsize) // s * s)
    layout = torch.channels_last if piece.interleaved else torch.contiguous_format
    shape = (n, channels, min(rows, b - a), d - c)
    strip = torch.empty(shape, dtype=piece.dtype, device=piece.skip.device, memory_format=layout)
    for top in range(a, b, rows):
        bottom = min(top + rows, b)
        part = strip[:, :, : bottom - top]
        piece.write_to(part, top, bottom, c, d)
        write(part, y0 + top, x0 + c)


def _profile(
    cache: dict[tuple[int, bool, bool], torch.Tensor],
    length: int,
    start: bool,
    end: bool,
    zero: int,
    ramp: int,
    like: torch.Tensor,
) -> torch.Tensor:
    key = (length, start, end)
    if key not in cache:
        cache[key] = blend_profile(length, zero=zero, ramp=ramp, start=start, end=end).to(like)
    return cache[key]


def is_out_of_memory(error: BaseException) -> bool:
    """True for ``torch.OutOfMemoryError`` and RuntimeErrors whose message says out of memory (CUDA,
    MPS, CPU allocator)."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(m in str(error) for m in OOM_MESSAGES)


def _free_cached_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def tiled_forward_with_fallback(
    fn: TileFn,
    inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    scale: int,
    tile: int | None,
    overlap: int | None = None,
    receptive_field: int,
    size_multiple: int = 1,
    tile_batch: int = 4,
    min_tile: int = 32,
    write: WriteFn | None = None,
) -> tuple[torch.Tensor | None, int | None]:
    """:func:`tiled_forward`, halving the tile on out-of-memory errors. Returns ``(output, tile_used)``
    (output None when ``write`` is given; a retry writes every block again).

    ``tile_used`` is ``None`` when one pass over the whole image worked. Each halving empties the
    CUDA cache and warns. The tile never goes below ``max(min_tile, 2 * overlap + 1)`` (rounded to
    ``size_multiple``); when that size runs out of memory too, a RuntimeError lists the sizes tried.
    """
    tensors = _as_tuple(inputs)
    if overlap is None:
        overlap = default_overlap(receptive_field, size_multiple)
    floor = round_up(max(min_tile, min_tile_size(overlap, size_multiple)), size_multiple)
    side = max(round_up(s, size_multiple) for s in tensors[0].shape[-2:])
    current = tile
    tried: list[str] = []
    while True:
        try:
            out = tiled_forward(
                fn,
                tensors,
                scale=scale,
                tile=current,
                overlap=overlap,
                receptive_field=receptive_field,
                size_multiple=size_multiple,
                tile_batch=tile_batch,
                write=write,
            )
            return out, current
        except (RuntimeError, torch.OutOfMemoryError) as err:
            if not is_out_of_memory(err):
                raise
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
        # Out of the except block: the failed attempt's tensors are released before retrying.
        _free_cached_memory()
        size = side if current is None or current >= side else round_down(current, size_multiple)
        tried.append("whole image" if current is None or current >= side else str(size))
        if size <= floor:
            raise RuntimeError(
                f"out of memory with every tile size tried ({', '.join(tried)}; the smallest allowed is "
                f"{floor}): {message}. Free memory, process fewer images at once, lower tile_batch, "
                "start from a smaller tile (--tile / tile=), or run on the CPU (--device cpu / device='cpu')."
            )
        current = max(round_down(size // 2, size_multiple), floor)
        warnings.warn(f"out of memory with tile {tried[-1]}; retrying with tile {current}", stacklevel=2)
