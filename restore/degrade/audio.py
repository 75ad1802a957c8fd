"""Audio degradations for speech enhancement pairs: noise at an SNR, reverb, EQ, clipping, band limits.

    from restore.degrade.audio import AudioDenoiseDegradation, AudioBandwidthDegradation, mix_at_snr
    gen = torch.Generator(device="cuda").manual_seed(0)
    noisy = AudioDenoiseDegradation()(clean, noise, sample_rate=16000, generator=gen)   # (N, 1, T)
    narrow = AudioBandwidthDegradation()(clean, sample_rate=16000, generator=gen)       # (N, 1, T)

Every function takes a batch ``(N, C, T)`` and works on the tensors' device; every random draw is made
per item from the optional ``torch.Generator`` (on its device), so a seed reproduces a batch. FFT work
runs in float32 with autocast off. The training target of both modules stays the dry clean signal: the
model learns to undo noise, reverberation, colouring and clipping, or to restore the lost band.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from restore.degrade.sampling import check_range, draw_device, per_sample, rand_bernoulli, rand_uniform

__all__ = [
    "AudioBandwidthDegradation",
    "AudioDenoiseDegradation",
    "band_limit",
    "clip",
    "colored_noise",
    "equalize",
    "gain",
    "lowpass",
    "mix_at_snr",
    "reverberate",
    "synthetic_rir",
]

_EPS = 1e-10  # power floor (about -100 dBFS): silent signals give no NaN


def _check_audio(x: Tensor, name: str = "audio") -> None:
    if not isinstance(x, Tensor) or x.ndim != 3 or not x.is_floating_point():
        what = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a floating (N, C, T) tensor, got {what}")


def _items(value: float | Tensor, n: int, device: torch.device, name: str) -> Tensor:
    """A number or an (N,) tensor as an (N,) float32 tensor on ``device``."""
    return per_sample(value, n, device, name).float()


def _check_rate(sample_rate: int, name: str = "sample_rate") -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"{name} must be a positive int (Hz), got {sample_rate!r}")
    return sample_rate


def _fit_length(x: Tensor, length: int) -> Tensor:
    """Tile ``x (..., T)`` along time until it is at least ``length`` long, then cut to ``length``."""
    t = x.shape[-1]
    if t == 0:
        raise ValueError("noise has no samples")
    if t < length:
        x = x.repeat(*([1] * (x.ndim - 1)), math.ceil(length / t))
    return x[..., :length]


# ----------------------------------------------------------------------------- level and mixing


def mix_at_snr(clean: Tensor, noise: Tensor, snr_db: float | Tensor) -> Tensor:
    """``clean + a * noise`` with ``a`` per item such that ``10 log10(P_clean / P_noise) = snr_db``.

    Args:
        clean: (N, C, T).
        noise: (N, C, T') or (N, 1, T') (shared by the channels); shorter noise is tiled, longer is cut.
        snr_db: a number or per item (N,). Powers are means over channels and time, in float32.

    Returns:
        (N, C, T) noisy signal (not clipped). A silent clean item gets no noise; a silent noise item
        stays silent (powers are floored at 1e-10, so no NaN).
    """
    _check_audio(clean, "clean")
    _check_audio(noise, "noise")
    n, c, t = clean.shape
    if noise.shape[0] != n or noise.shape[1] not in (1, c):
        raise ValueError(
            f"noise must be (N, 1 or C, T') for clean {tuple(clean.shape)}, got {tuple(noise.shape)}"
        )
    snr = _items(snr_db, n, clean.device, "snr_db")
    noise = _fit_length(noise.to(clean.device), t)
    with torch.autocast(device_type=clean.device.type, enabled=False):
        signal, noise = clean.float(), noise.float()
        p_clean = signal.square().mean(dim=(1, 2))
        p_noise = noise.square().mean(dim=(1, 2)).clamp_min(_EPS)
        scale = torch.sqrt(p_clean / (p_noise * torch.pow(10.0, snr / 10.0)))
        return (signal + scale.view(n, 1, 1) * noise).to(clean.dtype)


def gain(x: Tensor, db: float | Tensor) -> Tensor:
    """``x * 10 ** (db / 20)``; ``db`` a number or per item (N,). (N, C, T) -> (N, C, T)."""
    _check_audio(x, "x")
    db = _items(db, x.shape[0], x.device, "db")
    return x * torch.pow(10.0, db / 20.0).to(x.dtype).view(-1, 1, 1)


def clip(x: Tensor, threshold: float | Tensor) -> Tensor:
    """Hard clipping at ``+-threshold`` (a positive number or per item (N,)). (N, C, T) -> (N, C, T)."""
    _check_audio(x, "x")
    thr = _items(threshold, x.shape[0], x.device, "threshold")
    if (thr <= 0).any():
        raise ValueError(f"threshold must be positive, got {threshold!r}")
    thr = thr.to(x.dtype).view(-1, 1, 1)
    return torch.maximum(torch.minimum(x, thr), -thr)


# ----------------------------------------------------------------------------- filters


def _filter(x: Tensor, sample_rate: int, response) -> Tensor:
    """Zero-phase linear filtering by a magnitude response given on frequencies.

    ``response(freqs (F,)) -> (N, F)`` real gains. The signal is zero-padded to 2T, so the result is a
    linear (not circular) convolution with the response's impulse response, cut back to T samples.
    """
    n, c, t = x.shape
    n_fft = 2 * t
    with torch.autocast(device_type=x.device.type, enabled=False):
        spectrum = torch.fft.rfft(x.float(), n=n_fft)
        freqs = torch.fft.rfftfreq(n_fft, d=1.0 / sample_rate, device=x.device)
        h = response(freqs).float()
        out = torch.fft.irfft(spectrum * h.view(n, 1, -1), n=n_fft)[..., :t]
    return out.to(x.dtype)


def lowpass(x: Tensor, sample_rate: int, cutoff_hz: float | Tensor, transition: float = 0.05) -> Tensor:
    """Zero-phase low-pass filter in the FFT domain (float32): (N, C, T) -> (N, C, T).

    The gain is 1 below ``cutoff * (1 - transition / 2)``, 0 above ``cutoff * (1 + transition / 2)``,
    and a raised cosine between (-6 dB at the cutoff): a transition ``transition`` (default 5 %) of the
    cutoff wide. ``cutoff_hz`` is a number or per item (N,).
    """
    _check_audio(x, "x")
    _check_rate(sample_rate)
    if not 0 < transition < 2:
        raise ValueError(f"transition must be in (0, 2) (a fraction of the cutoff), got {transition!r}")
    cutoff = _items(cutoff_hz, x.shape[0], x.device, "cutoff_hz")
    if (cutoff <= 0).any():
        raise ValueError(f"cutoff_hz must be positive, got {cutoff_hz!r}")

    def response(freqs: Tensor) -> Tensor:
        low = (cutoff * (1 - transition / 2)).view(-1, 1)
        high = (cutoff * (1 + transition / 2)).view(-1, 1)
        ramp = ((freqs - low) / (high - low)).clamp(0.0, 1.0)
        return 0.5 * (1.0 + torch.cos(math.pi * ramp))

    return _filter(x, sample_rate, response)


def equalize(
    x: Tensor, sample_rate: int, center_hz: Tensor, gain_db: Tensor, width_octaves: Tensor
) -> Tensor:
    """Zero-phase peaking EQ: bands of Gaussian shape on a log-frequency axis, summed in dB.

    Args:
        x: (N, C, T).
        center_hz, gain_db, width_octaves: (N, K) per item and band (width = standard deviation of
            the bump in octaves). The response is ``sum_k gain_k * exp(-0.5 * (log2(f / c_k) / w_k)**2)``
            dB; 0 dB at DC.

    Returns:
        (N, C, T).
    """
    _check_audio(x, "x")
    _check_rate(sample_rate)
    n = x.shape[0]
    bands = [
        torch.as_tensor(v, device=x.device, dtype=torch.float32) for v in (center_hz, gain_db, width_octaves)
    ]
    if any(b.ndim != 2 or b.shape[0] != n or b.shape != bands[0].shape for b in bands):
        shapes = [tuple(b.shape) for b in bands]
        raise ValueError(f"center_hz, gain_db and width_octaves must all be (N={n}, K), got {shapes}")
    center, db, width = bands
    if (center <= 0).any() or (width <= 0).any():
        raise ValueError("center_hz and width_octaves must be positive")

    def response(freqs: Tensor) -> Tensor:
        octaves = torch.log2(freqs.clamp_min(1e-3)).view(1, 1, -1) - torch.log2(center).unsqueeze(-1)
        curve_db = (db.unsqueeze(-1) * torch.exp(-0.5 * (octaves / width.unsqueeze(-1)).square())).sum(1)
        return torch.pow(10.0, curve_db / 20.0)

    return _filter(x, sample_rate, response)


def band_limit(x: Tensor, sample_rate: int, low_rate: int | Sequence[int] | Tensor) -> Tensor:
    """Resample down to ``low_rate`` and back up to ``sample_rate``: what bandwidth extension inverts.

    ``torchaudio.functional.resample`` both ways with :data:`restore.io.audio.KAISER_BEST` (a sharp
    band edge: everything above ``low_rate / 2`` is > 100 dB down, where torchaudio's default filter
    leaves images at -25 dB that a model could use), float32, per item rate ``low_rate`` (an int or
    (N,) ints); the result is cut to the input length T. Items whose ``low_rate`` is at or above
    ``sample_rate`` are returned unchanged. (N, C, T) -> (N, C, T).
    """
    from restore.io.audio import KAISER_BEST, resample

    _check_audio(x, "x")
    _check_rate(sample_rate)
    n, _, t = x.shape
    rates = torch.as_tensor(low_rate).flatten().cpu()
    if rates.numel() == 1:
        rates = rates.expand(n)
    if rates.shape != (n,) or rates.is_floating_point() and not torch.equal(rates, rates.round()):
        raise ValueError(f"low_rate must be an int or (N={n},) ints, got {low_rate!r}")
    if (rates <= 0).any():
        raise ValueError(f"low_rate must be positive, got {low_rate!r}")
    out = x.clone()
    for rate in sorted(set(int(r) for r in rates.tolist())):
        if rate >= sample_rate:
            continue
        index = (rates == rate).nonzero().flatten().to(x.device)
        low = resample(x[index], sample_rate, rate, **KAISER_BEST)
        back = resample(low, rate, sample_rate, **KAISER_BEST)
        if back.shape[-1] < t:
            back = torch.nn.functional.pad(back, (0, t - back.shape[-1]))
        out[index] = back[..., :t].to(x.dtype)
    return out


# ----------------------------------------------------------------------------- noise and reverb


def colored_noise(
    shape: Sequence[int],
    exponent: float | Tensor,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Gaussian noise with power spectrum ``1 / f**exponent``, unit RMS per item: float32 ``shape``.

    Args:
        shape: (N, C, T).
        exponent: 0 white, 1 pink, 2 brown (red); a number or per item (N,). The DC bin is zero.
        generator: draws the white noise on its device.
        device: where the result lives (default: the generator's device, else CPU).
    """
    if len(shape) != 3 or any(int(s) < 1 for s in shape):
        raise ValueError(f"shape must be (N, C, T) with positive sizes, got {tuple(shape)}")
    n, c, t = (int(s) for s in shape)
    target = torch.device(device) if device is not None else draw_device(generator, "cpu")
    white = torch.randn((n, c, t), generator=generator, device=draw_device(generator, target)).to(target)
    exponent = _items(exponent, n, target, "exponent")
    if t < 2:
        return white / white.square().mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(_EPS)
    with torch.autocast(device_type=target.type, enabled=False):
        spectrum = torch.fft.rfft(white)
        bins = torch.arange(spectrum.shape[-1], device=target, dtype=torch.float32)
        weights = bins.clamp_min(1.0).view(1, -1) ** (-exponent.view(n, 1) / 2.0)
        weights[:, 0] = 0.0
        colored = torch.fft.irfft(spectrum * weights.view(n, 1, -1), n=t)
        rms = colored.square().mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(_EPS)
        return colored / rms


