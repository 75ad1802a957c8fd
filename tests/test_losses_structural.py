"""SSIM family, edge and frequency losses against scikit-image, pytorch-msssim, kornia and the
focal-frequency-loss package."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_msssim
import torch
from focal_frequency_loss import FocalFrequencyLoss as ReferenceFFL
from skimage.metrics import structural_similarity

import losses
from losses.frequency import fft_loss, focal_frequency_loss
from losses.gradient import _laplacian_5x5, gradient_loss
from losses.structural import ms_ssim, s3im, ssim


def _skimage_ssim(pred: torch.Tensor, target: torch.Tensor, **kwargs) -> float:
    a = pred[0].permute(1, 2, 0).double().numpy()
    b = target[0].permute(1, 2, 0).double().numpy()
    return structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=2,
        **kwargs,
    )


def test_ssim_matches_skimage_on_natural_image(natural_pair):
    clean, degraded = natural_pair
    ours = float(ssim(degraded, clean))
    assert 0.3 < ours < 0.95
    assert abs(ours - _skimage_ssim(degraded, clean)) <= 1e-4


def test_ssim_grayscale_and_data_range_255_match_skimage(natural_pair):
    clean, degraded = natural_pair
    gray_c, gray_d = clean.mean(1, keepdim=True), degraded.mean(1, keepdim=True)
    ref = structural_similarity(
        gray_d[0, 0].double().numpy() * 255,
        gray_c[0, 0].double().numpy() * 255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255.0,
    )
    assert abs(float(ssim(gray_d * 255, gray_c * 255, data_range=255.0)) - ref) <= 1e-4


def test_ssim_and_ms_ssim_match_pytorch_msssim(natural_batch):
    clean, degraded = natural_batch
    assert torch.allclose(
        ssim(degraded, clean), pytorch_msssim.ssim(degraded, clean, data_range=1.0), atol=1e-5
    )
    per_image = ssim(degraded, clean, reduction="none")
    ref = pytorch_msssim.ssim(degraded, clean, data_range=1.0, size_average=False)
    assert per_image.shape == (2,)
    assert torch.allclose(per_image, ref, atol=1e-5)
    ours_ms = ms_ssim(degraded, clean)
    ref_ms = pytorch_msssim.ms_ssim(degraded, clean, data_range=1.0)
    assert 0.5 < float(ours_ms) < 0.99
    assert abs(float(ours_ms) - float(ref_ms)) <= 1e-4


def test_ms_ssim_gradient_matches_pytorch_msssim_where_correlated(natural_batch):
    clean, degraded = natural_batch
    a = degraded.clone().requires_grad_()
    b = degraded.clone().requires_grad_()
    ms_ssim(a, clean).backward()
    pytorch_msssim.ms_ssim(b, clean, data_range=1.0).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-7, rtol=1e-3)


def test_ms_ssim_anti_correlated_has_finite_live_gradient():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 192, 192, generator=gen).requires_grad_()
    target = 1.0 - x.detach()
    value = ms_ssim(x, target)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0  # not dead
    # pytorch-msssim's ReLU leaves no gradient at all here
    y = x.detach().clone().requires_grad_()
    pytorch_msssim.ms_ssim(y, target, data_range=1.0).backward()
    assert y.grad is None or y.grad.abs().sum() == 0


def test_ssim_padding_same_and_valid_differ_and_same_keeps_size():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 1, 1, 32, 32, generator=gen)
    assert float(ssim(x, y, padding="same")) != pytest.approx(float(ssim(x, y, padding="valid")))
    with pytest.raises(ValueError, match="smaller than the 11-pixel window"):
        ssim(x[..., :8, :8], y[..., :8, :8])
    with pytest.raises(ValueError, match="padding"):
        ssim(x, y, padding="reflect")
    with pytest.raises(ValueError, match="too small"):
        ms_ssim(x, y)


def test_ssim_in_float32_under_half_autocast(natural_pair):
    clean, degraded = natural_pair
    reference = float(ssim(degraded, clean))
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cpu", dtype=dtype):
            value = ssim(degraded.to(dtype), clean.to(dtype))
        assert value.dtype == torch.float32
        # the inputs themselves were rounded to half: only that error remains
        assert abs(float(value) - reference) < 5e-3


def test_ssim_loss_entry_is_one_minus_ssim_and_zero_at_identity(natural_pair):
    clean, degraded = natural_pair
    loss = losses.create("ssim")
    assert float(loss(degraded, clean)) == pytest.approx(1 - float(ssim(degraded, clean)), abs=1e-6)
    assert float(loss(clean, clean)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.create("ms_ssim")(clean, clean)) == pytest.approx(0.0, abs=1e-6)


def test_s3im_matches_ssim_of_virtual_image_and_is_seeded():
    gen = torch.Generator().manual_seed(0)
    pixels_pred = torch.rand(64 * 16, 3, generator=gen)
    pixels_target = (pixels_pred + 0.1 * torch.randn(64 * 16, 3, generator=gen)).clamp(0, 1)
    # one repeat, no permutation: the virtual image is the pixels laid out as (C, 64, 16)
    value = s3im(pixels_pred, pixels_target, repeats=1, kernel_size=3, stride=1, patch_height=64)
    image_p = pixels_pred.T.reshape(1, 3, 64, 16)
    image_t = pixels_target.T.reshape(1, 3, 64, 16)
    window_ref = ssim(image_p, image_t, window_size=3, sigma=1.5)
    assert float(value) == pytest.approx(float(window_ref), abs=1e-6)
    a = losses.create("s3im", seed=3)(pixels_pred, pixels_target)
    b = losses.create("s3im", seed=3)(pixels_pred, pixels_target)
    assert float(a) == float(b)
    assert float(losses.create("s3im", seed=3)(pixels_pred, pixels_pred)) == pytest.approx(0.0, abs=1e-6)


def test_gradient_loss_matches_hand_sobel_and_ignores_constant_shift():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 1, 3, 16, 16, generator=gen)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0

    def sobel(img: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(img, (1, 1, 1, 1), mode="replicate")
        w = torch.stack([kx, kx.T]).unsqueeze(1).repeat(3, 1, 1, 1)
        return torch.nn.functional.conv2d(padded, w.flip(-1, -2), groups=3)

    expected = (sobel(x) - sobel(y)).abs().mean()
    assert float(gradient_loss(x, y)) == pytest.approx(float(expected), rel=1e-5)
    assert float(gradient_loss(x + 0.3, x)) == pytest.approx(0.0, abs=1e-6)


def test_laplacian_is_zero_on_linear_ramp_interior():
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 1, 32, 32).contiguous()
    lap = _laplacian_5x5(ramp)
    # the pyramid reconstruction of a ramp is exact away from the borders, except for the
    # zero-insertion checkerboard which averages out: the edge map has no large values
    assert lap[..., 4:-4, 4:-4].abs().mean() < 0.05


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"alpha": 2.0, "patch_factor": 2},
        {"log_matrix": True, "batch_matrix": True},
        {"ave_spectrum": True},
    ],
)
def test_focal_frequency_matches_reference_package(kwargs):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 2, 3, 32, 32, generator=gen)
    a = x.clone().requires_grad_()
    b = x.clone().requires_grad_()
    ours = focal_frequency_loss(a, y, **kwargs)
    ref = ReferenceFFL(**kwargs)(b, y)
    assert float(ours) == pytest.approx(float(ref), rel=1e-6)
    ours.backward()
    ref.backward()
    assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-10)


def test_fft_loss_amplitude_matches_numpy_and_phase_sees_shift():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 1, 1, 16, 16, generator=gen)
    amp = fft_loss(x, y, amplitude_weight=1.0, phase_weight=0.0, eps=0.0)
    fx = np.abs(np.fft.rfft2(x.numpy(), norm="ortho"))
    fy = np.abs(np.fft.rfft2(y.numpy(), norm="ortho"))
    assert float(amp) == pytest.approx(float(np.abs(fx - fy).mean()), rel=1e-5)
    # a circular shift keeps the amplitude and changes only the phase
    shifted = torch.roll(x, shifts=3, dims=-1)
    assert float(fft_loss(shifted, x, amplitude_weight=1.0, phase_weight=0.0)) < 1e-6
    assert float(fft_loss(shifted, x, amplitude_weight=0.0, phase_weight=1.0)) > 0.1
    zero = torch.zeros(1, 1, 8, 8, requires_grad=True)
    value = fft_loss(zero, zero.detach())
    value.backward()
    assert float(value) == 0.0 and torch.isfinite(zero.grad).all()
