"""Classic single-channel speech enhancement: a noise tracker and three spectral gain rules, weight-free.

    noise = noise_psd(power)                        # (N, F, M) periodogram -> tracked noise PSD
    gain = wiener_gain(xi)                          # a priori SNR -> Wiener gain
    gain = logmmse_gain(xi, gamma)                  # Ephraim-Malah 1985 log-spectral amplitude gain
    y = models.build("logmmse")(x)                  # (N, 1, T) -> (N, 1, T), same length

Noise: the speech-presence-probability tracker of Gerkmann & Hendriks (2012, "Unbiased MMSE-based
noise power estimation with low complexity and low tracking delay"): a fixed a priori SNR of 15 dB
under speech presence gives the posterior speech-presence probability of each bin, the noise
periodogram is estimated as (1 - p) |Y|^2 + p * previous, and recursively smoothed; a smoothed
probability above 0.99 is capped so the estimate cannot stagnate when the noise level rises. It is
causal (one Python step per frame, vectorised over batch and bins: 0.03-0.06 s for 10 s of 16 kHz
audio on one CPU thread) and follows a +10 dB noise step in about a second.

Gains (all on the STFT of ``restore.models.stft``, noisy phase kept):

- ``spectral_subtraction``: Berouti, Schwartz & Makhoul (1979) power subtraction,
  ``|S|^2 = max(|Y|^2 - alpha * N, beta * N)`` with ``alpha = 4 - 0.15 * SNR_dB`` (clipped to [1, 4.75])
  from the frame's a posteriori SNR.
- ``wiener``: Wiener gain ``xi / (1 + xi)`` with the decision-directed a priori SNR
  (Ephraim & Malah 1984; Scalart & Vieira Filho 1996), ``alpha_dd = 0.98``, ``xi >= -25 dB``.
- ``logmmse``: the log-spectral amplitude MMSE estimator (Ephraim & Malah 1985),
  ``G = xi / (1 + xi) * exp(E1(v) / 2)`` with ``v = xi * gamma / (1 + xi)``, same a priori SNR.

Everything runs in float32 with autocast off; the models have no parameters (the STFT window is a
non-persistent buffer) and the gains are computed without gradient (the output is differentiable in
the input with the gain held fixed).

Receptive field: the models are causal up to one STFT frame (an output sample depends on input
samples up to ``n_fft`` ahead). Backwards the recursions have fading, not finite, memory. The spec
gives ``MEMORY_S = 1.5`` s plus ``n_fft`` samples: after a +10 dB noise step the tracker is within 3 dB
at +0.5 s and at its steady state (about 0.9 dB below the true PSD on stationary noise) from +1 s on,
and the decision-directed recursion (0.98 per 8 ms frame) has a 0.4 s time constant. During long
speech the capped presence probability holds the estimate longer, so chunked inference with that
overlap relies on the memory having faded, it does not guarantee identical output.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .registry import register_model
from .stft import STFT

__all__ = [
    "LogMMSE",
    "NoisePSDEstimator",
    "SpectralEnhancer",
    "SpectralSubtraction",
    "Wiener",
    "berouti_gain",
    "decision_directed",
    "exp1",
    "logmmse_gain",
    "noise_psd",
    "wiener_gain",
]

# Abramowitz & Stegun 5.1.53: E1(x) + ln x = polynomial(x) + eps, |eps| < 2e-7 for 0 < x <= 1.
_AS_SMALL = (-0.57721566, 0.99999193, -0.24991055, 0.05519968, -0.00976004, 0.00107857)
# Abramowitz & Stegun 5.1.56: x e^x E1(x) = P(x) / Q(x) + eps, |eps| < 2e-8 for x >= 1.
_AS_NUM = (8.5733287401, 18.0590169730, 8.6347608925, 0.2677737343)
_AS_DEN = (9.5733223454, 25.6329561486, 21.0996530827, 3.9584969228)

MEMORY_S = 1.5  # receptive field of the recursions (see the module docstring)


def _float32(x: Tensor) -> Tensor:
    return x.float() if x.dtype != torch.float32 else x


def _exp1(x: Tensor) -> Tensor:
    """:func:`exp1` for float32 ``x > 0`` under the caller's precision (few ops: it runs once per frame)."""
    small = x.clamp(max=1.0)
    acc = small * _AS_SMALL[5]
    for c in reversed(_AS_SMALL[1:5]):
        acc.add_(c).mul_(small)
    series = acc.add_(_AS_SMALL[0]).sub_(torch.log(small))
    big = x.clamp(min=1.0)
    num, den = big + _AS_NUM[0], big + _AS_DEN[0]
    for cn, cd in zip(_AS_NUM[1:], _AS_DEN[1:], strict=True):
        num.mul_(big).add_(cn)
        den.mul_(big).add_(cd)
    rational = num.div_(den).mul_(torch.exp(-big)).div_(big)
    return torch.where(x <= 1.0, series, rational)


