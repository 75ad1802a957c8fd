"""AERO-style bandwidth extension: identity at init, any length, receptive field and look-ahead,
float32 STFT under bf16 autocast, level invariance, and a short overfit on a band-limited harmonic chirp."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import restore.models as models
from restore.models.aero import Aero
from restore.models.stft import STFT

SR = 16000


def perturb_last_layer(model: Aero, std: float = 0.1) -> Aero:
    """Break the zero init of the output layer so that the correction path is live."""
    torch.manual_seed(123)
    nn.init.normal_(model.decoder[-1].conv_tr.weight, std=std)
    nn.init.normal_(model.decoder[-1].conv_tr.bias, std=std)
    return model


def harmonic_chirp(length: int = 4096, seed: int = 0) -> torch.Tensor:
    """(1, 1, T) harmonic signal, fundamental 180 -> 300 Hz, partials up to 7.8 kHz, a little noise."""
    t = torch.arange(length, dtype=torch.float64) / SR
    f0 = 180 + 120 * t / t[-1]
    phase = 2 * math.pi * torch.cumsum(f0, 0) / SR
    x = sum((0.5 / k**0.5) * torch.sin(k * phase) * (k * f0 < 7800) for k in range(1, 45))
    x = x + 0.01 * torch.randn(length, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (0.5 * x / x.abs().max()).float()[None, None]


def brickwall(x: torch.Tensor, cutoff: float) -> torch.Tensor:
    spectrum = torch.fft.rfft(x)
    spectrum[..., torch.fft.rfftfreq(x.shape[-1], 1 / SR) > cutoff] = 0
    return torch.fft.irfft(spectrum, n=x.shape[-1])


def log_magnitude(x: torch.Tensor) -> torch.Tensor:
    return torch.log(STFT(512, 128)(x).abs() + 1e-3)


# ----------------------------------------------------------------------------- identity, shapes, spec


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("length", [1, 7, 100, 257, 4096, 5003])
def test_untrained_model_is_the_identity(causal, length):
    torch.manual_seed(0)
    model = models.build("aero", causal=causal).eval()
    assert not model.decoder[-1].conv_tr.weight.any() and not model.decoder[-1].conv_tr.bias.any()
    x = 0.3 * torch.randn(2, 1, length)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    err = float((y - x).abs().max())
    assert err < 1e-6, err  # measured <= 2.4e-7: only the STFT round trip


@pytest.mark.parametrize("length", [1, 2, 3, 64, 127, 128, 129, 1000])
def test_any_length_gives_the_same_length(length):
    model = perturb_last_layer(models.build("aero")).eval()
    with torch.no_grad():
        y = model(0.3 * torch.randn(2, 1, length))
    assert y.shape == (2, 1, length) and torch.isfinite(y).all()


def test_registered_spec():
    model = models.build("aero")
    spec = models.spec_of(model)
    params = sum(p.numel() for p in model.parameters())
    assert params == 1_132_858 and 0.5e6 <= params <= 2e6
    assert spec.task == "audio" and spec.inputs == ("audio",) and spec.size_multiple == 1
    assert spec.in_channels == spec.out_channels == 1
    assert model.sample_rate == spec.config["sample_rate"] == SR
    assert spec.receptive_field == model.receptive_field == 512 + 128 * (1 + 2 + 4)  # n_fft + dilations
    assert models.build("aero", causal=True).receptive_field == 512 + 128 * 2 * 7
    assert not any("window" in k for k in model.state_dict())  # STFT window is non-persistent


# ----------------------------------------------------------------------------- receptive field, causality


class _ZeroTimeModel(nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(h)


def _changed(model: nn.Module, x: torch.Tensor, t0: int) -> torch.Tensor:
    with torch.no_grad():
        bumped = x.clone()
        bumped[..., t0] += 1.0
        return torch.nonzero((model(bumped) - model(x))[0, 0] != 0).flatten()


@pytest.mark.parametrize("causal", [False, True])
def test_receptive_field_bounds_the_conv_part(causal):
    model = perturb_last_layer(models.build("aero", causal=causal)).eval()
    model.time_model = _ZeroTimeModel()  # without the LSTM the reach is finite
    x = 0.3 * torch.randn(1, 1, 6000, generator=torch.Generator().manual_seed(0))
    before, after = [], []
    for t0 in range(3000, 3128, 32):
        changed = _changed(model, x, t0)
        before.append(t0 - int(changed.min()))
        after.append(int(changed.max()) - t0)
    assert max(before + after) <= model.receptive_field
    # Measured 1382 of 1408 (not causal); 2264 of 2304 back and < 512 ahead (causal).
    assert max(before + after) >= 0.9 * model.receptive_field, (before, after)
    if causal:
        assert max(before) <= model.lookahead == 511


def test_causal_model_never_looks_further_ahead_than_n_fft():
    model = perturb_last_layer(models.build("aero", causal=True)).eval()
    x = 0.3 * torch.randn(1, 1, 6000, generator=torch.Generator().manual_seed(1))
    measured = []
    for t0 in range(3000, 3128, 32):
        changed = _changed(model, x, t0)
        measured.append(t0 - int(changed.min()))
        assert int(changed.max()) >= 5900  # the LSTM carries the change to the end
    assert max(measured) <= model.lookahead and max(measured) >= 0.75 * model.lookahead, measured  # 496/511
    assert models.build("aero").lookahead is None  # the BiLSTM sees the whole clip


# ----------------------------------------------------------------------------- training behaviour


def test_gradient_reaches_every_parameter_after_the_zero_layer_is_perturbed():
    for causal in (False, True):
        model = perturb_last_layer(Aero(channels=8, lstm_hidden=16, causal=causal)).train()
        x = 0.3 * torch.randn(2, 1, 2000, generator=torch.Generator().manual_seed(2))
        (model(x) - x).square().mean().backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name


def test_zero_init_still_trains_the_output_layer():
    model = models.build("aero").train()
    x = 0.3 * torch.randn(1, 1, 2000, generator=torch.Generator().manual_seed(3))
    (model(x) - brickwall(x, 2000)).square().mean().backward()
    assert model.decoder[-1].conv_tr.weight.grad.abs().sum() > 0  # so the identity start can move


def test_stft_runs_in_float32_under_bf16_autocast():
    model = perturb_last_layer(models.build("aero")).train()
    dtypes = []
    model.stft.register_forward_hook(lambda mod, inp, out: dtypes.append(out.dtype))
    x = 0.3 * torch.randn(2, 1, 4096, generator=torch.Generator().manual_seed(4))

    def run(enabled: bool):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            y = model(x)
        (y - x).square().mean().backward()
        return y.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])

    ref, g_ref = run(False)
    out, g = run(True)
    assert dtypes == [torch.complex64, torch.complex64] and out.dtype == torch.float32
    # Compare the correction (output - input), not the output, which the identity path dominates.
    rel = float(((out - x) - (ref - x)).norm() / (ref - x).norm())
    cosine = float(nn.functional.cosine_similarity(g, g_ref, dim=0))
    assert rel < 0.05 and cosine > 0.99, (rel, cosine)  # measured 0.4%, 0.999997


def test_model_is_level_invariant():
    model = perturb_last_layer(models.build("aero")).eval()
    x = 0.1 * torch.randn(1, 1, 3000, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(model(5.0 * x), 5.0 * model(x), rtol=1e-3, atol=1e-5)


def test_short_overfit_extends_the_bandwidth_of_a_harmonic_chirp():
    torch.manual_seed(0)
    target = harmonic_chirp(4096)
    low = brickwall(target, 4000.0)  # 16 kHz signal with content to 7.8 kHz, cut at 4 kHz
    high = slice(129, None)  # STFT bins above 4 kHz (bin 128 = 4000 Hz at n_fft 512)

    def high_band_distance(y: torch.Tensor) -> float:
        return float((log_magnitude(y)[:, high] - log_magnitude(target)[:, high]).abs().mean())

    model = Aero(channels=16, lstm_hidden=64).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        y = model(low)
        loss = (log_magnitude(y) - log_magnitude(target)).abs().mean() + (y - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        before, after = high_band_distance(low), high_band_distance(model(low))
    assert after < 0.5 * before, (before, after)  # measured 5.82 -> 0.63 (ratio 0.11)


# ----------------------------------------------------------------------------- arguments


def test_invalid_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match=r"n_fft // 2 \(256\) must be divisible by prod\(strides\) \(512\)"):
        Aero(strides=(4, 4, 4, 4, 2))
    with pytest.raises(ValueError, match="kernel_size - stride must be even"):
        Aero(kernel_size=7, strides=(4, 4, 4))
    with pytest.raises(ValueError, match="n_fft must be even"):
        Aero(n_fft=511)
    with pytest.raises(ValueError, match=r"mono audio \(N, 1, T\)"):
        Aero(channels=4, lstm_hidden=8)(torch.zeros(1, 2, 100))
