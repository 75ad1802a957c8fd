"""Audio degradations: SNR mixing to 0.01 dB, exact gain/clip, low-pass stop band > 60 dB down and pass band
flat to 0.1 dB, band limits equal to torchaudio's resampling, RT60 of the synthetic RIRs by Schroeder
integration, reverb alignment, coloured-noise slopes, and seeded per-item pipelines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from restore.degrade import available_degradations, build_degradation
from restore.degrade.audio import (
    AudioBandwidthDegradation,
    AudioDenoiseDegradation,
    band_limit,
    clip,
    colored_noise,
    equalize,
    gain,
    lowpass,
    mix_at_snr,
    reverberate,
    synthetic_rir,
)
from restore.io import KAISER_BEST

RATE = 16000
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device).manual_seed(seed)


def vowel(n: int, t: int, seed: int = 0) -> torch.Tensor:
    """(n, 1, t) harmonic 'vowels' (f0 100-200 Hz, 1/h amplitudes) with a little noise, ~-20 dBFS."""
    g = gen(seed)
    time = torch.arange(t, dtype=torch.float64) / RATE
    rows = []
    for _ in range(n):
        f0 = 100.0 + 100.0 * float(torch.rand((), generator=g))
        x = sum(torch.sin(2 * math.pi * f0 * h * time + h) / h for h in range(1, 30) if f0 * h < RATE / 2)
        rows.append(x + 0.01 * torch.randn(t, generator=g, dtype=torch.float64))
    x = torch.stack(rows).unsqueeze(1)
    return (0.1 * x / x.square().mean(dim=-1, keepdim=True).sqrt()).float()


def snr_db(clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    clean, residual = clean.double(), (noisy - clean).double()
    return 10 * torch.log10(clean.square().mean(dim=(1, 2)) / residual.square().mean(dim=(1, 2)))


def band_power_db(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per item: 10 log10(power of y / power of x) in the frequency bins ``mask`` (Hann-windowed spectra)."""
    window = torch.hann_window(x.shape[-1], dtype=torch.float64)
    px = torch.fft.rfft(x.double() * window).abs().square()[..., mask].sum(dim=(1, 2))
    py = torch.fft.rfft(y.double() * window).abs().square()[..., mask].sum(dim=(1, 2))
    return 10 * torch.log10(py / px)


# --------------------------------------------------------------------------------------- mixing, gain, clip


def test_mix_at_snr_hits_the_target_within_001_db():
    clean = vowel(6, 16000)
    noise = torch.randn(6, 1, 16000, generator=gen(1))
    target = torch.tensor([-5.0, 0.0, 5.0, 10.0, 15.0, 20.0])
    noisy = mix_at_snr(clean, noise, target)
    assert noisy.shape == clean.shape and noisy.dtype == torch.float32
    assert (snr_db(clean, noisy) - target.double()).abs().max() < 0.01
    # a number applies to every item; the noise itself is only scaled
    noisy = mix_at_snr(clean, noise, 7.5)
    assert (snr_db(clean, noisy) - 7.5).abs().max() < 0.01
    scale = (noisy - clean)[:, 0, 0] / noise[:, 0, 0]
    torch.testing.assert_close(noisy - clean, noise * scale.view(-1, 1, 1), rtol=1e-4, atol=1e-7)


def test_mix_at_snr_tiles_short_noise_and_shares_one_noise_channel():
    clean = vowel(2, 4000).repeat(1, 2, 1) * torch.tensor([1.0, 0.5]).view(1, 2, 1)  # stereo
    noise = torch.randn(2, 1, 1500, generator=gen(2))
    noisy = mix_at_snr(clean, noise, torch.tensor([0.0, 10.0]))
    residual = noisy - clean
    tiled = noise.repeat(1, 1, 3)[..., :4000]
    ratio = residual / tiled
    torch.testing.assert_close(ratio, ratio[..., :1, :1].expand_as(ratio), rtol=1e-4, atol=1e-4)
    assert (snr_db(clean, noisy) - torch.tensor([0.0, 10.0], dtype=torch.float64)).abs().max() < 0.01
    with pytest.raises(ValueError, match="noise must be"):
        mix_at_snr(clean, torch.randn(2, 3, 100), 0.0)