def exp1(x: Tensor) -> Tensor:
    """Exponential integral ``E1(x) = int_x^inf exp(-t) / t dt`` for ``x > 0``, float32 (any shape).

    Abramowitz & Stegun 5.1.53 (``x <= 1``) and 5.1.56 (``x > 1``): relative error below 1e-6
    against ``scipy.special.exp1`` over 1e-6..50. Inputs are clamped to ``>= 1e-30`` (``E1(0) = inf``).
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        return _exp1(_float32(x).clamp_min(1e-30))


def wiener_gain(xi: Tensor) -> Tensor:
    """Wiener gain ``xi / (1 + xi)`` of the a priori SNR ``xi`` (linear power ratio, >= 0)."""
    return xi / (1.0 + xi)


def _logmmse_gain(xi: Tensor, gamma: Tensor) -> Tensor:
    w = xi / (1.0 + xi)
    return _exp1((w * gamma).clamp_min_(1e-12)).mul_(0.5).exp_().mul_(w)


def logmmse_gain(xi: Tensor, gamma: Tensor) -> Tensor:
    """Ephraim-Malah (1985) log-spectral amplitude gain ``xi / (1 + xi) * exp(E1(v) / 2)``.

    ``xi`` is the a priori SNR, ``gamma`` the a posteriori SNR ``|Y|^2 / noise`` (linear, any
    broadcastable shapes); ``v = xi * gamma / (1 + xi)`` is clamped to ``>= 1e-12`` so a zero
    observation gives a finite gain (the textbook gain grows like ``v ** -0.5`` there).
    """
    with torch.autocast(device_type=xi.device.type, enabled=False):
        return _logmmse_gain(_float32(xi), _float32(gamma))


def berouti_gain(
    power: Tensor, noise: Tensor, alpha0: float = 4.0, floor: float = 0.01, eps: float = 1e-12
) -> Tensor:
    """Power spectral subtraction gain (Berouti et al. 1979) for ``power``, ``noise`` ``(N, F, M)``.

    ``|S|^2 = max(|Y|^2 - alpha * noise, floor * noise)`` with the over-subtraction factor
    ``alpha = alpha0 - 0.15 * SNR`` for the frame's SNR ``10 log10(sum |Y|^2 / sum noise)`` clipped
    to [-5, 20] dB; returns ``sqrt(|S|^2 / |Y|^2)``.
    """
    with torch.autocast(device_type=power.device.type, enabled=False):
        power, noise = _float32(power), _float32(noise)
        total = power.sum(1, keepdim=True).clamp_min(eps)
        snr = 10.0 * torch.log10(total / noise.sum(1, keepdim=True).clamp_min(eps))
        alpha = alpha0 - 0.15 * snr.clamp(-5.0, 20.0)
        clean = torch.maximum(power - alpha * noise, floor * noise)
        return torch.sqrt(clean / power.clamp_min(eps))


def noise_psd(
    power: Tensor,
    alpha: float = 0.894,
    spp_alpha: float = 0.949,
    xi_h1_db: float = 15.0,
    init_frames: int = 8,
    floor: float = 1e-10,
) -> Tensor:
    """Causal noise PSD of a periodogram ``power`` ``(N, F, M)`` -> ``(N, F, M)`` (Gerkmann-Hendriks 2012).

    ``alpha`` smooths the noise estimate and ``spp_alpha`` the speech-presence probability, per frame
    (the defaults are the paper's 0.8 and 0.9 at a 16 ms frame shift, converted to the 8 ms shift of
    ``hop=128`` at 16 kHz; :class:`NoisePSDEstimator` converts from seconds). ``xi_h1_db`` is the fixed
    a priori SNR assumed under speech presence. The first ``init_frames`` frames give the running mean
    of the periodogram (so the estimate at frame ``m`` uses frames ``<= m`` only). Estimates are
    floored at ``floor``; float32 with autocast off, no gradient.
    """
    if power.dim() != 3:
        raise ValueError(f"power must be (N, F, M), got shape {tuple(power.shape)}")
    if not (0.0 <= alpha < 1.0 and 0.0 <= spp_alpha < 1.0):
        raise ValueError(f"alpha and spp_alpha must be in [0, 1), got {alpha} and {spp_alpha}")
    if init_frames < 1:
        raise ValueError(f"init_frames must be >= 1, got {init_frames}")
    with torch.no_grad(), torch.autocast(device_type=power.device.type, enabled=False):
        # (M, N, F): one contiguous slab per frame; flooring the periodogram keeps the estimate >= floor
        frames = _float32(power).permute(2, 0, 1).clamp_min(floor).contiguous()
        k = min(init_frames, frames.shape[0])
        counts = torch.arange(1, k + 1, device=frames.device, dtype=frames.dtype).view(-1, 1, 1)
        init = frames[:k].cumsum(0) / counts
        xi = 10.0 ** (xi_h1_db / 10.0)
        # speech absence q = 1 - P(H1 | y) = sigmoid(log(1 + xi) - gamma xi / (1 + xi)), equal priors
        scaled = frames[k:] * (-xi / (1.0 + xi))
        log_odds = torch.full_like(frames[0], math.log1p(xi))
        est, absent = init[-1], torch.full_like(frames[0], 0.5)  # absent: smoothed 1 - P(H1 | y)
        out = list(init.unbind(0))
        for y, ys in zip(frames[k:].unbind(0), scaled.unbind(0), strict=True):
            q = torch.addcdiv(log_odds, ys, est).sigmoid_()
            absent.mul_(spp_alpha).add_(q, alpha=1.0 - spp_alpha)
            q = torch.where(absent < 0.01, q.clamp(min=0.01), q)  # P(H1 | y) <= 0.99 when stuck
            est = est.addcmul(y - est, q, value=1.0 - alpha)  # alpha est + (1 - alpha) E[|N|^2 | y]
            out.append(est)
        return torch.stack(out, dim=-1)


def decision_directed(
    power: Tensor,
    noise: Tensor,
    gain_fn: Callable[[Tensor, Tensor], Tensor],
    alpha: float = 0.98,
    xi_min: float = 10 ** (-25 / 10),
) -> tuple[Tensor, Tensor]:
    """Gains with the decision-directed a priori SNR (Ephraim-Malah 1984) -> ``(gain, xi)``, ``(N, F, M)``.

    ``xi[m] = max(alpha |A[m-1]|^2 / noise[m-1] + (1 - alpha) max(gamma[m] - 1, 0), xi_min)`` with
    ``gamma = power / noise``, ``A[m] = gain_fn(xi[m], gamma[m]) * |Y[m]|`` and ``A[-1] = 0``.
    Causal, one step per frame, float32 with autocast off, no gradient.
    """
    if power.shape != noise.shape or power.dim() != 3:
        raise ValueError(
            f"power and noise must both be (N, F, M), got {tuple(power.shape)} and {tuple(noise.shape)}"
        )
    with torch.no_grad(), torch.autocast(device_type=power.device.type, enabled=False):
        gamma = (_float32(power) / _float32(noise)).permute(2, 0, 1).contiguous()  # (M, N, F)
        ml = (gamma - 1.0).clamp_min_(0.0).mul_(1.0 - alpha)
        gains, xis = [], []
        prev = torch.zeros_like(gamma[0])  # |A[m-1]|^2 / noise[m-1] = G^2 gamma
        for g_m, ml_m in zip(gamma.unbind(0), ml.unbind(0), strict=True):
            xi = torch.add(ml_m, prev, alpha=alpha).clamp_min_(xi_min)
            g = gain_fn(xi, g_m)
            prev = g.square().mul_(g_m)
            gains.append(g)
            xis.append(xi)
        return torch.stack(gains, dim=-1), torch.stack(xis, dim=-1)


class NoisePSDEstimator(nn.Module):
    """Causal noise PSD tracker (Gerkmann-Hendriks 2012 speech-presence probability), weight-free.

    ``forward(power (N, F, M)) -> (N, F, M)`` for a periodogram with frame shift ``hop`` samples at
    ``sample_rate``; the smoothing constants are given as time constants in seconds (the paper's
    0.8 and 0.9 per 16 ms frame) so they hold for any frame shift.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        hop: int = 128,
        smoothing_s: float = 0.0717,
        spp_smoothing_s: float = 0.152,
        xi_h1_db: float = 15.0,
        init_s: float = 0.064,
        floor: float = 1e-10,
    ) -> None:
        super().__init__()
        if sample_rate < 1 or hop < 1:
            raise ValueError(f"sample_rate and hop must be >= 1, got {sample_rate} and {hop}")
        if smoothing_s <= 0 or spp_smoothing_s <= 0 or init_s < 0:
            raise ValueError(
                f"smoothing_s and spp_smoothing_s must be > 0 and init_s >= 0, got {smoothing_s}, "
                f"{spp_smoothing_s} and {init_s}"
            )
        frame_s = hop / sample_rate
        self.sample_rate, self.hop = int(sample_rate), int(hop)
        self.alpha = math.exp(-frame_s / smoothing_s)
        self.spp_alpha = math.exp(-frame_s / spp_smoothing_s)
        self.xi_h1_db, self.floor = float(xi_h1_db), float(floor)
        self.init_frames = max(1, round(init_s / frame_s))
        self.memory = round(MEMORY_S * sample_rate)  # samples of fading memory (module docstring)

    def forward(self, power: Tensor) -> Tensor:
        return noise_psd(power, self.alpha, self.spp_alpha, self.xi_h1_db, self.init_frames, self.floor)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:.4f}, spp_alpha={self.spp_alpha:.4f}, init_frames={self.init_frames}"


