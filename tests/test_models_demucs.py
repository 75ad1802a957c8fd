"""Demucs (facebookresearch/denoiser): published size, original key layout, sinc resampling, look-ahead.

The original's layer list is rebuilt here from plain torch layers (encoder ``Conv1d(K,S), ReLU,
Conv1d(1x1, 2H), GLU``; decoder ``Conv1d(1x1, 2H), GLU, ConvTranspose1d(K,S)[, ReLU]``; ``lstm.lstm``
and, when bidirectional, ``lstm.linear``) with the original's forward pass and a float64 NumPy
version of its sinc resampler, so our model is checked against the released layout and computation,
not against itself.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import restore.models as models
from restore.models.demucs import Demucs, downsample2, sinc_kernel, upsample2

ZEROS = 56


# ----------------------------------------------------------------------------- reference (original)


def original_layout(
    hidden=48, depth=5, causal=True, kernel=8, stride=4, growth=2, chin=1, chout=1
) -> nn.Module:
    """The module tree of denoiser's Demucs, from plain torch layers (names as the released state dicts)."""
    root = nn.Module()
    root.encoder, root.decoder = nn.ModuleList(), nn.ModuleList()
    for index in range(depth):
        enc = [nn.Conv1d(chin, hidden, kernel, stride), nn.ReLU(), nn.Conv1d(hidden, 2 * hidden, 1)]
        root.encoder.append(nn.Sequential(*enc, nn.GLU(1)))
        dec = [nn.Conv1d(hidden, 2 * hidden, 1), nn.GLU(1), nn.ConvTranspose1d(hidden, chout, kernel, stride)]
        root.decoder.insert(0, nn.Sequential(*dec, *([nn.ReLU()] if index > 0 else [])))
        chin = chout = hidden
        hidden = int(growth * hidden)
    root.lstm = nn.Module()
    root.lstm.lstm = nn.LSTM(chin, chin, num_layers=2, bidirectional=not causal)
    if not causal:
        root.lstm.linear = nn.Linear(2 * chin, chin)
    return root


def closed_form_parameters(hidden=48, depth=5, causal=True, kernel=8) -> int:
    """Parameter count of the original from its layer shapes (no modules built)."""
    total, chin = 0, 1
    for _ in range(depth):
        total += chin * hidden * kernel + hidden  # encoder conv K
        total += hidden * 2 * hidden + 2 * hidden  # encoder 1x1
        total += hidden * 2 * hidden + 2 * hidden  # decoder 1x1
        total += hidden * chin * kernel + chin  # decoder transposed conv
        chin, hidden = hidden, 2 * hidden
    directions = 1 if causal else 2
    lstm = 0
    for layer in range(2):
        inp = chin if layer == 0 else chin * directions
        lstm += directions * 4 * (inp * chin + chin * chin + 2 * chin)
    linear = 0 if causal else 2 * chin * chin + chin
    return total + lstm + linear


def np_kernel() -> np.ndarray:
    t = np.arange(-ZEROS + 0.5, ZEROS, 1.0)
    return np.sinc(t) * np.hanning(4 * ZEROS + 1)[1::2]  # np.sinc(t) = sin(pi t) / (pi t)


def np_upsample2(x: np.ndarray) -> np.ndarray:
    """Original upsample2 in float64: conv with padding `zeros`, drop the first output, interleave."""
    mid = np.correlate(np.pad(x, ZEROS), np_kernel(), mode="valid")[1:]
    out = np.empty(2 * len(x))
    out[0::2], out[1::2] = x, mid
    return out


def np_downsample2(x: np.ndarray) -> np.ndarray:
    if len(x) % 2:
        x = np.pad(x, (0, 1))
    even, odd = x[0::2], x[1::2]
    mid = np.correlate(np.pad(odd, ZEROS), np_kernel(), mode="valid")[:-1]
    return 0.5 * (even + mid)


def np_resample(x: torch.Tensor, fn, times: int) -> torch.Tensor:
    rows = x.detach().double().reshape(-1, x.shape[-1]).numpy()
    for _ in range(times):
        rows = np.stack([fn(r) for r in rows])
    return torch.from_numpy(rows).reshape(*x.shape[:-1], -1)