def test_mix_at_snr_silent_signals_give_no_nan():
    silent = torch.zeros(2, 1, 1000)
    noise = torch.randn(2, 1, 1000, generator=gen(3))
    assert torch.equal(mix_at_snr(silent, noise, 10.0), silent)  # no speech: no noise added
    clean = vowel(2, 1000)
    assert torch.equal(mix_at_snr(clean, torch.zeros(2, 1, 1000), 10.0), clean)
    assert torch.isfinite(mix_at_snr(silent, torch.zeros(2, 1, 10), -5.0)).all()


def test_gain_and_clip_are_exact():
    x = torch.randn(3, 2, 100, generator=gen(4))
    assert torch.equal(gain(x, 0.0), x)
    torch.testing.assert_close(gain(x, 6.0), x * 10 ** (6.0 / 20), rtol=1e-6, atol=0)
    db = torch.tensor([-20.0, 0.0, 20.0])
    expected = x * torch.tensor([0.1, 1.0, 10.0]).view(3, 1, 1)
    torch.testing.assert_close(gain(x, db), expected, rtol=1e-6, atol=0)
    assert torch.equal(clip(x, 0.5), x.clamp(-0.5, 0.5))
    thresholds = torch.tensor([0.1, 0.5, 2.0])
    clipped = clip(x, thresholds)
    for i in range(3):
        assert torch.equal(clipped[i], x[i].clamp(-float(thresholds[i]), float(thresholds[i])))
    with pytest.raises(ValueError, match="threshold"):
        clip(x, 0.0)
    with pytest.raises(ValueError, match=r"\(N, C, T\)"):
        gain(torch.zeros(10), 1.0)


# --------------------------------------------------------------------------------------- filters


def test_lowpass_stop_band_and_pass_band():
    x = torch.randn(3, 1, 32000, generator=gen(5))
    cutoff = torch.tensor([1000.0, 3000.0, 6000.0])
    y = lowpass(x, RATE, cutoff)
    assert y.shape == x.shape and y.dtype == torch.float32
    freqs = torch.fft.rfftfreq(32000, 1 / RATE)
    for i, c in enumerate(cutoff.tolist()):
        stop = band_power_db(x[i : i + 1], y[i : i + 1], freqs > 1.1 * c)  # transition ends at 1.025 c
        passed = band_power_db(x[i : i + 1], y[i : i + 1], freqs < 0.95 * c)  # flat below 0.975 c
        assert stop < -60, f"cutoff {c}: stop band only {float(stop):.1f} dB down"
        assert passed.abs() < 0.1, f"cutoff {c}: pass band changed by {float(passed):.3f} dB"
    # a single number: the same filter for every item; a pass-band sine keeps its amplitude
    t = torch.arange(16000) / RATE
    tones = torch.stack([torch.sin(2 * math.pi * 500 * t), torch.sin(2 * math.pi * 5000 * t)]).unsqueeze(1)
    out = lowpass(tones, RATE, 2000.0)
    middle = slice(2000, 14000)
    assert abs(float(out[0, 0, middle].abs().max()) - 1.0) < 0.0116  # 0.1 dB
    assert float(out[1, 0, middle].abs().max()) < 1e-3  # 5 kHz: > 60 dB down


def test_lowpass_under_autocast_runs_in_float32():
    x = torch.randn(2, 1, 4000, generator=gen(6))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = lowpass(x, RATE, 2000.0)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, lowpass(x, RATE, 2000.0))


def test_equalize_applies_its_gain_at_the_band_centre():
    x = torch.randn(2, 1, 32000, generator=gen(7))
    centre = torch.tensor([[1000.0], [3000.0]])
    db = torch.tensor([[6.0], [-6.0]])
    y = equalize(x, RATE, centre, db, torch.tensor([[0.2], [0.2]]))
    freqs = torch.fft.rfftfreq(32000, 1 / RATE)
    for i in range(2):
        c = float(centre[i, 0])
        at_centre = band_power_db(x[i : i + 1], y[i : i + 1], (freqs > 0.98 * c) & (freqs < 1.02 * c))
        far = band_power_db(x[i : i + 1], y[i : i + 1], (freqs > 2.5 * c) | (freqs < c / 2.5))
        assert abs(float(at_centre) - float(db[i, 0])) < 0.2
        assert abs(float(far)) < 0.1