class SpectralEnhancer(nn.Module):
    """Base of the STFT gain models: noisy STFT -> real gain per bin -> iSTFT, same length, float32."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 512, hop: int = 128) -> None:
        super().__init__()
        if sample_rate < 1:
            raise ValueError(f"sample_rate must be >= 1, got {sample_rate}")
        self.stft = STFT(n_fft, hop)
        self.tracker = NoisePSDEstimator(sample_rate, hop)
        self.sample_rate = int(sample_rate)
        self.scale, self.in_channels, self.out_channels = 1, 1, 1
        self.size_multiple = 1
        self.receptive_field = self.tracker.memory + n_fft

    def gain_from(self, power: Tensor, noise: Tensor) -> Tensor:
        """Real gain ``(N, F, M)`` from the periodogram and the tracked noise PSD."""
        raise NotImplementedError

    def estimate(self, spec: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(power, noise, gain)`` ``(N, F, M)`` float32 of a complex spectrogram, without gradient."""
        with torch.no_grad(), torch.autocast(device_type=spec.device.type, enabled=False):
            power = spec.abs().square()
            noise = self.tracker(power)
            return power, noise, self.gain_from(power, noise)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 1, T)`` noisy audio -> ``(N, 1, T)`` enhanced audio (float32 for float32 input)."""
        if x.dim() != 3 or x.shape[1] != 1:
            name = type(self).__name__
            raise ValueError(f"{name} expects mono audio (N, 1, T), got shape {tuple(x.shape)}")
        with torch.autocast(device_type=x.device.type, enabled=False):
            spec = self.stft(x)
            gain = self.estimate(spec)[2]
            y = self.stft.inverse(spec * gain, x.shape[-1])
        return y.to(x.dtype) if x.is_floating_point() else y

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}"


# The spec of a 16 kHz speech model with this module's fading memory (spectral_mask shares it).
SPEECH_SPEC = dict(
    task="audio",
    scale=1,
    in_channels=1,
    out_channels=1,
    supports_fp16=True,
    supports_bf16=True,
    size_multiple=1,
    receptive_field=round(MEMORY_S * 16000) + 512,
    inputs=("audio",),
)


@register_model(
    "spectral_subtraction",
    config={"sample_rate": 16000, "n_fft": 512, "hop": 128, "alpha0": 4.0, "floor": 0.01},
    summary="weight-free Berouti power spectral subtraction with a Gerkmann-Hendriks noise tracker",
    **SPEECH_SPEC,
)
class SpectralSubtraction(SpectralEnhancer):
    """Berouti power spectral subtraction (over-subtraction by frame SNR, noise floor), weight-free.

    See :func:`berouti_gain`; the noise PSD comes from :class:`NoisePSDEstimator`.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop: int = 128,
        alpha0: float = 4.0,
        floor: float = 0.01,
    ) -> None:
        super().__init__(sample_rate, n_fft, hop)
        if alpha0 < 0.75 or not 0.0 <= floor < 1.0:
            raise ValueError(f"alpha0 must be >= 0.75 and floor in [0, 1), got {alpha0} and {floor}")
        self.alpha0, self.floor = float(alpha0), float(floor)

    def gain_from(self, power: Tensor, noise: Tensor) -> Tensor:
        return berouti_gain(power, noise, self.alpha0, self.floor)


