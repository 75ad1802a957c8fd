"""The weight-free push-pull inpainting model (the offline default of restore.inpaint)."""

from __future__ import annotations

import torch

import restore.models as models
from restore.models.pushpull import push_pull_fill


def holes(n: int, size: int) -> torch.Tensor:
    mask = torch.zeros(n, 1, size, size)
    mask[..., 10:22, 14:30] = 1
    return mask


def test_known_pixels_are_kept_and_constants_filled_exactly():
    image = torch.full((2, 3, 40, 48), 0.3)
    image[1] = 0.7
    mask = torch.zeros(2, 1, 40, 48)
    mask[..., 10:22, 14:30] = 1
    noisy = image.clone()
    noisy[mask.expand_as(noisy) > 0] = 0.0  # the hole content must not matter
    out = models.build("pushpull_inpaint")(noisy, mask)
    torch.testing.assert_close(out, image, atol=1e-6, rtol=0)


def test_a_linear_ramp_is_filled_close_to_harmonic():
    ramp = torch.linspace(0, 1, 48).expand(1, 3, 48, 48).contiguous()
    mask = holes(1, 48)
    out = push_pull_fill(ramp * (1 - mask), mask, smooth_steps=256)
    inside = mask.expand_as(out) > 0
    assert (out - ramp).abs()[inside].max() < 0.01  # the harmonic fill of a linear ramp is the ramp
    assert torch.equal(out[~inside], ramp[~inside])


def test_beats_mean_fill_on_a_natural_image(natural_pair):
    clean, _ = natural_pair
    mask = holes(1, 256)
    out = models.build("pushpull_inpaint")(clean * (1 - mask), mask)
    mean_fill = (clean * (1 - mask)).sum((-2, -1), keepdim=True) / (1 - mask).sum()
    err = ((out - clean) ** 2 * mask).sum()
    err_mean = ((mean_fill - clean) ** 2 * mask).sum()
    assert err < 0.5 * err_mean


def test_autocast_does_not_change_the_result():
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    mask = holes(1, 32)
    model = models.build("pushpull_inpaint")
    plain = model(image, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = model(image, mask)
    assert cast.dtype == torch.float32 and torch.equal(cast, plain)