def original_forward(ref: nn.Module, mix: torch.Tensor, model: Demucs) -> torch.Tensor:
    """denoiser's Demucs.forward (normalize=False) on the plain-layer module, float64 resampling."""
    length = mix.shape[-1]
    x = nn.functional.pad(mix, (0, model.valid_length(length) - length))
    stages = int(math.log2(model.resample))
    x = np_resample(x, np_upsample2, stages).float()
    skips = []
    for encode in ref.encoder:
        x = encode(x)
        skips.append(x)
    x, _ = ref.lstm.lstm(x.permute(2, 0, 1))
    if hasattr(ref.lstm, "linear"):
        x = ref.lstm.linear(x)
    x = x.permute(1, 2, 0)
    for decode in ref.decoder:
        skip = skips.pop(-1)
        x = decode(x + skip[..., : x.shape[-1]])
    return np_resample(x, np_downsample2, stages).float()[..., :length]


# ----------------------------------------------------------------------------- size and keys


@pytest.mark.parametrize(
    ("name", "hidden", "expected"),
    [("demucs", 48, 18_867_937), ("demucs_dns64", 64, 33_533_569)],  # the published 18.87M / 33.53M
)
def test_parameter_count_equals_the_original(name, hidden, expected):
    model = models.build(name)
    ours = sum(p.numel() for p in model.parameters())
    assert ours == closed_form_parameters(hidden) == expected
    assert ours == sum(p.numel() for p in original_layout(hidden).parameters())


def test_state_dict_keys_are_the_originals_and_load_strictly():
    model = models.build("demucs")
    keys = list(model.state_dict())
    assert len(keys) == 48  # 5 levels x (2 encoder + 2 decoder convs) x (weight, bias) + 8 LSTM tensors
    expected = [
        "encoder.0.0.weight", "encoder.0.0.bias", "encoder.0.2.weight", "encoder.0.2.bias",
        "encoder.4.2.bias", "decoder.0.0.weight", "decoder.0.2.weight", "decoder.4.2.bias",
        "lstm.lstm.weight_ih_l0", "lstm.lstm.weight_hh_l0", "lstm.lstm.bias_ih_l0", "lstm.lstm.bias_hh_l1",
    ]  # fmt: skip
    assert set(expected) <= set(keys)
    assert not any("sinc" in k or "linear" in k for k in keys)  # kernel buffer is non-persistent

    ref = original_layout(48)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in ref.state_dict().items()} == shapes
    ref.load_state_dict(model.state_dict(), strict=True)
    model.load_state_dict(ref.state_dict(), strict=True)

    bi = Demucs(hidden=8, depth=5, causal=False)
    bi_keys = set(bi.state_dict())
    assert len(bi_keys) == 58
    assert {"lstm.linear.weight", "lstm.linear.bias", "lstm.lstm.weight_ih_l1_reverse"} <= bi_keys
    original_layout(8, causal=False).load_state_dict(bi.state_dict(), strict=True)


@pytest.mark.parametrize("causal", [True, False])
def test_forward_equals_the_original_computation(causal):
    torch.manual_seed(0)
    model = Demucs(hidden=16, depth=4, causal=causal).eval()
    ref = original_layout(16, depth=4, causal=causal).eval()
    ref.load_state_dict(model.state_dict(), strict=True)
    x = 0.3 * torch.randn(2, 1, 789)
    with torch.no_grad():
        ours, theirs = model(x), original_forward(ref, x, model)
    assert ours.shape == theirs.shape == x.shape
    err = float((ours - theirs).abs().max() / theirs.abs().max())
    assert err < 1e-5, err


def test_rescale_init_divides_by_sqrt_of_std_over_reference():
    torch.manual_seed(3)
    raw = Demucs(hidden=8, depth=3, rescale=0)
    torch.manual_seed(3)
    scaled = Demucs(hidden=8, depth=3, rescale=0.1)
    for (name, a), (_, b) in zip(raw.named_parameters(), scaled.named_parameters(), strict=True):
        if name.startswith("lstm"):
            assert torch.equal(a, b), name  # only convolutions are rescaled
        else:
            conv = raw.get_submodule(name.rsplit(".", 1)[0])
            factor = math.sqrt(float(conv.weight.detach().std()) / 0.1)
            torch.testing.assert_close(b, a / factor, rtol=1e-5, atol=1e-7)


