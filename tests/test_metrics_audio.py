"""Audio metrics (restore.metrics): SI-SDR, PESQ, STOI and LSD against torchmetrics, pesq, pystoi and numpy.

Real speech: the VoiceBank+DEMAND clean/noisy pairs in ../shared/data (tests skip when absent); every
comparison also runs on a synthesised harmonic "vowel" with noise, which needs no data.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from restore import metrics
from restore.metrics import lsd, pesq, si_sdr, stoi

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VOICEBANK = SHARED_DATA / "audio" / "VoiceBank_DEMAND_debug"

pesq_package = pytest.importorskip("pesq")
pystoi_package = pytest.importorskip("pystoi")
tm_audio = pytest.importorskip("torchmetrics.functional.audio")


def vowel(seconds: float, sample_rate: int, seed: int = 0) -> torch.Tensor:
    """A voiced, syllable-modulated harmonic signal ``(T,)`` float64: 20 harmonics of a gliding f0 with
    two formant peaks, amplitude envelope at 3 syllables per second, short pauses."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    f0 = 130 + 20 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sample_rate
    x = torch.zeros_like(t)
    for k in range(1, 21):
        freq = 130.0 * k
        if freq > 0.45 * sample_rate:
            break
        gain = math.exp(-(((freq - 700) / 300) ** 2)) + 0.6 * math.exp(-(((freq - 1800) / 400) ** 2)) + 0.05
        x += gain * torch.sin(k * phase + 2 * math.pi * torch.rand((), generator=gen, dtype=torch.float64))
    envelope = torch.sin(math.pi * 3 * t).clamp_min(0) ** 2
    return 0.3 * x * envelope / x.abs().max()