def synthetic_rir(
    n: int,
    sample_rate: int,
    rt60: float | Tensor,
    generator: torch.Generator | None = None,
    seconds: float | None = None,
    drr_db: float | Tensor = 5.0,
    device: torch.device | str | None = None,
) -> Tensor:
    """Synthetic room impulse responses ``(N, 1, L)``: a direct path and an exponentially decaying tail.

    ``rir[:, 0, 0] = 1`` is the direct path (so a reverberated signal stays aligned with the dry one);
    samples ``1..L-1`` are Gaussian noise under the envelope ``10 ** (-3 t / rt60)``, whose energy falls
    by 60 dB in ``rt60`` seconds, scaled so that the direct-to-reverberant energy ratio is ``drr_db``.

    Args:
        n: number of responses.
        sample_rate: Hz.
        rt60: reverberation time in seconds, a number or per item (N,).
        generator: draws the tail noise on its device.
        seconds: length L / sample_rate; default the largest rt60 (the tail is then 60 dB down).
        drr_db: direct-to-reverberant ratio in dB, a number or per item (N,).
        device: where the result lives (default: the generator's device, else CPU).
    """
    _check_rate(sample_rate)
    target = torch.device(device) if device is not None else draw_device(generator, "cpu")
    rt60 = _items(rt60, n, target, "rt60")
    if (rt60 <= 0).any():
        raise ValueError(f"rt60 must be positive seconds, got {rt60.tolist()}")
    drr = _items(drr_db, n, target, "drr_db")
    duration = float(rt60.max()) if seconds is None else float(seconds)
    length = max(2, math.ceil(duration * sample_rate))
    tail = torch.randn((n, length), generator=generator, device=draw_device(generator, target)).to(target)
    time = torch.arange(length, device=target, dtype=torch.float32) / sample_rate
    tail = tail * torch.pow(10.0, -3.0 * time.view(1, -1) / rt60.view(n, 1))
    tail[:, 0] = 0.0
    energy = tail.square().sum(dim=1, keepdim=True).clamp_min(_EPS)
    tail = tail * torch.sqrt(torch.pow(10.0, -drr.view(n, 1) / 10.0) / energy)
    tail[:, 0] = 1.0
    return tail.unsqueeze(1)