def test_valid_length_matches_the_original_streaming_frame():
    model = models.build("demucs")
    assert model.valid_length(1) == 597  # the original streamer's frame (37.3 ms at 16 kHz)
    assert model.total_stride == 256  # 16 ms hop of the streamer
    for length in (1, 100, 597, 598, 4000):
        valid = model.valid_length(length)
        assert valid >= length and model.valid_length(valid) == valid


# ----------------------------------------------------------------------------- sinc resampling


def test_sinc_kernel_matches_numpy_and_is_symmetric():
    kernel = sinc_kernel()[0, 0].double()
    assert kernel.shape == (2 * ZEROS,)
    torch.testing.assert_close(kernel, torch.from_numpy(np_kernel()), rtol=0, atol=1e-7)
    torch.testing.assert_close(kernel, kernel.flip(0))


@pytest.mark.parametrize("freq", [500.0, 2000.0, 6000.0])
def test_upsample2_of_a_sine_is_the_analytic_sine(freq):
    fs = 16000
    n = torch.arange(3000, dtype=torch.float64)
    x = torch.sin(2 * math.pi * freq * n / fs + 0.3).float()
    y = upsample2(x[None, None])[0, 0].double()
    m = torch.arange(6000, dtype=torch.float64)
    ref = torch.sin(2 * math.pi * freq * m / (2 * fs) + 0.3)
    interior = slice(4 * ZEROS, -4 * ZEROS)
    err = float((y - ref)[interior].abs().max())
    assert err < 1e-4, err  # measured 2e-7 (500 Hz), 1.5e-6 (2 kHz), 3.7e-5 (6 kHz)
    torch.testing.assert_close(y, torch.from_numpy(np_upsample2(x.double().numpy())), rtol=0, atol=1e-5)


def test_downsample2_inverts_upsample2_and_rejects_the_upper_band():
    gen = torch.Generator().manual_seed(0)
    fs, n = 16000, torch.arange(4001, dtype=torch.float64)
    freqs = torch.rand(8, generator=gen, dtype=torch.float64) * 6000 + 50  # band-limited below 0.4 fs
    phases = torch.rand(8, generator=gen, dtype=torch.float64) * 6.28
    x = torch.sin(2 * math.pi * freqs[:, None] * n / fs + phases[:, None]).sum(0).float() / 8
    back = downsample2(upsample2(x[None, None]))[0, 0]
    assert back.shape == x.shape
    err = float((back - x)[200:-200].abs().max())
    assert err < 1e-4, err

    # A tone above the lower rate's Nyquist (9 kHz at 32 kHz -> 16 kHz) is removed, not aliased.
    m = torch.arange(8001, dtype=torch.float64)
    tone = torch.sin(2 * math.pi * 9000 * m / (2 * fs)).float()
    down = downsample2(tone[None, None])[0, 0]
    assert down.shape == (4001,)  # odd lengths are padded: ceil(T / 2)
    assert float(down[200:-200].abs().max()) < 1e-3
    torch.testing.assert_close(
        down.double(), torch.from_numpy(np_downsample2(tone.double().numpy())), rtol=0, atol=1e-5
    )


def test_resampling_runs_in_float32_under_autocast():
    x = torch.randn(1, 1, 300)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        up = upsample2(x.bfloat16())
        down = downsample2(up)
    assert up.dtype == down.dtype == torch.float32


# ----------------------------------------------------------------------------- receptive field, causality


class _NoLSTM(nn.Module):
    def forward(self, x, hidden=None):
        return torch.zeros_like(x), None


def _changed(model: nn.Module, x: torch.Tensor, t0: int) -> torch.Tensor:
    with torch.no_grad():
        base = model(x)
        bumped = x.clone()
        bumped[..., t0] += 1.0
        return torch.nonzero((model(bumped) - base)[0, 0] != 0).flatten()


def test_receptive_field_bounds_the_conv_stack_reach():
    torch.manual_seed(0)
    model = models.build("demucs_small").eval()
    assert model.receptive_field == 316  # ceil((up 224+112 + conv 595 + down 111+222) / 4)
    model.lstm = _NoLSTM()  # without the LSTM, the reach is finite: convs + sinc filters only
    x = torch.randn(1, 1, 1400)
    reach = []
    for t0 in range(700, 764, 16):
        changed = _changed(model, x, t0)
        reach += [t0 - int(changed.min()), int(changed.max()) - t0]
    assert max(reach) <= model.receptive_field
    # Measured 230 of 316: the last taps of each conv and the sinc tails are tiny, and ReLUs drop some paths.
    assert max(reach) >= 0.6 * model.receptive_field, reach


