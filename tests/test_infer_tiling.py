"""Tiled inference: tile boxes, blending weights, tiled == whole-image output, seams, OOM fallback."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import restore.models as models
from restore.infer.tiling import (
    blend_profile,
    blend_window,
    default_overlap,
    default_ramp,
    is_out_of_memory,
    tile_boxes,
    tiled_forward,
    tiled_forward_with_fallback,
)


def coverage(height: int, width: int, boxes) -> torch.Tensor:
    count = torch.zeros(height, width, dtype=torch.int64)
    for top, left, h, w in boxes:
        count[top : top + h, left : left + w] += 1
    return count


def axis_starts(boxes, axis: int) -> list[int]:
    return sorted({box[axis] for box in boxes})


@pytest.mark.parametrize(
    ("height", "width", "tile", "overlap"),
    [
        (67, 93, 32, 10),  # remainders on both axes
        (64, 96, 32, 0),  # exact multiples, no overlap
        (88, 120, 32, 4),  # exact multiples of the step (32 - 4 = 28): 28*3 + 4 = 88
        (65, 33, 32, 0),  # 1-pixel remainders
        (65, 33, 32, 8),
        (20, 30, 64, 8),  # image smaller than the tile
        (20, 300, 64, 16),  # smaller on one axis only
        (1, 1, 1, 0),
        (5, 7, 2, 1),  # step 1
    ],
)
def test_tile_boxes_cover_every_pixel_with_equal_tiles_inside_the_image(height, width, tile, overlap):
    boxes = tile_boxes(height, width, tile, overlap)
    shapes = {(h, w) for _, _, h, w in boxes}
    assert len(shapes) == 1
    (th, tw), = shapes
    for top, left, h, w in boxes:
        assert 0 <= top and top + h <= height and 0 <= left and left + w <= width
    assert (coverage(height, width, boxes) >= 1).all()
    assert len(set(boxes)) == len(boxes)
    for axis, length, side in ((0, height, th), (1, width, tw)):
        starts = axis_starts(boxes, axis)
        assert starts[0] == 0 and starts[-1] + side == length  # the last tile ends on the border
        # Neighbours share at least `overlap` pixels, and the grid is no denser than needed.
        assert all(b - a <= side - overlap for a, b in zip(starts, starts[1:], strict=False))
        count = 1 if tile >= length else math.ceil((length - overlap) / (tile - overlap))
        assert len(starts) == count
        if count == 1:
            assert side == length
        else:  # the smallest side that lets `count` tiles cover the axis, never above `tile`
            assert side <= tile and count * (side - overlap) + overlap >= length
            assert count * (side - 1 - overlap) + overlap < length
            steps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
            assert max(steps) - min(steps) <= 1  # spread evenly
    assert len(boxes) == len(axis_starts(boxes, 0)) * len(axis_starts(boxes, 1))


def test_tile_boxes_positions():
    assert tile_boxes(65, 40, 32, 0) == [(t, l, 22, 20) for t in (0, 21, 43) for l in (0, 20)]
    assert tile_boxes(67, 20, 32, 10) == [(0, 0, 29, 20), (19, 0, 29, 20), (38, 0, 29, 20)]
    assert tile_boxes(10, 12, 16, 4) == [(0, 0, 10, 12)]
    # The CPU cache tile on a 2000x1500 image: 5 x 7 tiles of 316 x 303 compute 1.117x the image's
    # pixels (5 x 7 tiles of 320 x 320, the last of each row and column pushed back, computed 1.195x).
    boxes = tile_boxes(1500, 2000, 320, 20)
    assert len(boxes) == 35 and {b[2:] for b in boxes} == {(316, 303)}
    assert sum(h * w for _, _, h, w in boxes) / (1500 * 2000) == pytest.approx(1.117, abs=1e-3)


@pytest.mark.parametrize(("height", "width", "tile", "overlap", "multiple"),
                         [(96, 136, 48, 16, 8), (64, 200, 64, 8, 8), (600, 48, 200, 24, 4)])
def test_tile_boxes_stay_on_the_size_multiple(height, width, tile, overlap, multiple):
    boxes = tile_boxes(height, width, tile, overlap, multiple)
    assert all(v % multiple == 0 for box in boxes for v in box)
    assert (coverage(height, width, boxes) >= 1).all()
    for axis, side in ((0, boxes[0][2]), (1, boxes[0][3])):
        starts = axis_starts(boxes, axis)
        assert side <= tile and all(b - a <= side - overlap for a, b in zip(starts, starts[1:], strict=False))


@pytest.mark.parametrize(("args", "match"), [((10, 10, 8, 8), "overlap"), ((10, 10, 0, 0), "tile"),
                                             ((0, 10, 8, 2), "height"), ((10, 10, 8, -1), "overlap")])
def test_tile_boxes_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        tile_boxes(*args)


@pytest.mark.parametrize(("zero", "ramp"), [(4, 8), (40, 32), (0, 8), (3, 0)])
def test_blend_profile_zero_band_hann_ramp_and_border(zero, ramp):
    length = 2 * (zero + ramp) + 10
    w = blend_profile(length, zero=zero, ramp=ramp).double()
    assert w.dtype == torch.float64 and w.shape == (length,)
    assert (w[:zero] == 0).all() and (w[length - zero :] == 0).all()
    assert (w[zero + ramp : length - zero - ramp] == 1).all()
    rise = w[zero : zero + ramp]
    expected = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(ramp, dtype=torch.float64) + 0.5) / max(ramp, 1))
    torch.testing.assert_close(rise, expected, atol=1e-7, rtol=0)
    assert torch.equal(w, w.flip(0))
    if ramp:  # smooth: no step larger than the Hann slope allows
        assert (w[1:] - w[:-1]).abs().max() <= math.sin(math.pi / (2 * ramp)) + 1e-7
    border = blend_profile(length, zero=zero, ramp=ramp, start=False, end=True)
    assert (border[: length // 2] == 1).all() and torch.equal(border[length // 2 :], w[length // 2 :].float())
    assert (blend_profile(length, zero=zero, ramp=ramp, start=False, end=False) == 1).all()


@pytest.mark.parametrize(("zero", "ramp"), [(4, 8), (10, 5), (0, 1)])
def test_neighbouring_profiles_sum_to_one_over_an_overlap_of_two_zero_bands_plus_the_ramp(zero, ramp):
    tile, overlap = 64, 2 * zero + ramp
    a = blend_profile(tile, zero=zero, ramp=ramp)
    b = blend_profile(tile, zero=zero, ramp=ramp)
    total = torch.zeros(2 * tile - overlap)
    total[:tile] += a
    total[tile - overlap :] += b
    shared = total[tile - overlap : tile]
    torch.testing.assert_close(shared, torch.ones_like(shared), atol=1e-6, rtol=0)


def test_blend_window_is_the_outer_product_of_the_profiles_with_border_edges_at_one():
    window = blend_window(40, 50, zero=3, ramp=6, interior=(False, True, True, False))
    assert window.shape == (40, 50)
    assert (window[:, :3] == 0).all() and (window[-3:, :] == 0).all()
    assert (window[0, 9:] == 1).all() and (window[:31, -1] == 1).all()
    rows = blend_profile(40, zero=3, ramp=6, start=False, end=True)
    cols = blend_profile(50, zero=3, ramp=6, start=True, end=False)
    torch.testing.assert_close(window, rows[:, None] * cols[None, :], atol=0, rtol=0)


class CountingFn:
    """Wraps a model; records the shape of every batch of tiles it is called with."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.calls: list[tuple[tuple[int, ...], ...]] = []

    def __call__(self, *tiles: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(tuple(t.shape) for t in tiles))
        return self.model(*tiles)


