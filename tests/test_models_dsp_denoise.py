"""Classic speech enhancement (restore.models.dsp_denoise): E1, gain rules, the noise tracker, the models.

References: scipy.special.exp1 and the textbook gain formulas (Berouti 1979, Scalart 1996, Ephraim &
Malah 1985) evaluated in float64; SI-SDR from torchmetrics and PESQ-WB from the ``pesq`` package.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import lfilter
from scipy.special import exp1 as scipy_exp1
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio as si_sdr

import restore.models as models
from restore.models.dsp_denoise import (
    NoisePSDEstimator,
    berouti_gain,
    decision_directed,
    exp1,
    logmmse_gain,
    noise_psd,
    wiener_gain,
)
from restore.models.stft import STFT

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VOICEBANK = SHARED_DATA / "audio" / "VoiceBank_DEMAND_debug"
SR = 16000
METHODS = ("spectral_subtraction", "wiener", "logmmse")
HANN_POWER = 192.0  # sum of the squared periodic Hann window of 512: E|Y|^2 of unit white noise per bin

pytestmark = pytest.mark.usefixtures("one_thread")  # frame loops on small tensors: one thread is faster


def synthetic_speech(seconds: float, seed: int = 0, sr: int = SR) -> torch.Tensor:
    """Speech-like (1, 1, T): a 100-200 Hz pulse train through three formant resonators per syllable,
    with raised-sine syllable envelopes of 150-350 ms and pauses; peak 0.5."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.zeros(n)
    t = int(rng.uniform(0.15, 0.3) * sr)
    while t < n:
        dur = int(rng.uniform(0.15, 0.35) * sr)
        seg = min(dur, n - t)
        f0 = rng.uniform(100, 200) * np.linspace(1.0, rng.uniform(0.8, 1.2), seg)
        cycles = np.floor(np.cumsum(f0) / sr)
        x = (np.diff(cycles, prepend=0.0) > 0).astype(float) + 0.02 * rng.standard_normal(seg)
        for low, high, bw in ((300, 900, 80), (900, 2300, 120), (2400, 3200, 200)):
            fc = rng.uniform(low, high)
            r, theta = np.exp(-np.pi * bw / sr), 2 * np.pi * fc / sr
            x = lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], x)
        out[t : t + seg] += x * np.sin(np.pi * np.arange(seg) / dur) ** 2
        t += dur + int(rng.uniform(0.05, 0.4) * sr) * (rng.random() < 0.6)
    return torch.from_numpy(0.5 * out / np.abs(out).max()).float()[None, None]