def reverberate(x: Tensor, rir: Tensor) -> Tensor:
    """Convolve ``x (N, C, T)`` with ``rir`` ((N, L), (N, 1, L) or (N, C, L)) by FFT (float32).

    The output keeps the first T samples of the full convolution, so it is aligned with the dry
    signal when the response's direct path is at index 0 (as :func:`synthetic_rir`).
    """
    _check_audio(x, "x")
    if rir.ndim == 2:
        rir = rir.unsqueeze(1)
    n, c, t = x.shape
    if rir.ndim != 3 or rir.shape[0] != n or rir.shape[1] not in (1, c):
        raise ValueError(
            f"rir must be (N, L), (N, 1, L) or (N, C, L) for x {tuple(x.shape)}, got {tuple(rir.shape)}"
        )
    n_fft = t + rir.shape[-1] - 1
    with torch.autocast(device_type=x.device.type, enabled=False):
        spectrum = torch.fft.rfft(x.float(), n=n_fft) * torch.fft.rfft(rir.to(x.device).float(), n=n_fft)
        return torch.fft.irfft(spectrum, n=n_fft)[..., :t].to(x.dtype)


# ----------------------------------------------------------------------------- modules


def _draw(n: int, value: Sequence[float], name: str, generator: torch.Generator | None, device) -> Tensor:
    low, high = check_range(value, name, low=-math.inf)
    return rand_uniform(n, low, high, generator, device)