def test_band_limit_equals_torchaudio_down_up_resampling():
    import torchaudio.functional as AF

    x = vowel(4, 5001)
    rates = torch.tensor([4000, 8000, 11025, 16000])
    y = band_limit(x, RATE, rates)
    assert y.shape == x.shape
    for i, rate in enumerate(rates.tolist()):
        if rate >= RATE:
            assert torch.equal(y[i], x[i])
            continue
        down = AF.resample(x[i : i + 1], RATE, rate, **KAISER_BEST)
        direct = AF.resample(down, rate, RATE, **KAISER_BEST)[..., : x.shape[-1]]
        torch.testing.assert_close(y[i : i + 1], direct, rtol=0, atol=1e-6)
        freqs = torch.fft.rfftfreq(x.shape[-1], 1 / RATE)
        assert band_power_db(x[i : i + 1], y[i : i + 1], freqs > 0.5 * rate) < -60  # the band above is gone
        assert band_power_db(x[i : i + 1], y[i : i + 1], freqs < 0.45 * rate).abs() < 0.1  # kept below
    assert torch.equal(band_limit(x, RATE, 8000), band_limit(x, RATE, torch.full((4,), 8000)))
    with pytest.raises(ValueError, match="low_rate"):
        band_limit(x, RATE, [8000, 4000])


# --------------------------------------------------------------------------------------- noise and reverb


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0])
def test_colored_noise_has_unit_rms_and_the_spectral_slope(exponent):
    noise = colored_noise((4, 1, 32768), exponent, gen(8))
    assert noise.shape == (4, 1, 32768) and noise.dtype == torch.float32
    torch.testing.assert_close(noise.square().mean(dim=(1, 2)).sqrt(), torch.ones(4), rtol=1e-5, atol=0)
    power = torch.fft.rfft(noise.double()).abs().square().mean(dim=(0, 1))
    bins = torch.arange(power.numel(), dtype=torch.float64)
    band = (bins >= 16) & (bins <= 8192)
    slope = np.polyfit(np.log(bins[band].numpy()), np.log(power[band].numpy()), 1)[0]
    assert abs(slope + exponent) < 0.05
    assert torch.equal(noise, colored_noise((4, 1, 32768), exponent, gen(8)))


def test_colored_noise_per_item_exponents():
    noise = colored_noise((2, 1, 8192), torch.tensor([0.0, 2.0]), gen(9))
    power = torch.fft.rfft(noise.double()).abs().square()[:, 0]
    low, high = power[:, 1:50].mean(1), power[:, 2000:4000].mean(1)
    assert low[1] / high[1] > 1e4 and 0.1 < low[0] / high[0] < 10


def schroeder_rt60(rir: torch.Tensor, rate: int) -> float:
    """RT60 from the backward-integrated energy decay, fitted between -5 and -25 dB (T20 x 3)."""
    energy = rir.double().square()
    decay = torch.flip(torch.cumsum(torch.flip(energy, [0]), 0), [0])
    db = 10 * torch.log10(decay / decay[0])
    use = (db <= -5) & (db >= -25)
    time = torch.arange(rir.numel(), dtype=torch.float64)[use] / rate
    slope = np.polyfit(time.numpy(), db[use].numpy(), 1)[0]
    return -60.0 / slope


