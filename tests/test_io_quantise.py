"""QuantisedImage: model output blocks -> an image's HWC pixels, equal to quantising the whole output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restore.io import quantise
from restore.io.quantise import QuantisedImage, rgb_to_gray

DEPTHS = [(8, 255.0, torch.uint8), (16, 65535.0, torch.int32), (32, None, torch.float32)]


def whole_image_reference(output: torch.Tensor, scale: float | None) -> torch.Tensor:
    """(1, C, H, W) -> (H, W, C): clamp, then scale and round with torch.round (ties to even)."""
    hwc = output[0].permute(1, 2, 0).clamp(0, 1)
    return hwc if scale is None else hwc.mul(scale).round()


def random_output(channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Float output overshooting [0, 1] on both sides, as a model's does."""
    return torch.rand(1, channels, height, width, generator=torch.Generator().manual_seed(seed)) * 1.2 - 0.1


@pytest.mark.parametrize(("bit_depth", "scale", "dtype"), DEPTHS)
@pytest.mark.parametrize("block_bytes", [1, 700, 2**19])  # rows per block: 1, a few, all
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_blocks_written_anywhere_equal_the_whole_image_quantised(
    bit_depth, scale, dtype, block_bytes, layout, monkeypatch
):
    monkeypatch.setattr(quantise, "QUANTISE_BLOCK_BYTES", block_bytes)
    output = random_output(3, 23, 17, seed=1)
    image = QuantisedImage(23, 17, bit_depth=bit_depth, gray=False, alpha=False)
    for top, bottom, left, right in [(0, 9, 0, 17), (9, 23, 0, 5), (9, 23, 5, 17)]:  # uneven pieces
        block = output[..., top:bottom, left:right].contiguous(memory_format=layout)
        image.write(block, top, left)
    assert image.pixels.dtype == dtype and image.pixels.shape == (23, 17, 3) and image.size == (23, 17)
    assert torch.equal(image.pixels.double(), whole_image_reference(output, scale).double())


@pytest.mark.parametrize(("bit_depth", "scale", "dtype"), DEPTHS[:2])
def test_rounding_is_torch_round_at_every_tie_and_both_ends(bit_depth, scale, dtype):
    levels = torch.arange(int(scale) + 1, dtype=torch.float64)
    values = torch.cat(
        [levels / scale, (levels + 0.5) / scale, (levels - 0.5) / scale, torch.rand(5000).double()]
    )
    x = values.float()
    expected = x.clamp(0, 1).mul(scale).round()
    assert torch.equal(quantise.quantise(x.clamp(0, 1), bit_depth).double(), expected.double())
    if bit_depth == 8:  # the offset's bits left in: the uint8 conversion keeps the value's low byte
        bits = quantise._round_(x.clamp(0, 1), 8, keep_offset=True)
        assert bits.min() > 255 and torch.equal(bits.to(torch.uint8).double(), expected.double())
    image = QuantisedImage(1, x.numel(), bit_depth=bit_depth, gray=True, alpha=False)
    image.write(x.view(1, 1, 1, -1), 0, 0)
    assert torch.equal(image.pixels[0, :, 0].double(), expected.double())
    assert image.pixels.min() == 0 and image.pixels.max() == scale  # -0.5/scale clamps to 0, 1.5 to max


def test_gray_takes_the_luma_of_clamped_colours_and_one_channel_output_is_spread():
    output = random_output(3, 8, 6, seed=2)
    gray = QuantisedImage(8, 6, bit_depth=8, gray=True, alpha=False)
    gray.write(output, 0, 0)
    luma = rgb_to_gray(output.clamp(0, 1))
    assert gray.pixels.shape == (8, 6, 1)
    assert torch.equal(gray.pixels.double(), whole_image_reference(luma, 255.0).double())
    color = QuantisedImage(8, 6, bit_depth=8, gray=False, alpha=False)
    color.write(luma, 0, 0)  # a 1-channel model output for an RGB source
    assert torch.equal(color.pixels, gray.pixels.expand(-1, -1, 3))


def test_alpha_is_the_last_channel_and_colours_are_untouched():
    image = QuantisedImage(5, 4, bit_depth=16, gray=False, alpha=True)
    output, alpha = random_output(3, 5, 4, seed=3), random_output(1, 5, 4, seed=4)
    image.write(output, 0, 0)
    image.write_alpha(alpha)
    assert image.pixels.shape == (5, 4, 4)
    expected = whole_image_reference(torch.cat([output, alpha], dim=1), 65535.0)
    assert torch.equal(image.pixels.double(), expected.double())


def test_bad_blocks_are_refused_with_the_reason():
    image = QuantisedImage(6, 6, bit_depth=8, gray=False, alpha=False)
    nan = torch.full((1, 3, 2, 2), 0.5)
    nan[0, 1, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        image.write(nan, 0, 0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        image.write(torch.full((1, 3, 2, 2), float("-inf")), 0, 0)
    with pytest.raises(ValueError, match=r"a 2x4 block at \(5, 0\) does not fit the 6x6 image"):
        image.write(torch.zeros(1, 3, 2, 4), 5, 0)
    with pytest.raises(ValueError, match=r"block must be \(1, 3, h, w\)"):
        image.write(torch.zeros(2, 3, 2, 2), 0, 0)
    with pytest.raises(ValueError, match="floating-point"):
        image.write(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), 0, 0)
    with pytest.raises(ValueError, match="no alpha channel"):
        image.write_alpha(torch.zeros(1, 1, 6, 6))
    with pytest.raises(ValueError, match=r"alpha must have shape \(1, 1, 6, 6\)"):
        QuantisedImage(6, 6, bit_depth=8, gray=False, alpha=True).write_alpha(torch.zeros(1, 1, 3, 6))
    with pytest.raises(ValueError, match="bit_depth must be 8, 16 or 32"):
        QuantisedImage(6, 6, bit_depth=12, gray=False, alpha=False)


def test_the_rounding_offset_is_the_float_whose_bits_it_names():
    bits = np.array([quantise.ROUNDING_OFFSET], np.float32).view(np.int32)[0]
    assert bits == quantise.ROUNDING_OFFSET_BITS and quantise.ROUNDING_OFFSET == 1.5 * 2**23


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_all_finite_sees_nan_and_both_infinities_in_either_layout(layout):
    x = torch.rand(2, 3, 5, 7).contiguous(memory_format=layout)
    assert (
        quantise.all_finite(x) and quantise.all_finite(x.bfloat16()) and quantise.all_finite(x[..., 1:4, 2:6])
    )
    image = QuantisedImage(5, 7, bit_depth=8, gray=False, alpha=False)
    for bad in (float("nan"), float("inf"), -float("inf")):
        y = x.clone(memory_format=torch.preserve_format)
        y[1, 2, 4, 6] = bad
        assert not quantise.all_finite(y), bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            image.write(y[1:], 0, 0)
