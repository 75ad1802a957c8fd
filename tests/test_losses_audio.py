"""Audio losses (losses/spectral.py, losses/waveform.py) against auraloss, torchmetrics and torchaudio."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

import losses
from losses import spectral, waveform

SR = 16000
AUDIO_ENTRIES = ("mrstft", "mel", "multiscale_mel", "si_sdr", "snr", "l1_snr")
SPECTRAL = ("mrstft", "mel", "multiscale_mel")
RATIOS = ("si_sdr", "snr", "l1_snr")


def speech_like(batch: int, channels: int, seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Voiced, speech-like test signal: a harmonic series on a gliding f0, syllabic AM, formant-ish
    emphasis and a little breath noise. Shape (batch, channels, T), peak below 1."""
    g = torch.Generator().manual_seed(seed)
    n = int(SR * seconds)
    t = torch.arange(n, dtype=torch.float64) / SR
    out = torch.empty(batch, channels, n, dtype=torch.float64)
    for b in range(batch):
        for c in range(channels):
            f0_start, f0_end = (
                100 + 80 * torch.rand(1, generator=g).item(),
                120 + 100 * torch.rand(1, generator=g).item(),
            )
            f0 = f0_start + (f0_end - f0_start) * t / seconds + 8 * torch.sin(2 * math.pi * 5 * t)
            phase = 2 * math.pi * torch.cumsum(f0, 0) / SR
            formant = 500 + 1500 * torch.rand(1, generator=g).item()
            voiced = sum(
                torch.sin(k * phase) * math.exp(-(((k * f0_start - formant) / 800) ** 2)) / k
                for k in range(1, 25)
            )
            syllables = 0.5 * (1 - torch.cos(2 * math.pi * (3 + torch.rand(1, generator=g).item()) * t))
            noise = 0.02 * torch.randn(n, generator=g, dtype=torch.float64)
            out[b, c] = syllables * voiced + noise
    return (0.8 * out / out.abs().amax()).float()


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A stereo target and a degraded prediction (noise + slight gain and filtering), (2, 2, 16000)."""
    target = speech_like(2, 2)
    g = torch.Generator().manual_seed(1)
    noisy = 0.9 * target + 0.05 * torch.randn(target.shape, generator=g)
    pred = F.avg_pool1d(noisy.reshape(-1, 1, target.shape[-1]), 3, 1, 1).reshape(target.shape)
    return pred, target


def rel(a: torch.Tensor | float, b: torch.Tensor | float) -> float:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


# --- mrstft -----------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2])
def test_mrstft_equals_auraloss_defaults(pair, channels):
    auraloss = pytest.importorskip("auraloss")
    pred, target = pair[0][:, :channels].contiguous(), pair[1][:, :channels].contiguous()
    ref_pred, our_pred = pred.clone().requires_grad_(True), pred.clone().requires_grad_(True)
    ref = auraloss.freq.MultiResolutionSTFTLoss()(ref_pred, target)
    ours = losses.create("mrstft")(our_pred, target)
    assert rel(ours, ref) < 1e-5
    ref.backward()
    ours.backward()
    # the fused STFT/magnitude backward against autograd through torch.stft
    assert rel(our_pred.grad, ref_pred.grad) < 1e-4


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(fft_sizes=[256, 512, 128], hop_sizes=[64, 128, 32], win_lengths=[256, 400, 100]),
        dict(fft_sizes=[4096, 255], hop_sizes=[1024, 60], win_lengths=[3000, 255], window="hamming_window"),
        dict(w_sc=0.5, w_log_mag=2.0, w_lin_mag=1.0),
        dict(w_phs=0.3),
        dict(mag_distance="L2", w_lin_mag=1.0),
    ],
)
def test_mrstft_equals_auraloss_other_settings(pair, kwargs):
    auraloss = pytest.importorskip("auraloss")
    pred, target = pair
    ref_pred, our_pred = pred.clone().requires_grad_(True), pred.clone().requires_grad_(True)
    ref = auraloss.freq.MultiResolutionSTFTLoss(**kwargs)(ref_pred, target)
    ours = losses.create("mrstft", **kwargs)(our_pred, target)
    assert rel(ours, ref) < 1e-5
    ref.backward()
    ours.backward()
    assert rel(our_pred.grad, ref_pred.grad) < 1e-4


def test_mrstft_gradient_to_target_equals_auraloss(pair):
    auraloss = pytest.importorskip("auraloss")
    pred, target = pair
    ref_target, our_target = target.clone().requires_grad_(True), target.clone().requires_grad_(True)
    auraloss.freq.MultiResolutionSTFTLoss()(pred, ref_target).backward()
    losses.create("mrstft")(pred, our_target).backward()
    assert rel(our_target.grad, ref_target.grad) < 1e-4


def test_stft_backward_gradcheck():
    """Both custom autograd functions against finite differences (float64, odd and even FFT sizes)."""
    g = torch.Generator().manual_seed(0)
    for n_fft, hop, win in [(16, 4, 12), (15, 5, 15)]:
        window = torch.hann_window(win, dtype=torch.float64)
        x = torch.randn(2, 40, generator=g, dtype=torch.float64, requires_grad=True)
        y = torch.randn(2, 40, generator=g, dtype=torch.float64, requires_grad=True)

        def spectra(a, b, n_fft=n_fft, hop=hop, win=win, window=window):
            sx, sy = spectral._STFTPair.apply(a, b, n_fft, hop, win, window)
            return torch.view_as_real(sx), torch.view_as_real(sy)

        def magnitudes(a, b, n_fft=n_fft, hop=hop, win=win, window=window):
            return spectral._STFTMagnitudePair.apply(a, b, n_fft, hop, win, window, 1e-8)

        assert torch.autograd.gradcheck(spectra, (x, y), fast_mode=True)
        assert torch.autograd.gradgradcheck(spectra, (x, y), fast_mode=True)
        assert torch.autograd.gradcheck(magnitudes, (x, y), fast_mode=True)


def test_mrstft_mono_2d_input_and_function(pair):
    pred, target = pair[0][:, 0], pair[1][:, 0]
    module = losses.create("mrstft")
    value_2d = module(pred, target)
    value_3d = module(pred[:, None], target[:, None])
    assert rel(value_2d, value_3d) < 1e-6
    assert rel(spectral.multi_resolution_stft_loss(pred, target), value_3d) < 1e-6


def test_mrstft_windows_are_nonpersistent_buffers():
    module = spectral.MultiResolutionSTFTLoss()
    assert module.state_dict() == {}
    assert len(list(module.buffers())) == 3
    assert [w.shape[0] for w in module.windows] == [600, 1200, 240]
    assert module.to(torch.float64).window_0.dtype == torch.float64  # moves with .to()


def test_mrstft_argument_errors():
    with pytest.raises(ValueError, match="equal length"):
        losses.create("mrstft", fft_sizes=[512, 1024], hop_sizes=[128], win_lengths=[512])
    with pytest.raises(ValueError, match="longer than"):
        losses.create("mrstft", fft_sizes=[256], hop_sizes=[64], win_lengths=[512])
    with pytest.raises(ValueError, match="window"):
        losses.create("mrstft", window="hanning")
    with pytest.raises(ValueError, match="mag_distance"):
        losses.create("mrstft", mag_distance="L3")
    with pytest.raises(ValueError, match="too short"):
        losses.create("mrstft")(torch.zeros(1, 1, 900), torch.zeros(1, 1, 900))
    with pytest.raises(ValueError, match="shapes differ"):
        losses.create("mrstft")(torch.zeros(1, 1, 4000), torch.zeros(1, 2, 4000))


# --- mel and multi-scale mel ------------------------------------------------------------------------


def test_mel_equals_torchaudio(pair):
    torchaudio = pytest.importorskip("torchaudio")
    pred, target = pair
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=1024, hop_length=256, n_mels=80, f_min=0.0, f_max=None, power=1.0
    )
    expected = (torch.log(mel(pred).clamp(min=1e-5)) - torch.log(mel(target).clamp(min=1e-5))).abs().mean()
    assert rel(losses.create("mel")(pred, target), expected) < 1e-5
    assert rel(spectral.mel_loss(pred, target), expected) < 1e-5
    # (N, T) input is one channel
    mono = (
        (torch.log(mel(pred[:, 0]).clamp(min=1e-5)) - torch.log(mel(target[:, 0]).clamp(min=1e-5)))
        .abs()
        .mean()
    )
    assert rel(losses.create("mel")(pred[:, 0], target[:, 0]), mono) < 1e-5


def test_mel_constructs_quietly_and_saves_no_state():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module = losses.create("mel")
        losses.create("multiscale_mel")
    assert module.state_dict() == {}


def _reference_multiscale_mel(
    x,
    y,
    sample_rate=16000,
    range_start=6,
    range_end=11,
    n_mels=64,
    normalized=False,
    alphas=True,
    floor_level=1e-5,
):
    """audiocraft's MultiScaleMelSpectrogramLoss written out plainly, one transform per call."""
    import torchaudio

    loss = 0.0
    total = 0.0
    for i in range(range_start, range_end):
        n_fft, hop = 2**i, int(2**i / 4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mel = torchaudio.transforms.MelSpectrogram(
                n_mels=n_mels,
                sample_rate=sample_rate,
                n_fft=n_fft,
                hop_length=hop,
                win_length=n_fft,
                f_min=0.0,
                f_max=None,
                normalized=normalized,
                window_fn=torch.hann_window,
                center=False,
            )

        def spec(s, log, n_fft=n_fft, hop=hop, mel=mel):
            p = (n_fft - hop) // 2
            s = F.pad(s, (p, p), "reflect")
            length = s.shape[-1]
            frames = (length - n_fft) / hop + 1
            s = F.pad(s, (0, (math.ceil(frames) - 1) * hop + n_fft - length))
            m = mel(s)
            if log:
                m = torch.log10(floor_level + m)
            return m.reshape(m.shape[0], -1, m.shape[-1])

        alpha = math.sqrt(2**i - 1) if alphas else 1.0
        loss = (
            loss
            + F.l1_loss(spec(x, False), spec(y, False))
            + alpha * F.mse_loss(spec(x, True), spec(y, True))
        )
        total += alpha + 1
    return loss / total if normalized else loss


@pytest.mark.parametrize(
    "kwargs", [{}, dict(normalized=True), dict(alphas=False, n_mels=40, range_start=7, sample_rate=24000)]
)
def test_multiscale_mel_equals_reference(pair, kwargs):
    pred, target = pair
    expected = _reference_multiscale_mel(pred, target, **kwargs)
    assert rel(losses.create("multiscale_mel", **kwargs)(pred, target), expected) < 1e-5
    assert rel(spectral.multiscale_mel_loss(pred, target, **kwargs), expected) < 1e-5


def test_multiscale_mel_gain_behaviour(pair):
    """Power mel: the L1 term grows as gain^2 and the log term is gain-invariant, so with a negligible
    floor loss(a x, a y) = a^2 A + B and (f(3) - f(1)) / (f(2) - f(1)) = 8 / 3."""
    pred, target = pair
    loss = losses.create("multiscale_mel", floor_level=1e-20)
    f = {a: loss(a * pred, a * target).item() for a in (1.0, 2.0, 3.0)}
    assert f[2.0] > f[1.0]
    assert (f[3.0] - f[1.0]) / (f[2.0] - f[1.0]) == pytest.approx(8 / 3, rel=1e-3)


def test_multiscale_mel_argument_errors():
    with pytest.raises(ValueError, match="range_start"):
        losses.create("multiscale_mel", range_start=8, range_end=8)
    with pytest.raises(ValueError, match="floor_level"):
        losses.create("multiscale_mel", floor_level=0.0)
    with pytest.raises(ValueError, match="Nyquist"):
        losses.create("mel", f_max=9000.0)


# --- waveform ratios ------------------------------------------------------------------------------


@pytest.mark.parametrize("zero_mean", [False, True])
def test_si_sdr_equals_torchmetrics(pair, zero_mean):
    tm = pytest.importorskip("torchmetrics.functional.audio")
    pred, target = pair
    pred = pred + 0.01  # an offset, so that zero_mean matters
    expected = tm.scale_invariant_signal_distortion_ratio(pred, target, zero_mean=zero_mean)
    ours = waveform.si_sdr(pred, target, zero_mean=zero_mean)
    assert ours.shape == (2, 2)
    assert (ours - expected).abs().max() < 1e-4
    loss = losses.create("si_sdr", zero_mean=zero_mean)(pred, target)
    assert (loss + expected.mean()).abs() < 1e-4


@pytest.mark.parametrize("zero_mean", [False, True])
def test_snr_equals_torchmetrics(pair, zero_mean):
    tm = pytest.importorskip("torchmetrics.functional.audio")
    pred, target = pair
    pred = pred + 0.01
    expected = tm.signal_noise_ratio(pred, target, zero_mean=zero_mean)
    assert (waveform.snr(pred, target, zero_mean=zero_mean) - expected).abs().max() < 1e-4
    loss = losses.create("snr", zero_mean=zero_mean)(pred, target)
    assert (loss + expected.mean()).abs() < 1e-4
    none = losses.create("snr", zero_mean=zero_mean, reduction="none")(pred, target)
    assert none.shape == (2, 2) and (none + expected).abs().max() < 1e-4


def test_si_sdr_scale_invariant(pair):
    pred, target = pair
    base = waveform.si_sdr(pred, target)
    for gain in (0.05, 0.5, 3.0):
        assert (waveform.si_sdr(gain * pred, target) - base).abs().max() < 1e-3
    # SNR is not scale-invariant
    assert (waveform.snr(0.5 * pred, target) - waveform.snr(pred, target)).abs().min() > 0.1


def test_si_sdr_float64_stays_float64(pair):
    pred, target = (t.double() for t in pair)
    assert waveform.si_sdr(pred, target).dtype == torch.float64


def test_l1_snr_formula(pair):
    pred, target = pair
    n = pred.shape[0]
    err = (pred - target).reshape(n, -1).abs().sum(-1)
    ref = target.reshape(n, -1).abs().sum(-1)
    expected = -10 * torch.log10((ref + 1e-3) / (err + 1e-3))
    assert rel(losses.create("l1_snr")(pred, target), expected.mean()) < 1e-5
    assert rel(losses.create("l1_snr", reduction="none")(pred, target), expected) < 1e-5
    # a common gain changes nothing (beyond eps)
    assert rel(waveform.l1_snr_loss(4 * pred, 4 * target), waveform.l1_snr_loss(pred, target)) < 1e-4


def test_ratio_argument_errors():
    with pytest.raises(ValueError, match="eps"):
        losses.create("si_sdr", eps=0.0)
    with pytest.raises(ValueError, match="reduction"):
        losses.create("l1_snr", reduction="avg")
    with pytest.raises(ValueError, match="shape"):
        waveform.si_sdr(torch.zeros(2, 1, 5, 10), torch.zeros(2, 1, 5, 10))


# --- properties common to all six entries ---------------------------------------------------------------


def test_registry_metadata():
    for name in AUDIO_ENTRIES:
        spec = losses.get(name)
        assert spec.modality == "audio" and spec.input_range == "[-1,1]" and spec.fp32
        assert spec.lower_is_better and spec.inputs == ("pred", "target")
        assert spec.kind == ("spectral" if name in SPECTRAL else "waveform")
        assert spec.summary
    assert set(AUDIO_ENTRIES) <= set(losses.available(modality="audio"))


@pytest.mark.parametrize("name", AUDIO_ENTRIES)
def test_identity(pair, name):
    target = pair[1]
    value = losses.create(name)(target.clone(), target)
    assert torch.isfinite(value)
    if name in SPECTRAL:
        assert value.abs() < 1e-6
    else:
        assert value < -60  # e.g. -10 log10(||t||^2 / eps): very negative, finite


@pytest.mark.parametrize("name", AUDIO_ENTRIES)
def test_finite_gradient_at_zero_residual(pair, name):
    target = pair[1]
    pred = target.clone().requires_grad_(True)
    losses.create(name)(pred, target).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


@pytest.mark.parametrize("name", AUDIO_ENTRIES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_matches_float32(pair, name, dtype):
    pred, target = pair
    loss = losses.create(name)
    reference = loss(pred, target)
    with torch.autocast("cpu", dtype=dtype):
        value = loss(pred, target)
        direct = loss.loss(pred, target)  # the bare module guards itself too
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert rel(value, reference) < 1e-5
    assert rel(direct, reference) < 1e-5


@pytest.mark.parametrize("name", AUDIO_ENTRIES)
def test_bfloat16_input_through_registry(pair, name):
    pred, target = pair
    pred_bf16 = pred.bfloat16().requires_grad_(True)
    value = losses.create(name)(pred_bf16, target.bfloat16())
    assert value.dtype == torch.float32
    expected = losses.create(name)(pred.bfloat16().float(), target.bfloat16().float())
    assert rel(value, expected) < 1e-5
    value.backward()
    assert pred_bf16.grad is not None and pred_bf16.grad.dtype == torch.bfloat16
    assert torch.isfinite(pred_bf16.grad.float()).all() and pred_bf16.grad.abs().sum() > 0


def test_build_total_is_weighted_sum(pair):
    pred, target = pair
    loss_set = losses.build({"mrstft": 1.0, "si_sdr": 0.1})
    total, terms = loss_set(pred, target)
    assert set(terms) == {"mrstft", "si_sdr"}
    assert rel(terms["mrstft"], losses.create("mrstft")(pred, target)) < 1e-6
    assert rel(terms["si_sdr"], -waveform.si_sdr(pred, target).mean()) < 1e-6
    assert rel(total, 1.0 * terms["mrstft"] + 0.1 * terms["si_sdr"]) < 1e-6