class AudioDenoiseDegradation(nn.Module):
    """Speech denoising inputs: reverb, noise at a random SNR, EQ, and clipping, per item.

    ``forward(clean (N, C, T), noise=None, sample_rate=16000, generator=None) -> noisy (N, C, T)``.
    Per item, in this order:

    1. with ``reverb_prob``: convolution with :func:`synthetic_rir` (``rt60`` seconds, ``drr_db``);
    2. noise at ``snr_db`` (:func:`mix_at_snr`, measured against the reverberant speech): the ``noise``
       batch ``(N, 1 or C, T')`` (tiled when short), or, when None, :func:`colored_noise` with an
       exponent in ``noise_exponent`` (0 white .. 2 brown);
    3. with ``eq_prob``: :func:`equalize` with ``eq_bands`` bands, +-``eq_db`` dB, centres
       log-uniform in 100 Hz .. 0.45 x ``sample_rate``, widths 0.3..1.5 octaves (a microphone's colour);
    4. the recording level: the mix is multiplied by a gain in ``gain_db``, hard clipped at
       +-``full_scale`` (an ADC; None: no limit) and, with ``clip_prob``, at +-``clip_level`` x its peak
       (overdrive), then divided by the gain again.

    The gain is undone because the training target is the dry clean signal (no reverb, EQ or noise)
    at its own level; a pure level change of the input alone would make the target unpredictable
    (training divides both by the input's level anyway). The gain decides how hard the full-scale
    clipping bites. The output is not clipped to [-1, 1]. Every random number is drawn from
    ``generator`` in a fixed order, whatever the probabilities pick.
    """

    def __init__(
        self,
        snr_db: Sequence[float] = (-5.0, 20.0),
        reverb_prob: float = 0.3,
        rt60: Sequence[float] = (0.2, 1.0),
        drr_db: Sequence[float] = (0.0, 10.0),
        gain_db: Sequence[float] = (-10.0, 6.0),
        clip_prob: float = 0.05,
        clip_level: Sequence[float] = (0.3, 0.9),
        eq_prob: float = 0.3,
        eq_db: float = 6.0,
        eq_bands: int = 3,
        noise_exponent: Sequence[float] = (0.0, 2.0),
        full_scale: float | None = 1.0,
    ) -> None:
        super().__init__()
        for name, prob in (("reverb_prob", reverb_prob), ("clip_prob", clip_prob), ("eq_prob", eq_prob)):
            if not 0.0 <= prob <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {prob!r}")
        self.snr_db = check_range(snr_db, "snr_db", low=-math.inf)
        self.rt60 = check_range(rt60, "rt60", low=1e-3)
        self.drr_db = check_range(drr_db, "drr_db", low=-math.inf)
        self.gain_db = check_range(gain_db, "gain_db", low=-math.inf)
        self.clip_level = check_range(clip_level, "clip_level", low=1e-6, high=1.0)
        self.noise_exponent = check_range(noise_exponent, "noise_exponent", low=-math.inf)
        if not eq_db >= 0:
            raise ValueError(f"eq_db must be >= 0, got {eq_db!r}")
        if not isinstance(eq_bands, int) or eq_bands < 1:
            raise ValueError(f"eq_bands must be a positive int, got {eq_bands!r}")
        if full_scale is not None and not full_scale > 0:
            raise ValueError(f"full_scale must be positive or None, got {full_scale!r}")
        self.reverb_prob, self.clip_prob, self.eq_prob = reverb_prob, clip_prob, eq_prob
        self.eq_db, self.eq_bands, self.full_scale = float(eq_db), eq_bands, full_scale
        self.scale = 1

    def forward(
        self,
        clean: Tensor,
        noise: Tensor | None = None,
        sample_rate: int = 16000,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """(N, C, T) clean -> (N, C, T) noisy; ``noise`` (N, 1 or C, T') or None (coloured noise)."""
        if isinstance(noise, torch.Generator):
            raise TypeError("the second argument is the noise batch; pass the generator as generator=...")
        _check_audio(clean, "clean")
        _check_rate(sample_rate)
        n, c, t = clean.shape
        device = clean.device
        where = draw_device(generator, device)
        k = self.eq_bands
        snr = _draw(n, self.snr_db, "snr_db", generator, where)
        reverb = rand_bernoulli(n, self.reverb_prob, generator, where)
        rt60 = _draw(n, self.rt60, "rt60", generator, where)
        drr = _draw(n, self.drr_db, "drr_db", generator, where)
        eq = rand_bernoulli(n, self.eq_prob, generator, where)
        nyquist_band = max(0.45 * sample_rate, 101.0)
        centers = torch.exp(rand_uniform((n, k), math.log(100.0), math.log(nyquist_band), generator, where))
        eq_gains = rand_uniform((n, k), -self.eq_db, self.eq_db, generator, where)
        widths = rand_uniform((n, k), 0.3, 1.5, generator, where)
        gain_db = _draw(n, self.gain_db, "gain_db", generator, where)
        clipped = rand_bernoulli(n, self.clip_prob, generator, where)
        level = _draw(n, self.clip_level, "clip_level", generator, where)
        exponent = _draw(n, self.noise_exponent, "noise_exponent", generator, where)
        rirs = synthetic_rir(n, sample_rate, rt60, generator, seconds=self.rt60[1], drr_db=drr, device=device)
        if noise is None:
            noise = colored_noise((n, 1, t), exponent, generator, device=device)
        reverb, eq, clipped = reverb.to(device), eq.to(device), clipped.to(device)

        speech = clean
        if reverb.any():
            index = reverb.nonzero().flatten()
            speech = clean.clone()
            speech[index] = reverberate(clean[index], rirs[index])
        noisy = mix_at_snr(speech, noise.to(device), snr.to(device))
        if eq.any():
            index = eq.nonzero().flatten()
            noisy[index] = equalize(
                noisy[index], sample_rate, centers[index.to(where)].to(device),
                eq_gains[index.to(where)].to(device), widths[index.to(where)].to(device),
            )
        g = torch.pow(10.0, gain_db.to(device) / 20.0).view(n, 1, 1)
        recorded = noisy * g
        peak = recorded.abs().amax(dim=(1, 2), keepdim=True)
        limit = torch.where(clipped.view(n, 1, 1), level.to(device).view(n, 1, 1) * peak, torch.inf)
        if self.full_scale is not None:
            limit = limit.clamp_max(self.full_scale)
        recorded = torch.maximum(torch.minimum(recorded, limit), -limit)
        return (recorded / g).to(clean.dtype)


class AudioBandwidthDegradation(nn.Module):
    """Bandwidth extension inputs: per item, resampled down to a rate from ``low_rates`` and back up.

    ``forward(clean (N, C, T), noise=None, sample_rate=16000, generator=None) -> (N, C, T)`` at
    ``sample_rate`` (:func:`band_limit`). Each item's rate is drawn uniformly from the ``low_rates``
    below ``sample_rate``. ``noise`` is accepted for a common signature and ignored. The training
    target is the full-band clean signal.
    """

    def __init__(self, low_rates: Sequence[int] = (4000, 8000, 11025, 12000)) -> None:
        super().__init__()
        rates = tuple(low_rates)
        if not rates or not all(isinstance(r, int) and not isinstance(r, bool) and r > 0 for r in rates):
            raise ValueError(f"low_rates must be a non-empty sequence of positive ints, got {low_rates!r}")
        self.low_rates = rates
        self.scale = 1

    def forward(
        self,
        clean: Tensor,
        noise: Tensor | None = None,
        sample_rate: int = 16000,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """(N, C, T) -> band-limited (N, C, T) at ``sample_rate``."""
        if isinstance(noise, torch.Generator):
            raise TypeError("the second argument is the noise batch; pass the generator as generator=...")
        _check_audio(clean, "clean")
        _check_rate(sample_rate)
        usable = [r for r in self.low_rates if r < sample_rate]
        if not usable:
            raise ValueError(f"no rate in low_rates={self.low_rates} is below sample_rate={sample_rate}")
        where = draw_device(generator, clean.device)
        choice = torch.randint(len(usable), (clean.shape[0],), generator=generator, device=where).cpu()
        return band_limit(clean, sample_rate, torch.tensor(usable)[choice])