def build(name: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return models.build(name, **overrides).eval()


# (model, overrides, tile, batch, odd size): tiles above the overlap 2*rf + ramp (28, 45, 60 pixels).
EXACT_CASES = [
    ("compact_tiny", {}, 40, 2, (67, 93)),
    ("edsr_tiny", {}, 64, 2, (67, 93)),
    ("rrdbnet_small", {"scale": 2}, 80, 1, (99, 125)),
]


@pytest.mark.parametrize(("name", "overrides", "tile", "batch", "size"), EXACT_CASES)
def test_tiled_equals_whole_image(name, overrides, tile, batch, size):
    model = build(name, **overrides)
    spec = model.spec
    height, width = size
    x = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(1))
    kwargs = dict(scale=spec.scale, receptive_field=spec.receptive_field, size_multiple=spec.size_multiple)
    fn = CountingFn(model)
    with torch.inference_mode():
        whole = tiled_forward(model, x, tile=None, **kwargs)
        tiled = tiled_forward(fn, x, tile=tile, tile_batch=4, **kwargs)
        if spec.size_multiple == 1:
            torch.testing.assert_close(whole, model(x), atol=0, rtol=0)
        else:  # rrdbnet x2 pixel-unshuffles: one pass pads to even sides; compare on an even crop
            even = x[..., :66, :92]
            torch.testing.assert_close(tiled_forward(model, even, tile=None, **kwargs), model(even))
    assert tiled.shape == (batch, 3, height * spec.scale, width * spec.scale) and tiled.dtype == torch.float32
    diff = (tiled - whole).abs().max().item()
    assert diff < 1e-5, f"{name}: tiled differs from whole by {diff:.2e}"  # float rounding only
    # Equal tiles on the model's grid, batched: 4 crops per call (2 boxes x 2 images, or 4 boxes x 1).
    overlap = default_overlap(spec.receptive_field, spec.size_multiple)
    padded = [-(-side // spec.size_multiple) * spec.size_multiple for side in size]
    boxes = tile_boxes(*padded, tile, overlap, spec.size_multiple)
    assert len(boxes) >= 6 and all(v % spec.size_multiple == 0 for box in boxes for v in box)
    assert {c[0][1:] for c in fn.calls} == {(3, *boxes[0][2:])} and max(c[0][0] for c in fn.calls) == 4
    assert sum(c[0][0] for c in fn.calls) == batch * len(boxes)
    assert len(fn.calls) == math.ceil(batch * len(boxes) / 4)


def test_too_small_an_overlap_is_not_exact():
    """The zero bands are what make tiling exact: with overlap 4 < receptive field the error shows."""
    model = build("compact_tiny")
    x = torch.rand(1, 3, 67, 93, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode(), pytest.warns(UserWarning, match="not exact"):
        tiled = tiled_forward(model, x, scale=4, tile=40, overlap=4, receptive_field=10)
    assert (tiled - model(x)).abs().max() > 1e-3


def test_two_inputs_are_cut_with_the_same_boxes_lama():
    model = build("lama_small")
    gen = torch.Generator().manual_seed(2)
    image = torch.rand(1, 3, 67, 93, generator=gen)
    mask = torch.zeros(1, 1, 67, 93)
    mask[..., 20:45, 30:70] = 1
    fn = CountingFn(model)
    # LaMa's Fourier units see the whole tile, so no overlap is exact: a small one, with a warning.
    with torch.inference_mode(), pytest.warns(UserWarning, match="not exact"):
        out = tiled_forward(
            fn, (image, mask), scale=1, tile=32, overlap=16, receptive_field=128, size_multiple=8
        )
    assert out.shape == (1, 3, 67, 93) and torch.isfinite(out).all()
    assert all(shapes[0][1:] == (3, 32, 32) and shapes[1][1:] == (1, 32, 32) for shapes in fn.calls)
    assert sum(shapes[0][0] for shapes in fn.calls) == 4 * 5  # padded 72x96: 4 rows x 5 columns of tiles
    known = (mask == 0).expand_as(image)
    # LaMa composites known pixels from its input: only true if every mask tile matched its image tile.
    torch.testing.assert_close(out[known], image[known], atol=1e-6, rtol=0)
    assert (out[~known] - image[~known]).abs().mean() > 1e-3  # the hole was filled, not copied


def test_inputs_must_share_n_h_w():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match=r"inputs\[1\]"):
        tiled_forward(lambda a, b: a, (x, torch.rand(1, 1, 16, 15)), scale=1, tile=None, receptive_field=1)
    with pytest.raises(ValueError, match="4-D"):
        tiled_forward(lambda a: a, x[0], scale=1, tile=None, receptive_field=1)
    with pytest.raises(ValueError, match="larger than the overlap"):
        tiled_forward(lambda a: a, torch.rand(1, 3, 64, 64), scale=1, tile=16, receptive_field=8)
    with pytest.raises(ValueError, match="fn returned shape"):
        tiled_forward(lambda a: a, x, scale=2, tile=None, receptive_field=1)


def test_output_dtype_and_channels_come_from_fn():
    x = torch.rand(1, 3, 40, 50)
    out = tiled_forward(lambda a: a[:, :1].double() * 2, x, scale=1, tile=24, receptive_field=0, overlap=8)
    assert out.dtype == torch.float64 and out.shape == (1, 1, 40, 50)
    torch.testing.assert_close(out, x[:, :1].double() * 2)


def mean_filter(x: torch.Tensor) -> torch.Tensor:
    """9x9 box filter with zero padding: receptive field 4, zero padding darkens tile edges."""
    return F.avg_pool2d(x, 9, stride=1, padding=4)


def test_no_seams_when_the_receptive_field_exceeds_the_declared_one():
    import skimage.data

    image = skimage.data.astronaut()[:96, 160:288].astype(np.float32) / 255
    x = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()
    whole = mean_filter(x)
    # Declared receptive field 1 (true: 4): overlap 2*1 + 8 = 10 input pixels.
    blended = tiled_forward(mean_filter, x, scale=1, tile=32, receptive_field=1)
    with pytest.warns(UserWarning, match="not exact"):
        pasted = tiled_forward(mean_filter, x, scale=1, tile=32, overlap=0, receptive_field=1)  # crop+paste
    exact = tiled_forward(mean_filter, x, scale=1, tile=32, receptive_field=4)

    def steps(out: torch.Tensor) -> float:
        """Largest jump of the error between neighbouring pixels (a seam is a jump)."""
        err = out - whole
        across = (err[..., 1:] - err[..., :-1]).abs().max()
        down = (err[..., 1:, :] - err[..., :-1, :]).abs().max()
        return max(across.item(), down.item())

    assert (exact - whole).abs().max() < 1e-6
    blended_err, pasted_err = (blended - whole).abs().max().item(), (pasted - whole).abs().max().item()
    assert blended_err < 0.1 * pasted_err, (blended_err, pasted_err)
    assert steps(blended) < 0.3 * steps(pasted), (steps(blended), steps(pasted))
    # Column-mean gradient magnitude against the whole image's: crop-and-paste adds a step at each
    # tile edge (32, 64, 96) larger than the image's own mean gradient; blending stays well below it.
    grad = lambda out: (out[..., 1:] - out[..., :-1]).abs().mean(dim=(0, 1, 2))  # noqa: E731
    g_whole = grad(whole)
    excess_paste = (grad(pasted) - g_whole).abs()
    excess_blend = (grad(blended) - g_whole).abs()
    assert all((excess_paste[edge - 3 : edge + 2] > g_whole.mean()).any() for edge in (32, 64, 96))
    assert excess_blend.max() < 0.25 * excess_paste.max(), (excess_blend.max(), excess_paste.max())


def conv_fn(limit: int | None, calls: list[int], weight: torch.Tensor):
    """A 5x5 conv (receptive field 2) that 'runs out of memory' on tiles with a side above ``limit``."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls.append(max(x.shape[-2:]))
        if limit is None or max(x.shape[-2:]) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return F.conv2d(x, weight, padding=2)

    return fn


def test_out_of_memory_halves_the_tile_and_matches_the_whole_image():
    x = torch.rand(1, 3, 67, 93, generator=torch.Generator().manual_seed(3))
    weight = torch.randn(3, 3, 5, 5, generator=torch.Generator().manual_seed(4)) / 25
    calls: list[int] = []
    with pytest.warns(UserWarning, match="out of memory") as record:
        out, used = tiled_forward_with_fallback(
            conv_fn(36, calls, weight), x, scale=1, tile=None, receptive_field=2
        )
    # Whole image (93) -> 46 -> 23, raised to the floor max(min_tile=32, 2*overlap+1=25) = 32. Tiles
    # are balanced below the tile: at 46, 2 x 3 tiles of 40 x 39; at 32, 3 x 5 tiles of 31 x 29.
    assert used == 32 and calls[0] == 93 and 40 in calls and calls[-1] == 31
    assert [str(w.message).rsplit(" ", 1)[-1] for w in record] == ["46", "32"]
    torch.testing.assert_close(out, F.conv2d(x, weight, padding=2), atol=1e-6, rtol=0)


def test_runtime_error_messages_count_as_out_of_memory_too():
    x = torch.rand(1, 3, 64, 64)

    def fn(t: torch.Tensor) -> torch.Tensor:
        if t.shape[-1] > 40:
            raise RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be reported later")
        return t * 2

    with pytest.warns(UserWarning):
        out, used = tiled_forward_with_fallback(fn, x, scale=1, tile=64, receptive_field=1, min_tile=16)
    assert used == 32
    torch.testing.assert_close(out, x * 2)


def test_always_out_of_memory_raises_a_clear_error():
    calls: list[int] = []
    x = torch.rand(1, 3, 67, 93)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="out of memory") as info:
            tiled_forward_with_fallback(
                conv_fn(None, calls, torch.zeros(3, 3, 5, 5)), x, scale=1, tile=None, receptive_field=2
            )
    message = str(info.value)
    assert "whole image, 46, 32" in message and "--tile" in message and "device='cpu'" in message
    assert sorted(set(calls), reverse=True) == [93, 40, 31]  # tiles 46 and 32, balanced (above)


def test_other_errors_are_not_retried():
    calls: list[int] = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        raise RuntimeError("Given groups=1, weight of size [3, 4, 3, 3], expected input to have 4 channels")

    with pytest.raises(RuntimeError, match="expected input"):
        tiled_forward_with_fallback(fn, torch.rand(1, 3, 64, 64), scale=1, tile=None, receptive_field=1)
    assert calls == [1]


def test_is_out_of_memory():
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    cpu = "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried"
    assert is_out_of_memory(RuntimeError(cpu))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_default_overlap_leaves_room_for_two_zero_bands_and_the_ramp():
    for rf in (0, 1, 10, 18, 24, 128):
        assert default_overlap(rf) == 2 * rf + default_ramp(rf)
        assert default_overlap(rf, 8) % 8 == 0 and default_overlap(rf, 8) >= default_overlap(rf)


def test_exact_overlap_is_twice_the_receptive_field_without_a_ramp():
    assert default_overlap(10, exact=True) == 20 and default_overlap(10) == 28
    assert default_overlap(9, 4, exact=True) == 20  # rounded up to the size multiple


def test_exact_overlap_pastes_each_output_pixel_from_one_tile():
    """overlap == 2 * receptive_field: no ramp, so every output pixel is one tile's value, unmixed."""
    calls: list[int] = []

    def tile_id(t: torch.Tensor) -> torch.Tensor:
        calls.append(len(calls))
        return torch.full((t.shape[0], 1, t.shape[-2] * 2, t.shape[-1] * 2), float(len(calls)))

    x = torch.rand(1, 3, 61, 75)
    pasted = tiled_forward(tile_id, x, scale=2, tile=24, overlap=8, receptive_field=4, tile_batch=1)
    assert torch.equal(pasted, pasted.round()) and set(pasted.unique().tolist()) == {c + 1.0 for c in calls}
    # Tile k (called k-th) owns the output pixels at least receptive_field * scale = 8 output pixels
    # from its interior edges; where two shifted tiles both own a pixel the later one is pasted last.
    boxes = tile_boxes(61, 75, 24, 8)
    expected = torch.zeros(122, 150)
    for k, (top, left, h, w) in enumerate(boxes, start=1):
        y0 = top * 2 + (8 if top > 0 else 0)
        y1 = (top + h) * 2 - (8 if top + h < 61 else 0)
        x0 = left * 2 + (8 if left > 0 else 0)
        x1 = (left + w) * 2 - (8 if left + w < 75 else 0)
        expected[y0:y1, x0:x1] = k
    assert expected.min() > 0  # the owned regions cover the output
    torch.testing.assert_close(pasted[0, 0], expected, atol=0, rtol=0)
    calls.clear()
    blended = tiled_forward(tile_id, x, scale=2, tile=24, overlap=10, receptive_field=4, tile_batch=1)
    assert not torch.equal(blended, blended.round())  # a ramp mixes neighbours


@pytest.mark.parametrize(
    ("name", "tile", "size"), [("compact_tiny", 41, (67, 93)), ("edsr_tiny", 81, (99, 125))]
)
def test_exact_tiling_equals_the_whole_image(name, tile, size):
    model = build(name)
    spec = model.spec
    assert spec.exact_tiling
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(2))
    overlap = default_overlap(spec.receptive_field, spec.size_multiple, exact=True)
    with torch.inference_mode():
        whole = model(x)
        tiled = tiled_forward(
            model, x, scale=spec.scale, tile=tile, overlap=overlap, receptive_field=spec.receptive_field
        )
    assert len(tile_boxes(*size, tile, overlap)) >= 6
    diff = (tiled - whole).abs().max().item()
    assert diff < 1e-5, f"{name}: tiled differs from whole by {diff:.2e}"


class Canvas:
    """A ``write`` callback of tiled_forward: pastes every block and counts the writes of each pixel."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.image = torch.full(shape, float("nan"))
        self.writes = torch.zeros(shape[-2:], dtype=torch.int64)
        self.blocks = 0

    def __call__(self, block: torch.Tensor, top: int, left: int) -> None:
        h, w = block.shape[-2:]
        self.image[..., top : top + h, left : left + w] = block
        self.writes[top : top + h, left : left + w] += 1
        self.blocks += 1


@pytest.mark.parametrize(
    ("name", "subpixel", "exact", "tile"),
    [
        ("compact_tiny", True, True, 41),  # sub-pixel tile centres, streamed in strips
        ("edsr_tiny", False, True, 81),  # tensor tile centres, streamed
        ("compact_tiny", False, False, 60),  # blended: the finished output, once
        ("compact_tiny", True, True, None),  # one pass: the whole output, once
    ],
)
def test_write_receives_the_output_block_by_block_covering_every_pixel(
    name, subpixel, exact, tile, monkeypatch
):
    import restore.infer.tiling as tiling

    monkeypatch.setattr(tiling, "STRIP_BYTES", 3 * 4 * 164 * 12)  # 12-row strips of a 41-pixel tile
    model = build(name)
    spec = model.spec
    fn = model.forward_subpixel if subpixel else model
    x = torch.rand(1, 3, 67, 93, generator=torch.Generator().manual_seed(3))
    kwargs = dict(
        scale=spec.scale,
        tile=tile,
        overlap=default_overlap(spec.receptive_field, exact=exact),
        receptive_field=spec.receptive_field,
    )
    canvas = Canvas((1, 3, 67 * spec.scale, 93 * spec.scale))
    with torch.inference_mode():
        expected = tiled_forward(fn, x, **kwargs)
        assert tiled_forward(fn, x, write=canvas, **kwargs) is None
        retried, used = tiled_forward_with_fallback(fn, x, write=canvas, **kwargs)
    assert retried is None and used == tile
    # every pixel in each call; neighbouring tile centres may share a few rows (the later one wins)
    assert canvas.writes.min() >= 2 and (canvas.writes.max() == 2 or exact)
    torch.testing.assert_close(canvas.image, expected, atol=0, rtol=0)
    boxes = len(tile_boxes(67, 93, tile, kwargs["overlap"])) if tile else 1
    if exact and tile:  # one block per tile centre, or several strips of each
        assert canvas.blocks > 2 * boxes if subpixel else canvas.blocks == 2 * boxes
    else:
        assert canvas.blocks == 2