@pytest.mark.parametrize("name", ["demucs_small", "demucs"])
def test_causal_model_looks_ahead_at_most_lookahead_samples(name):
    torch.manual_seed(0)
    model = models.build(name).eval()
    assert model.causal and model.lookahead == model.receptive_field
    x = torch.randn(1, 1, 3000)
    t0s = range(1500, 1500 + model.total_stride, model.total_stride // 4)
    measured = []
    for t0 in t0s:
        changed = _changed(model, x, t0)
        first = int(changed.min())
        measured.append(t0 - first)
        assert first >= t0 - model.lookahead  # every output before t0 - lookahead is bit-identical
        assert int(changed.max()) >= x.shape[-1] - 8  # ...while the LSTM carries it to the end
    assert max(measured) >= 0.6 * model.lookahead, measured  # measured 222/316 (small), 681/764 (dns48)


def test_non_causal_model_sees_the_whole_signal():
    torch.manual_seed(0)
    model = Demucs(hidden=8, depth=4, causal=False).eval()
    changed = _changed(model, torch.randn(1, 1, 3000), 2500)
    assert int(changed.min()) < model.total_stride  # the BiLSTM carries it back to the first frame


# ----------------------------------------------------------------------------- contract


@pytest.mark.parametrize("length", [1, 2, 3, 63, 64, 65, 149, 150, 1000])
def test_any_length_in_gives_the_same_length_out(length):
    torch.manual_seed(0)
    model = models.build("demucs_small").eval()
    with torch.no_grad():
        y = model(torch.randn(2, 1, length))
    assert y.shape == (2, 1, length) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", ["demucs", "demucs_dns64", "demucs_small"])
def test_registered_configs(name):
    model = models.build(name).eval()
    spec = models.spec_of(model)
    assert spec.task == "audio" and spec.inputs == ("audio",) and spec.size_multiple == 1
    assert model.sample_rate == spec.config["sample_rate"] == 16000
    assert spec.receptive_field == model.receptive_field == models.get_spec(name).receptive_field
    assert spec.supports_bf16 and spec.supports_fp16 and not model.normalize
    with torch.no_grad():
        assert model(torch.randn(1, 1, 777)).shape == (1, 1, 777)


def test_normalize_makes_the_model_scale_equivariant():
    torch.manual_seed(0)
    model = Demucs(hidden=8, depth=4, normalize=True, floor=0.0).eval()
    x = 0.1 * torch.randn(1, 1, 1500)
    with torch.no_grad():
        torch.testing.assert_close(model(7.0 * x), 7.0 * model(x), rtol=1e-4, atol=1e-6)
        model.floor = 1e-3
        assert torch.isfinite(model(torch.full((1, 1, 1), 0.5))).all()  # T = 1: std 0, not NaN


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    for causal in (True, False):
        model = Demucs(hidden=8, depth=4, causal=causal).train()
        model(torch.randn(2, 1, 1000)).square().mean().backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name


def test_cpu_bf16_autocast_is_close_to_float32():
    torch.manual_seed(0)
    model = models.build("demucs_small").train()
    x = 0.3 * torch.randn(2, 1, 2000)

    def run(enabled: bool):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            y = model(x)
        y.float().square().mean().backward()
        return y, torch.cat([p.grad.flatten() for p in model.parameters()])

    ref, g_ref = run(False)
    out, g = run(True)
    assert out.dtype == torch.float32  # the sinc downsampling runs in float32
    rel = float((out.detach() - ref.detach()).norm() / ref.detach().norm())
    cosine = float(nn.functional.cosine_similarity(g, g_ref, dim=0))
    assert torch.isfinite(g).all() and rel < 0.05 and cosine > 0.95, (rel, cosine)


def test_invalid_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="resample must be 1, 2 or 4, got 3"):
        Demucs(resample=3)
    with pytest.raises(ValueError, match="kernel_size >= stride"):
        Demucs(kernel_size=2, stride=4)
    with pytest.raises(ValueError, match=r"expects audio \(N, 1, T\)"):
        Demucs(hidden=4, depth=2)(torch.zeros(1, 2, 100))