def test_synthetic_rir_direct_path_rt60_and_drr():
    rt60 = torch.tensor([0.2, 0.4, 0.7, 1.0])
    rir = synthetic_rir(4, RATE, rt60, gen(10), drr_db=torch.tensor([0.0, 5.0, 10.0, 3.0]))
    assert rir.shape == (4, 1, RATE)  # default length: the longest rt60
    assert torch.equal(rir[:, 0, 0], torch.ones(4))
    for i in range(4):
        fitted = schroeder_rt60(rir[i, 0, 1:], RATE)
        assert abs(fitted / float(rt60[i]) - 1) < 0.15, f"rt60 {float(rt60[i])}: fitted {fitted:.3f}"
    drr = 10 * torch.log10(1.0 / rir[:, 0, 1:].double().square().sum(-1))
    expected = torch.tensor([0.0, 5.0, 10.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(drr, expected, rtol=0, atol=1e-4)
    short = synthetic_rir(2, 8000, 0.5, gen(11), seconds=0.1)
    assert short.shape == (2, 1, 800)
    assert torch.equal(short, synthetic_rir(2, 8000, 0.5, gen(11), seconds=0.1))
    assert not torch.equal(short[0], short[1])


def test_reverberate_delta_is_identity_and_matches_numpy_convolution():
    x = torch.randn(2, 2, 3000, generator=gen(12))
    delta = torch.zeros(2, 1, 500)
    delta[:, 0, 0] = 1.0
    torch.testing.assert_close(reverberate(x, delta), x, rtol=0, atol=1e-5)
    rir = synthetic_rir(2, RATE, torch.tensor([0.1, 0.3]), gen(13), seconds=0.05)
    wet = reverberate(x, rir)
    assert wet.shape == x.shape
    for i in range(2):
        for c in range(2):
            expected = np.convolve(x[i, c].double().numpy(), rir[i, 0].double().numpy())[:3000]
            np.testing.assert_allclose(wet[i, c].numpy(), expected, rtol=0, atol=1e-4)
    per_channel = reverberate(x, rir.repeat(1, 2, 1))
    torch.testing.assert_close(per_channel, wet)
    with pytest.raises(ValueError, match="rir must be"):
        reverberate(x, torch.zeros(3, 1, 10))


# --------------------------------------------------------------------------------------- modules


@pytest.mark.parametrize("device", DEVICES)
def test_denoise_module_seeded_per_item_and_shapes(device):
    module = AudioDenoiseDegradation(reverb_prob=0.5, eq_prob=0.5, clip_prob=0.5)
    clean = vowel(1, 8000).repeat(4, 1, 1).to(device)  # one clip four times
    noise = torch.randn(4, 1, 3000, generator=gen(14)).to(device)

    def run(seed: int, noise_batch=noise) -> torch.Tensor:
        return module(clean, noise_batch, sample_rate=RATE, generator=gen(seed, device))

    out = run(0)
    assert out.shape == clean.shape and out.dtype == torch.float32 and out.device.type == device
    assert torch.isfinite(out).all()
    assert torch.equal(out, run(0))
    assert not torch.equal(out, run(1))
    for i in range(1, 4):  # items differ from each other
        assert (out[0] - out[i]).abs().max() > 1e-3
    synthetic = run(0, None)  # coloured noise when no noise is given
    assert synthetic.shape == clean.shape and torch.equal(synthetic, run(0, None))
    assert not torch.equal(synthetic, out)


def test_denoise_module_noise_only_path_hits_the_snr():
    module = AudioDenoiseDegradation(
        snr_db=(-5.0, 20.0), reverb_prob=0.0, eq_prob=0.0, clip_prob=0.0, gain_db=(-10.0, 6.0),
        full_scale=None,
    )
    clean = vowel(8, 8000)
    noise = torch.randn(8, 1, 8000, generator=gen(15))
    noisy = module(clean, noise, sample_rate=RATE, generator=gen(16))
    measured = snr_db(clean, noisy)
    assert measured.min() >= -5.01 and measured.max() <= 20.01 and measured.std() > 2
    residual = noisy - clean  # only scaled noise: the gain is undone
    scale = residual[:, 0, 0] / noise[:, 0, 0]
    torch.testing.assert_close(residual, noise * scale.view(-1, 1, 1), rtol=1e-3, atol=1e-6)
    fixed = AudioDenoiseDegradation(snr_db=(10.0, 10.0), reverb_prob=0.0, eq_prob=0.0, clip_prob=0.0)
    assert (snr_db(clean, fixed(clean, noise, generator=gen(17))) - 10.0).abs().max() < 0.01


def test_denoise_module_draws_in_a_fixed_order_so_clipping_is_the_only_change():
    clean = vowel(4, 4000)
    noise = torch.randn(4, 1, 4000, generator=gen(18))
    common = {"reverb_prob": 0.0, "eq_prob": 0.0, "gain_db": (0.0, 0.0), "clip_level": (0.5, 0.5)}
    common["full_scale"] = None
    plain = AudioDenoiseDegradation(clip_prob=0.0, **common)(clean, noise, generator=gen(19))
    clipped = AudioDenoiseDegradation(clip_prob=1.0, **common)(clean, noise, generator=gen(19))
    limit = 0.5 * plain.abs().amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(clipped, torch.maximum(torch.minimum(plain, limit), -limit))


def test_denoise_module_full_scale_clipping_depends_on_the_gain_and_is_undone():
    clean = vowel(2, 4000) * 8  # peaks above full scale
    noise = torch.randn(2, 1, 4000, generator=gen(20))
    module = AudioDenoiseDegradation(
        snr_db=(30.0, 30.0), reverb_prob=0.0, eq_prob=0.0, clip_prob=0.0, gain_db=(-20.0, -20.0)
    )
    quiet = module(clean, noise, generator=gen(21))  # 20 dB down: no clipping, same level as the input
    assert (snr_db(clean, quiet) - 30.0).abs().max() < 0.01
    loud = AudioDenoiseDegradation(
        snr_db=(30.0, 30.0), reverb_prob=0.0, eq_prob=0.0, clip_prob=0.0, gain_db=(0.0, 0.0)
    )(clean, noise, generator=gen(21))
    assert float(loud.abs().max()) <= 1.0 and float(quiet.abs().max()) > 1.0


def test_denoise_module_reverb_stays_aligned_with_the_dry_signal():
    module = AudioDenoiseDegradation(
        snr_db=(40.0, 40.0), reverb_prob=1.0, rt60=(0.3, 0.3), eq_prob=0.0, clip_prob=0.0
    )
    clean = vowel(2, 8000)
    wet = module(clean, sample_rate=RATE, generator=gen(22))
    for i in range(2):
        a, b = clean[i, 0].double(), wet[i, 0].double()
        lags = range(-40, 41)
        corr = [
            float((a[max(0, -k) : 8000 - max(0, k)] * b[max(0, k) : 8000 - max(0, -k)]).sum()) for k in lags
        ]
        assert list(lags)[int(np.argmax(corr))] == 0
        assert snr_db(clean[i : i + 1], wet[i : i + 1]) < 20  # the tail is there


def test_denoise_module_under_bf16_autocast_is_float32_and_finite():
    module = AudioDenoiseDegradation(reverb_prob=1.0, eq_prob=1.0, clip_prob=1.0)
    clean = vowel(2, 4000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(clean, generator=gen(23))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out, module(clean, generator=gen(23)))


def test_denoise_module_argument_errors():
    with pytest.raises(ValueError, match="snr_db"):
        AudioDenoiseDegradation(snr_db=(10.0, 0.0))
    with pytest.raises(ValueError, match="reverb_prob"):
        AudioDenoiseDegradation(reverb_prob=1.5)
    with pytest.raises(ValueError, match="clip_level"):
        AudioDenoiseDegradation(clip_level=(0.5, 1.5))
    with pytest.raises(TypeError, match="generator="):
        AudioDenoiseDegradation()(vowel(1, 100), gen(0))


def test_bandwidth_module_matches_band_limit_with_the_drawn_rates():
    module = AudioBandwidthDegradation()
    clean = vowel(1, 4000).repeat(8, 1, 1)
    out = module(clean, sample_rate=RATE, generator=gen(24))
    assert out.shape == clean.shape and torch.equal(out, module(clean, sample_rate=RATE, generator=gen(24)))
    candidates = {rate: band_limit(clean[:1], RATE, rate) for rate in (4000, 8000, 11025, 12000)}
    picked = []
    for i in range(8):
        matches = [rate for rate, y in candidates.items() if torch.allclose(out[i : i + 1], y, atol=1e-6)]
        assert len(matches) == 1
        picked.append(matches[0])
    assert len(set(picked)) >= 2  # per-item rates
    low = AudioBandwidthDegradation()(clean, sample_rate=8000, generator=gen(25))  # only 4000 is below
    torch.testing.assert_close(low, band_limit(clean, 8000, 4000))
    with pytest.raises(ValueError, match="below sample_rate"):
        AudioBandwidthDegradation(low_rates=(8000,))(clean, sample_rate=8000)
    with pytest.raises(ValueError, match="low_rates"):
        AudioBandwidthDegradation(low_rates=(8000.5,))


def test_registered_in_the_degradation_table():
    assert {"audio_denoise", "audio_bandwidth"} <= set(available_degradations())
    module = build_degradation("audio_denoise", snr_db=(0.0, 5.0))
    assert isinstance(module, AudioDenoiseDegradation) and module.snr_db == (0.0, 5.0) and module.scale == 1
    assert build_degradation("audio_bandwidth", low_rates=(8000,)).low_rates == (8000,)
    with pytest.raises(TypeError, match="Did you mean 'snr_db'"):
        build_degradation("audio_denoise", snr_bd=(0, 5))
    # the image-style call (clean, generator=...) works too
    out = build_degradation("audio_bandwidth")(vowel(2, 2000), generator=gen(26))
    assert out.shape == (2, 1, 2000)