def noisy_copy(x: torch.Tensor, snr_db: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    noise *= x.square().mean().sqrt() / noise.square().mean().sqrt() / 10 ** (snr_db / 20)
    return x + noise


@pytest.fixture(scope="module")
def synth_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Two items at 16 kHz, 2 s: (noisy (2, 1, T) float32, clean (2, 1, T) float32)."""
    clean = torch.stack([vowel(2.0, 16000, seed=0), vowel(2.0, 16000, seed=1)])[:, None]
    noisy = torch.stack([noisy_copy(clean[0, 0], 5.0, 2), noisy_copy(clean[1, 0], 15.0, 3)])[:, None]
    return noisy.float(), clean.float()


@pytest.fixture(scope="module")
def speech_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """VoiceBank+DEMAND pairs cropped to the shortest: (noisy (6, 1, T), clean (6, 1, T)) at 16 kHz."""
    if not (VOICEBANK / "clean").is_dir():
        pytest.skip(f"VoiceBank_DEMAND_debug not found under {SHARED_DATA}")
    import soundfile

    clean, noisy = [], []
    for path in sorted((VOICEBANK / "clean").glob("*.wav")):
        c, rate_c = soundfile.read(path, dtype="float32")
        n, rate_n = soundfile.read(VOICEBANK / "noisy" / path.name, dtype="float32")
        assert rate_c == rate_n == 16000 and c.shape == n.shape
        clean.append(torch.from_numpy(c))
        noisy.append(torch.from_numpy(n))
    length = min(len(c) for c in clean)
    return tuple(torch.stack([x[:length] for x in xs])[:, None] for xs in (noisy, clean))


PAIRS = ["synth_pair", "speech_pair"]


# ---------------------------------------------------------------------------------------------
# SI-SDR


@pytest.mark.parametrize("pair", PAIRS)
def test_si_sdr_equals_torchmetrics_zero_mean(pair, request):
    pred, target = request.getfixturevalue(pair)
    ours = si_sdr(pred, target)
    ref = tm_audio.scale_invariant_signal_distortion_ratio(
        pred[:, 0].double(), target[:, 0].double(), zero_mean=True
    )
    assert ours.dtype == torch.float64 and ours.shape == (pred.shape[0],)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-10)
    # scale and offset invariant; (N, T), (T,) and numpy inputs give the same values
    torch.testing.assert_close(si_sdr(3.0 * pred + 0.1, target), ours, rtol=1e-6, atol=0)  # float32 input
    torch.testing.assert_close(si_sdr(pred[:, 0], target[:, 0].numpy()), ours)
    torch.testing.assert_close(si_sdr(pred[0, 0].numpy(), target[0, 0]), ours[:1])
    assert si_sdr(pred, target, reduction="mean") == pytest.approx(float(ours.mean()))


def test_si_sdr_of_known_distortion():
    """target + e with e orthogonal to target (both zero-mean): SI-SDR = 10 log10(|target|^2 / |e|^2)."""
    t = torch.arange(8000, dtype=torch.float64) / 8000
    target = torch.sin(2 * math.pi * 50 * t)
    error = 0.1 * torch.cos(2 * math.pi * 50 * t)  # orthogonal over whole periods
    expected = 10 * math.log10(float(target.square().sum() / error.square().sum()))
    assert float(si_sdr(target + error, target)) == pytest.approx(expected, abs=1e-6)
    assert float(si_sdr(target, target)) > 100  # identical: limited only by eps


def test_si_sdr_stays_float64_under_autocast(synth_pair):
    pred, target = synth_pair
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = si_sdr(pred, target)
    assert value.dtype == torch.float64
    torch.testing.assert_close(value, si_sdr(pred, target), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# PESQ


@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("mode", ["wb", "nb"])
def test_pesq_equals_torchmetrics_and_the_pesq_package(pair, mode, request):
    pred, target = request.getfixturevalue(pair)
    pred, target = pred[:3], target[:3]
    ours = pesq(pred, target, 16000, mode)
    assert ours.dtype == torch.float64 and ours.shape == (pred.shape[0],)
    tm = tm_audio.perceptual_evaluation_speech_quality(pred[:, 0], target[:, 0], 16000, mode)
    pairs = zip(pred[:, 0].numpy(), target[:, 0].numpy(), strict=True)
    direct = [pesq_package.pesq(16000, t, p, mode) for p, t in pairs]
    torch.testing.assert_close(ours, tm.double(), rtol=0, atol=1e-5)
    torch.testing.assert_close(ours, torch.tensor(direct, dtype=torch.float64), rtol=0, atol=1e-5)
    assert (ours > 1.0).all() and (ours < 4.7).all()
    clean_score = pesq(target[:1], target[:1], 16000, mode)
    assert float(clean_score) > float(ours[0])  # the clean reference scores best


def test_pesq_narrowband_at_8k_and_resampling_other_rates():
    from scipy.signal import resample_poly

    clean16, clean8 = (vowel(2.0, rate, seed=0)[None, None] for rate in (16000, 8000))
    noisy16, noisy8 = (noisy_copy(c, 10.0, seed=4) for c in (clean16, clean8))
    # 8 kHz narrow-band: scored as given, as torchmetrics and the package do
    nb8 = pesq(noisy8, clean8, 8000, "nb")
    tm = tm_audio.perceptual_evaluation_speech_quality(noisy8[0, 0], clean8[0, 0], 8000, "nb")
    assert float(nb8) == pytest.approx(float(tm), abs=1e-5)
    with pytest.raises(ValueError, match="no wide band mode"):
        pesq_package.pesq(8000, clean8[0, 0].numpy(), noisy8[0, 0].numpy(), "wb")
    # Other rates are resampled to 16 kHz (wb) / 8 kHz (nb): a pair upsampled to 48 kHz elsewhere
    # (scipy's polyphase filter) scores as the original pair.
    def up(x: torch.Tensor, factor: int) -> torch.Tensor:
        return torch.from_numpy(resample_poly(x.numpy(), factor, 1, axis=-1))

    wb48 = pesq(up(noisy16, 3), up(clean16, 3), 48000, "wb")
    assert float(wb48) == pytest.approx(float(pesq(noisy16, clean16, 16000)), abs=0.05)
    nb48 = pesq(up(noisy8, 6), up(clean8, 6), 48000, "nb")
    assert float(nb48) == pytest.approx(float(nb8), abs=0.05)
    # an 8 kHz input for wide-band is resampled up to 16 kHz instead of failing
    assert 1.0 < float(pesq(noisy8, clean8, 8000, "wb")) < 4.7


def test_pesq_errors_say_what_went_wrong():
    silent = torch.zeros(1, 1, 32000)
    with pytest.raises(ValueError, match=r"no speech detected in item 0 \(2\.000 s at 16000 Hz\)"):
        pesq(silent, silent, 16000)
    with pytest.raises(ValueError, match="no speech detected"):
        pesq(vowel(2.0, 16000)[None], silent[0], 16000)  # the package's NoUtterancesError
    short = vowel(0.1, 16000)
    with pytest.raises(ValueError, match=r"too short in item 0 \(0\.100 s at 16000 Hz\).*at least 0\.25 s"):
        pesq(short, short, 16000)
    with pytest.raises(ValueError, match="mode must be one of"):
        pesq(short, short, 16000, mode="swb")
    with pytest.raises(ValueError, match="sample_rate must be a positive int"):
        pesq(short, short, 16000.0)
    bad = vowel(1.0, 16000).clone()
    bad[10] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        pesq(bad, vowel(1.0, 16000), 16000)


def test_missing_optional_packages_say_how_to_install(monkeypatch, synth_pair):
    pred, target = synth_pair
    monkeypatch.setitem(sys.modules, "pesq", None)
    with pytest.raises(ImportError, match=r"PESQ metric needs the optional package 'pesq': pip install pesq"):
        pesq(pred, target, 16000)
    monkeypatch.setitem(sys.modules, "pystoi", None)
    with pytest.raises(ImportError, match=r"pip install pesq pystoi"):
        stoi(pred, target, 16000)
    assert si_sdr(pred, target).shape == (2,)  # the others need neither


# ---------------------------------------------------------------------------------------------
# STOI


@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("extended", [False, True])
def test_stoi_equals_torchmetrics_and_pystoi(pair, extended, request):
    pred, target = request.getfixturevalue(pair)
    ours = stoi(pred, target, 16000, extended=extended)
    assert ours.dtype == torch.float64 and ours.shape == (pred.shape[0],)
    tm = tm_audio.short_time_objective_intelligibility(pred[:, 0], target[:, 0], 16000, extended)
    direct = [
        pystoi_package.stoi(t[0].numpy(), p[0].numpy(), 16000, extended=extended)
        for p, t in zip(pred, target, strict=True)
    ]
    torch.testing.assert_close(ours, tm.double(), rtol=0, atol=1e-6)
    torch.testing.assert_close(ours, torch.tensor(direct, dtype=torch.float64), rtol=0, atol=1e-6)
    assert (ours < float(stoi(target[:1], target[:1], 16000, extended=extended)) + 1e-9).all()


def test_stoi_too_little_speech_raises():
    short = vowel(0.2, 16000)
    with pytest.raises(ValueError, match=r"STOI: too little speech in item 0 \(0\.200 s at 16000 Hz\)"):
        stoi(short, short, 16000)


# ---------------------------------------------------------------------------------------------
# LSD


def numpy_lsd(pred: np.ndarray, target: np.ndarray, n_fft: int, hop: int) -> float:
    """Independent LSD of two 1-D signals: centred frames (reflect pad n_fft//2), periodic Hann, rfft."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)

    def log_power(x: np.ndarray) -> np.ndarray:
        mode = "reflect" if len(x) > n_fft // 2 else "constant"
        x = np.pad(x.astype(np.float64), n_fft // 2, mode=mode)
        frames = np.stack([x[s : s + n_fft] * window for s in range(0, len(x) - n_fft + 1, hop)])
        return np.log10(np.abs(np.fft.rfft(frames, axis=-1)) ** 2 + 1e-8)  # (frames, bins)

    diff = log_power(pred) - log_power(target)
    return float(np.mean(np.sqrt(np.mean(diff**2, axis=-1))))


@pytest.mark.parametrize("pair", PAIRS)
def test_lsd_equals_a_numpy_implementation(pair, request):
    pred, target = request.getfixturevalue(pair)
    ours = lsd(pred, target, 16000)
    assert ours.dtype == torch.float64 and ours.shape == (pred.shape[0],)
    ref = [numpy_lsd(p[0].numpy(), t[0].numpy(), 2048, 512) for p, t in zip(pred, target, strict=True)]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10, atol=1e-12)
    small = lsd(pred, target, n_fft=512, hop=128)
    ref_small = [numpy_lsd(p[0].numpy(), t[0].numpy(), 512, 128) for p, t in zip(pred, target, strict=True)]
    np.testing.assert_allclose(small.numpy(), ref_small, rtol=1e-10, atol=1e-12)
    assert (ours > 0).all()
    torch.testing.assert_close(lsd(target, pred), ours)  # symmetric


def test_lsd_zero_for_identical_signals_and_short_inputs():
    x = vowel(1.0, 16000)
    assert float(lsd(x, x)) == 0.0
    y = noisy_copy(x, 20.0, seed=5)
    assert float(lsd(y, x)) < float(lsd(noisy_copy(x, 0.0, seed=5), x))  # more noise, larger distance
    short_x, short_y = x[:700], y[:700]  # not longer than n_fft // 2: zero padding instead of reflection
    value = float(lsd(short_y, short_x))
    assert value == pytest.approx(numpy_lsd(short_y.numpy(), short_x.numpy(), 2048, 512), rel=1e-10)
    with pytest.raises(ValueError, match="hop must be an int >= 1"):
        lsd(x, x, hop=0)


# ---------------------------------------------------------------------------------------------
# Shared input handling and the table


@pytest.mark.parametrize("fn", [si_sdr, pesq, stoi, lsd])
def test_mismatched_or_multichannel_inputs_raise(fn):
    x = vowel(1.0, 16000)
    with pytest.raises(ValueError, match=r"shapes differ: \(1, 1, 16000\) vs \(1, 1, 15999\)"):
        fn(x[None, None], x[None, None, :-1], 16000)
    with pytest.raises(ValueError, match=r"mono audio \(N, 1, T\), \(N, T\) or \(T,\), got shape \(1, 2, 16"):
        fn(x.expand(1, 2, -1), x.expand(1, 2, -1), 16000)
    with pytest.raises(ValueError, match="torch.Tensor or a numpy array, got list"):
        fn([0.0, 1.0], x[:2], 16000)


def test_audio_metrics_in_the_table(synth_pair):
    assert metrics.available_metrics("audio") == ["lsd", "pesq", "si_sdr", "stoi"]
    assert metrics.available_metrics("image") == ["lpips", "psnr", "ssim"]
    expected = {"si_sdr": True, "pesq": True, "stoi": True, "lsd": False}
    pred, target = synth_pair
    for name, higher in expected.items():
        spec = metrics.get_metric(name)
        assert spec.modality == "audio" and spec.higher_is_better is higher and not spec.needs_weights
        value = spec.fn(pred, target, 16000)  # one calling convention for every audio metric
        assert value.shape == (2,) and torch.isfinite(value).all()
        clean = spec.fn(target, target, 16000)
        assert ((clean > value) if higher else (clean < value)).all(), name