class _DecisionDirected(SpectralEnhancer):
    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop: int = 128,
        dd_alpha: float = 0.98,
        xi_min_db: float = -25.0,
    ) -> None:
        super().__init__(sample_rate, n_fft, hop)
        if not 0.0 <= dd_alpha < 1.0:
            raise ValueError(f"dd_alpha must be in [0, 1), got {dd_alpha}")
        self.dd_alpha, self.xi_min = float(dd_alpha), 10.0 ** (xi_min_db / 10.0)

    @staticmethod
    def rule(xi: Tensor, gamma: Tensor) -> Tensor:
        raise NotImplementedError

    def gain_from(self, power: Tensor, noise: Tensor) -> Tensor:
        return decision_directed(power, noise, self.rule, self.dd_alpha, self.xi_min)[0]


_DD_CONFIG = {"sample_rate": 16000, "n_fft": 512, "hop": 128, "dd_alpha": 0.98, "xi_min_db": -25.0}


@register_model(
    "wiener",
    config=dict(_DD_CONFIG),
    summary="weight-free Wiener filter, decision-directed a priori SNR, Gerkmann-Hendriks noise tracker",
    **SPEECH_SPEC,
)
class Wiener(_DecisionDirected):
    """Wiener filter with the decision-directed a priori SNR (Scalart 1996), weight-free.

    Gain :func:`wiener_gain` ``xi / (1 + xi)``; see :func:`decision_directed` and :func:`noise_psd`.
    """

    @staticmethod
    def rule(xi: Tensor, gamma: Tensor) -> Tensor:
        return wiener_gain(xi)


@register_model(
    "logmmse",
    config=dict(_DD_CONFIG),
    summary="weight-free Ephraim-Malah log-MMSE spectral amplitude estimator with a noise tracker",
    **SPEECH_SPEC,
)
class LogMMSE(_DecisionDirected):
    """Ephraim-Malah (1985) log-spectral amplitude MMSE estimator, decision-directed, weight-free.

    Gain :func:`logmmse_gain`; see :func:`decision_directed` and :func:`noise_psd`.
    """

    @staticmethod
    def rule(xi: Tensor, gamma: Tensor) -> Tensor:
        return _logmmse_gain(xi, gamma)  # float32, autocast already off