def noise(kind: str, samples: int, seed: int = 0) -> torch.Tensor:
    """Unit-variance white or pink (1/f power above 50 Hz, no DC) noise (1, 1, T)."""
    white = torch.randn(samples, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if kind == "pink":
        spectrum = torch.fft.rfft(white)
        freqs = torch.fft.rfftfreq(samples, 1 / SR, dtype=torch.float64)
        spectrum = spectrum / freqs.clamp_min(50.0).sqrt()
        spectrum[0] = 0
        white = torch.fft.irfft(spectrum, samples)
    return (white / white.std()).float()[None, None]


def mix(clean: torch.Tensor, noise_: torch.Tensor, snr_db: float) -> torch.Tensor:
    return clean + noise_ * (clean.norm() / noise_.norm()) * 10 ** (-snr_db / 20)


# ---------------------------------------------------------------------------------------------- E1, gains


def test_exp1_matches_scipy_to_1e_5_relative():
    x = torch.logspace(-6, np.log10(50.0), 4001)  # float32 inputs; scipy on exactly those values
    ref = scipy_exp1(x.double().numpy())
    got = exp1(x)
    assert got.dtype == torch.float32
    rel = np.abs(got.double().numpy() - ref) / ref
    assert rel.max() < 1e-5, f"max relative error {rel.max():.2e} at x={x[rel.argmax()]:.4g}"
    edge = exp1(torch.tensor([0.0, 1.0, 200.0]))  # E1(0) = inf is clamped, E1(200) underflows to 0
    assert torch.isfinite(edge).all() and edge[2] == 0 and edge[0] > 60
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert exp1(x.bfloat16()).dtype == torch.float32


def test_gain_rules_match_their_textbook_formulas():
    xi = torch.tensor([1e-3, 0.1, 1.0, 3.0, 10.0, 100.0], dtype=torch.float64)
    gamma = torch.tensor([0.5, 2.0, 1.0, 5.0, 12.0, 80.0], dtype=torch.float64)
    torch.testing.assert_close(wiener_gain(xi), xi / (1 + xi))
    w = (xi / (1 + xi)).numpy()
    lsa = w * np.exp(0.5 * scipy_exp1(w * gamma.numpy()))  # Ephraim & Malah 1985, eq. (20)
    got = logmmse_gain(xi.float(), gamma.float()).double().numpy()
    np.testing.assert_allclose(got, lsa, rtol=1e-5)
    assert (got > w).all()  # exp(E1 / 2) > 1: the LSA gain always exceeds the Wiener gain
    assert torch.isfinite(logmmse_gain(torch.tensor([3e-3]), torch.tensor([0.0]))).all()

    # Berouti: frames with uniform power P over unit noise; alpha = 4 - 0.15 SNR, SNR clipped to [-5, 20]
    power = torch.tensor([10.0, 2.0, 1000.0, 0.2]).view(1, 1, 4).expand(1, 3, 4)
    noise_ = torch.ones(1, 3, 4)
    expected = []
    for p in (10.0, 2.0, 1000.0, 0.2):
        alpha = 4 - 0.15 * float(np.clip(10 * np.log10(p), -5, 20))
        expected.append(np.sqrt(max(p - alpha, 0.01) / p))
    got = berouti_gain(power, noise_, alpha0=4.0, floor=0.01)
    torch.testing.assert_close(got, torch.tensor(expected).float().view(1, 1, 4).expand(1, 3, 4))


def test_decision_directed_recursion_matches_a_reference_loop():
    gen = torch.Generator().manual_seed(0)
    power = torch.rand(2, 5, 12, generator=gen) * 10
    noise_ = torch.rand(2, 5, 12, generator=gen) + 0.5
    gains, xis = decision_directed(power, noise_, lambda xi, gamma: wiener_gain(xi), alpha=0.9, xi_min=0.01)
    prev = torch.zeros(2, 5)
    for m in range(12):
        gamma = power[..., m] / noise_[..., m]
        xi = (0.9 * prev + 0.1 * (gamma - 1).clamp_min(0)).clamp_min(0.01)
        torch.testing.assert_close(xis[..., m], xi)
        torch.testing.assert_close(gains[..., m], xi / (1 + xi))
        prev = (xi / (1 + xi)) ** 2 * gamma


# ---------------------------------------------------------------------------------------------- tracker


def tracked_level_db(x: torch.Tensor, true_psd: float) -> torch.Tensor:
    """Per-frame error (dB) of the tracked noise PSD, averaged over bins 2..254, against ``true_psd``."""
    power = STFT(512, 128)(x).abs().square()
    est = NoisePSDEstimator(SR, 128)(power)
    return 10 * torch.log10(est[0, 2:-2].mean(0) / true_psd)


@pytest.mark.parametrize("with_speech", [False, True])
def test_noise_tracker_follows_a_10_db_step_within_a_second(with_speech):
    sigma, step_s = 0.01, 3.0
    n = noise("white", 8 * SR, seed=1) * sigma
    n[..., int(step_s * SR) :] *= 10**0.5  # +10 dB
    x = n + (0.3 * synthetic_speech(8.0, seed=2) if with_speech else 0)
    after = sigma**2 * 10 * HANN_POWER
    err = tracked_level_db(x, after)
    frame = lambda s: int(s * SR / 128)  # noqa: E731
    before = err[frame(1.0) : frame(step_s)] + 10  # against the level before the step
    # measured (noise only / with speech): -1.0 / -0.5 dB before the step (the estimator settles about
    # 0.9 dB low on stationary noise), -6.2 / -5.8 dB at +0.25 s, -2.6 / -2.3 dB at +0.5 s, -1.2 / -1.0 dB
    # at +1 s, then -1.0 / -0.9 dB on average (between -1.2 and -0.3 dB)
    assert before.mean().abs() < 1.5
    assert err[frame(step_s + 0.25)] < -3.0  # a tracker, not an instantaneous level
    settled = err[frame(step_s + 1.0) :]
    assert settled.mean().abs() < 1.5 and settled.min() > -3.0 and settled.max() < 3.0


def test_noise_tracker_follows_a_drop_within_half_a_second():
    n = noise("white", 6 * SR, seed=3) * 0.01
    n[..., : 3 * SR] *= 10**0.5
    err = tracked_level_db(n, 0.01**2 * HANN_POWER)
    assert err[int(3.5 * SR / 128) :].abs().max() < 2.0  # measured +1.6 dB at +0.2 s, 0.3 dB at +0.3 s


def test_noise_tracker_is_causal_batched_and_fast():
    gen = torch.Generator().manual_seed(0)
    power = torch.rand(2, 257, 300, generator=gen).square() * 5
    est = noise_psd(power)
    changed = power.clone()
    changed[..., 200:] *= 30
    torch.testing.assert_close(noise_psd(changed)[..., :200], est[..., :200], rtol=0, atol=0)
    torch.testing.assert_close(noise_psd(power[1:]), est[1:])
    # the first frames are the running mean of the periodogram
    torch.testing.assert_close(est[..., :8], power[..., :8].cumsum(-1) / torch.arange(1, 9))
    tracker = NoisePSDEstimator(16000, 128)
    assert abs(tracker.alpha - 0.8**0.5) < 1e-3 and abs(tracker.spp_alpha - 0.9**0.5) < 1e-3
    assert NoisePSDEstimator(8000, 64).alpha == tracker.alpha  # constants are time constants

    ten_seconds = torch.rand(1, 257, 10 * SR // 128 + 1, generator=gen)
    best = float("inf")
    for _ in range(3):  # one thread (module fixture)
        start = time.perf_counter()
        noise_psd(ten_seconds)
        best = min(best, time.perf_counter() - start)
    assert best < 0.2, f"tracker took {best:.3f} s for 10 s of audio (measured 0.03-0.06 s)"


# ---------------------------------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def speech() -> torch.Tensor:
    return synthetic_speech(4.0, seed=0)


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_every_method_improves_si_sdr_of_synthetic_speech(speech, kind):
    # measured improvements (dB) at 0/5/10 dB input, white: spectral_subtraction 9.7/9.0/7.9,
    # wiener 11.0/9.6/8.5, logmmse 10.8/9.6/8.6; pink: 7.5/7.0/6.0, 8.3/6.8/5.5, 8.5/7.2/5.9
    for snr in (0, 5, 10):
        noisy = mix(speech, noise(kind, speech.shape[-1], seed=snr), snr)
        base = si_sdr(noisy, speech)
        for name in METHODS:
            gain = si_sdr(models.build(name)(noisy), speech) - base
            floor = 5.0 if (snr == 0 and name != "spectral_subtraction") else 3.0
            assert gain > floor, f"{name}, {kind} noise at {snr} dB: SI-SDR improved by {gain:.2f} dB"


@pytest.mark.parametrize("name", METHODS)
def test_pure_noise_is_attenuated_by_more_than_10_db(name):
    x = noise("white", 3 * SR, seed=5) * 0.05
    y = models.build(name)(x)
    attenuation = 10 * torch.log10(y.square().sum() / x.square().sum())
    assert attenuation < -10.0, f"{name}: {attenuation:.1f} dB"  # measured -14.5, -25.0, -18.0 dB


@pytest.mark.parametrize("name", METHODS)
def test_any_length_silence_batching_and_precision(name):
    model = models.build(name)
    for length in (1, 7, 256, 511, 512, 513, 3000):
        x = 0.1 * torch.randn(2, 1, length, generator=torch.Generator().manual_seed(length))
        y = model(x)
        assert y.shape == x.shape and y.dtype == torch.float32 and torch.isfinite(y).all()
    silence = model(torch.zeros(1, 1, 5000))
    assert torch.equal(silence, torch.zeros(1, 1, 5000))
    x = 0.1 * torch.randn(3, 1, 6000, generator=torch.Generator().manual_seed(0))
    full = model(x)
    torch.testing.assert_close(model(x[1:2]), full[1:2], rtol=0, atol=1e-6)  # batch items independent
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cpu", dtype=dtype):
            cast = model(x)
        assert cast.dtype == torch.float32 and torch.equal(cast, full)  # float32 inside autocast
    assert model(x.bfloat16()).dtype == torch.bfloat16


@pytest.mark.parametrize("name", METHODS)
def test_spec_weight_free_and_receptive_field(name):
    model = models.build(name)
    spec = models.spec_of(model)
    assert spec.task == "audio" and spec.inputs == ("audio",) and spec.in_channels == spec.out_channels == 1
    assert spec.supports_bf16 and spec.supports_fp16 and spec.size_multiple == 1
    assert spec.receptive_field == round(1.5 * SR) + 512  # tracker memory + one frame
    assert model.sample_rate == SR and spec.config["sample_rate"] == SR
    assert list(model.parameters()) == [] and model.state_dict() == {}
    eight_k = models.build(name, sample_rate=8000, n_fft=256, hop=64)
    assert eight_k.spec.receptive_field == 12000 + 256
    # causal up to one frame: a change at t0 leaves everything before t0 - n_fft untouched
    x = 0.1 * torch.randn(1, 1, 8000, generator=torch.Generator().manual_seed(1))
    changed = x.clone()
    changed[..., 5000:] += 0.5
    torch.testing.assert_close(model(changed)[..., : 5000 - 512], model(x)[..., : 5000 - 512], rtol=0, atol=0)


def test_invalid_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="dd_alpha"):
        models.build("wiener", dd_alpha=1.0)
    with pytest.raises(ValueError, match="floor"):
        models.build("spectral_subtraction", floor=2.0)
    with pytest.raises(ValueError, match=r"\(N, 1, T\)"):
        models.build("logmmse")(torch.zeros(1, 2, 100))
    with pytest.raises(ValueError, match="power must be"):
        noise_psd(torch.zeros(3, 4))


# ---------------------------------------------------------------------------------------------- real noise


@pytest.mark.skipif(not (VOICEBANK / "clean").is_dir(), reason=f"{VOICEBANK} not present")
def test_voicebank_demand_pairs_improve():
    import soundfile as sf
    from pesq import pesq

    scores: dict[str, list[tuple[float, float]]] = {name: [] for name in ("noisy", *METHODS)}
    models_ = {name: models.build(name) for name in METHODS}
    for clean_path in sorted((VOICEBANK / "clean").glob("*.wav")):
        clean, sr = sf.read(clean_path, dtype="float32")
        noisy, _ = sf.read(VOICEBANK / "noisy" / clean_path.name, dtype="float32")
        assert sr == SR
        clean_t, noisy_t = torch.from_numpy(clean), torch.from_numpy(noisy)
        outputs = {"noisy": noisy_t, **{n: m(noisy_t[None, None])[0, 0] for n, m in models_.items()}}
        for name, y in outputs.items():
            quality = pesq(SR, clean.astype(np.float64), y.double().numpy(), "wb")
            scores[name].append((float(si_sdr(y, clean_t)), quality))
    base = np.array(scores["noisy"]).mean(0)
    delta = {name: np.array(scores[name]).mean(0) - base for name in METHODS}
    report = ", ".join(f"{n}: {d[0]:+.2f} dB / {d[1]:+.3f}" for n, d in delta.items())
    print(f"VoiceBank debug pairs, noisy {base[0]:.2f} dB / PESQ {base[1]:.3f}; change {report}")
    # measured (6 pairs, noisy 8.20 dB SI-SDR, PESQ-WB 1.413): spectral_subtraction +1.15 dB / +0.058,
    # wiener +0.67 dB / -0.071, logmmse +0.94 dB / +0.065
    assert all(d[0] > 0.3 for d in delta.values()), report
    assert delta["spectral_subtraction"][0] > 0.8 and delta["spectral_subtraction"][1] > 0, report
    assert delta["logmmse"][0] > 0.6 and delta["logmmse"][1] > 0, report
