"""Sub-pixel outputs: in-place writes of shuffle + skip, their use by tiling and the Predictor."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import restore.models as models
from restore.infer import Predictor
from restore.infer.tiling import default_overlap, tiled_forward
from restore.models import subpixel
from restore.models.subpixel import SubpixelOutput, interleaved_order, shuffle_add_nearest


def parts(n: int = 2, c: int = 3, s: int = 4, h: int = 9, w: int = 11, seed: int = 0) -> SubpixelOutput:
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(n, c * s * s, h, w, generator=gen).contiguous(memory_format=torch.channels_last)
    return SubpixelOutput(features, torch.rand(n, c, h, w, generator=gen), s)


def test_materialize_is_pixel_shuffle_plus_nearest_and_shape_matches():
    out = parts()
    expected = F.pixel_shuffle(out.features, 4) + F.interpolate(out.skip, scale_factor=4, mode="nearest")
    assert out.shape == expected.shape == (2, 3, 36, 44) and out.ndim == 4
    assert torch.equal(out.materialize(), expected)
    assert torch.equal(out.batch(1, 2).materialize(), expected[1:2])


def test_compact_shuffle_and_skip_in_one_pass_equal_pixel_shuffle_plus_nearest():
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3 * 16, 5, 7, generator=gen)
    x = torch.rand(2, 3, 5, 7, generator=gen)
    nearest = torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")
    expected = torch.nn.functional.pixel_shuffle(features, 4) + nearest
    for layout in (torch.contiguous_format, torch.channels_last):  # the one-pass path (no autograd)
        out = shuffle_add_nearest(features.contiguous(memory_format=layout), x, 4)
        assert torch.equal(out, expected) and out.is_contiguous()
    # With autograd: the same values, and the gradients of a sum (each feature once, x 16 times).
    leaf_features, leaf_x = features.clone().requires_grad_(), x.clone().requires_grad_()
    out = shuffle_add_nearest(leaf_features, leaf_x, 4)
    assert torch.equal(out, expected) and out.is_contiguous()
    out.sum().backward()
    assert torch.equal(leaf_features.grad, torch.ones_like(features))
    assert torch.equal(leaf_x.grad, torch.full_like(x, 16.0))
    # bf16 features (autocast) with the float32 skip: a float32 sum, no bf16 rounding of the output
    half = features.bfloat16()
    out = shuffle_add_nearest(half, x, 4)
    assert out.dtype == torch.float32
    assert torch.equal(out, torch.nn.functional.pixel_shuffle(half.float(), 4) + nearest)


@pytest.mark.parametrize("strip_bytes", [1, 9000, 2**19])  # input rows per strip: 1, 2 (of 9), all
@pytest.mark.parametrize("crop", [(0, 36, 0, 44), (4, 32, 8, 40), (12, 16, 0, 4)])
def test_write_to_fills_exactly_the_crop_of_a_larger_image(crop, strip_bytes, monkeypatch):
    monkeypatch.setattr(subpixel, "STRIP_BYTES", strip_bytes)
    out = parts()
    top, bottom, left, right = crop
    image = torch.full((2, 3, 60, 70), -7.0)
    y0, x0 = 8, 12  # where the crop lands: any offset in the big image
    target = image[..., y0 : y0 + bottom - top, x0 : x0 + right - left]
    out.write_to(target, top, bottom, left, right)
    assert torch.equal(target, out.materialize()[..., top:bottom, left:right])
    untouched = torch.ones_like(image, dtype=torch.bool)
    untouched[..., y0 : y0 + bottom - top, x0 : x0 + right - left] = False
    assert (image[untouched] == -7.0).all()


def test_write_to_rejects_crops_off_the_grid_and_mismatched_destinations():
    out = parts()
    with pytest.raises(ValueError, match="not on the x4 grid"):
        out.write_to(torch.empty(2, 3, 6, 8), 2, 8, 0, 8)
    with pytest.raises(ValueError, match="does not match the crop"):
        out.write_to(torch.empty(2, 3, 8, 8), 0, 4, 0, 8)


def test_bf16_features_and_float32_skip_sum_in_float32():
    out = parts()
    half = SubpixelOutput(out.features.bfloat16(), out.skip, 4)
    expected = F.pixel_shuffle(out.features.bfloat16().float(), 4) + F.interpolate(out.skip, scale_factor=4)
    target = torch.empty(2, 3, 36, 44)
    half.write_to(target, 0, 36, 0, 44)
    assert half.materialize().dtype == torch.float32
    assert torch.equal(half.materialize(), expected) and torch.equal(target, expected)


def interleaved(out: SubpixelOutput) -> SubpixelOutput:
    """The same output with its feature channels in the interleaved (i, j, c) order."""
    order = interleaved_order(out.skip.shape[1], out.scale)
    features = out.features[:, order].contiguous(memory_format=torch.channels_last)
    return SubpixelOutput(features, out.skip, out.scale, interleaved=True)


def test_interleaved_order_puts_each_sub_pixel_block_in_hwc_order():
    order = interleaved_order(3, 2)  # (c, i, j) -> (i, j, c): index c*4 + i*2 + j
    assert order.tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    out = parts()
    expected = out.materialize()
    assert torch.equal(interleaved(out).materialize(), expected)
    # one input pixel's 4*4*3 features are its output block, row by row, colour last
    block = expected[0, :, 4:8, 8:12].permute(1, 2, 0).reshape(-1)
    assert torch.equal(interleaved(out).features[0, :, 1, 2] + out.skip[0, :, 1, 2].repeat(16), block)


@pytest.mark.parametrize("strip_bytes", [1, 9000, 2**19])
@pytest.mark.parametrize("order", ["shuffle", "interleaved"])
@pytest.mark.parametrize("features_dtype", [torch.float32, torch.bfloat16])
def test_write_to_a_channels_last_image_equals_the_materialised_crop(
    strip_bytes, order, features_dtype, monkeypatch
):
    monkeypatch.setattr(subpixel, "STRIP_BYTES", strip_bytes)
    base = parts()
    base = SubpixelOutput(base.features.to(features_dtype), base.skip, 4)
    out = interleaved(base) if order == "interleaved" else base
    features_before = out.features.clone()
    image = torch.full((2, 3, 60, 70), -7.0).contiguous(memory_format=torch.channels_last)
    target = image[..., 8:36, 12:44]  # crop (4, 32, 8, 40) lands at (8, 12)
    out.write_to(target, 4, 32, 8, 40)
    expected = base.materialize()[..., 4:32, 8:40]  # float32 sum of bf16 features and the skip
    assert expected.dtype == torch.float32
    assert torch.equal(target, expected)
    assert torch.equal(out.features, features_before)  # the skip is added to a copy
    outside = torch.ones_like(image, dtype=torch.bool)
    outside[..., 8:36, 12:44] = False
    assert (image[outside] == -7.0).all()


def test_interleaved_features_with_autograd_give_the_same_sum_and_gradients():
    out = parts(n=1)
    mixed = interleaved(out)
    leaf = mixed.features.clone().requires_grad_()
    result = shuffle_add_nearest(leaf, mixed.skip, 4, interleaved=True)
    assert torch.equal(result, out.materialize())
    (result * torch.arange(result.numel()).view_as(result)).sum().backward()
    weights = torch.arange(result.numel(), dtype=torch.float32).view_as(result)
    # each feature's gradient is the weight of the output pixel it lands on
    expected = interleaved(
        SubpixelOutput(F.pixel_unshuffle(weights, 4), torch.zeros_like(out.skip), 4)
    ).features
    assert torch.equal(leaf.grad, expected)


def test_compact_interleaved_features_are_the_last_conv_rows_reordered():
    torch.manual_seed(0)
    model = models.build("compact_tiny").eval()
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        plain = model.features(x)
        mixed = model.features(x, interleaved=True)
        assert torch.allclose(mixed, plain[:, interleaved_order(3, 4)], atol=1e-6, rtol=0)
        written = model.forward_subpixel(x, interleaved=True)
        assert written.interleaved
        assert torch.allclose(written.materialize(), model(x), atol=1e-6, rtol=0)


def compact_fn(model: torch.nn.Module, subpixel: bool):
    def fn(x: torch.Tensor):
        with torch.inference_mode():
            return model.forward_subpixel(x) if subpixel else model(x)

    return fn


@pytest.mark.parametrize("exact", [True, False])
def test_tiling_with_subpixel_tiles_equals_tiling_with_tensors(exact):
    torch.manual_seed(0)
    model = models.build("compact_tiny").eval()
    x = torch.rand(2, 3, 70, 90, generator=torch.Generator().manual_seed(1))
    rf = model.spec.receptive_field
    # exact: tile centres written in place; blended (ramp): the parts are materialised first
    options = {"scale": 4, "tile": 40, "receptive_field": rf, "overlap": default_overlap(rf, exact=exact)}
    written = tiled_forward(compact_fn(model, True), x, **options, tile_batch=3)
    copied = tiled_forward(compact_fn(model, False), x, **options, tile_batch=3)
    whole = tiled_forward(compact_fn(model, True), x, **{**options, "tile": None})
    assert written.dtype == torch.float32 and written.shape == (2, 3, 280, 360)
    assert torch.equal(written, copied)
    with torch.no_grad():
        reference = model(x)
    assert torch.equal(whole, reference)
    assert (written - reference).abs().max().item() < (1e-6 if exact else 1e-5)


def test_predictor_on_the_cpu_writes_compact_tiles_in_place():
    torch.manual_seed(0)
    model = models.build("compact_tiny")
    predictor = Predictor(model, device="cpu", precision="fp32", tile=48)
    x = torch.rand(1, 3, 100, 130, generator=torch.Generator().manual_seed(2))
    assert isinstance(predictor.forward_tiles(x[..., :48, :48]), SubpixelOutput)
    out = predictor(x)
    assert predictor.last_tile == 48
    with torch.no_grad():
        reference = shuffle_add_nearest(model.features(x.contiguous(memory_format=torch.channels_last)), x, 4)
    assert torch.equal(out, reference)


def test_predictor_calls_forward_when_it_is_not_the_one_forward_subpixel_stands_for():
    from restore.infer.predictor import subpixel_stands_for_forward
    from restore.models.compact import SRVGGNetCompact

    class Brighter(SRVGGNetCompact):  # a subclass that changes forward
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) + 1.0

    torch.manual_seed(0)
    plain = models.build("compact_tiny")
    assert subpixel_stands_for_forward(plain)
    brighter = Brighter(num_feat=8, num_conv=2)
    brighter.spec = plain.spec
    assert not subpixel_stands_for_forward(brighter)
    x = torch.rand(1, 3, 100, 100, generator=torch.Generator().manual_seed(3))
    out = Predictor(brighter, device="cpu", precision="fp32", tile=48)(x)
    with torch.no_grad():
        assert torch.allclose(out, brighter(x), atol=1e-6)  # the +1 was not skipped
    hooked = models.build("compact_tiny")
    calls = []
    hooked.register_forward_hook(lambda module, args, output: calls.append(output.shape))
    assert not subpixel_stands_for_forward(hooked)
    Predictor(hooked, device="cpu", precision="fp32", tile=48)(x)
    assert len(calls) == 9  # the hook saw every tile (3 x 3 tiles)
    patched = models.build("compact_tiny")
    patched.forward = lambda t: torch.zeros(1)  # an instance attribute wins over the class
    assert not subpixel_stands_for_forward(patched)
