"""A small causal complex-mask network for CPU speech denoising, optionally refining a classic estimator.

    net = models.build("spectral_mask")      # causal, noise-tracker features, Wiener prior
    y = net(x)                               # (N, 1, T) -> (N, 1, T), same length

Per STFT frame (``restore.models.stft``, float32) the network sees the log power of the noisy
spectrum and, with ``noise_estimate=True``, the log of the tracked noise PSD
(:class:`~restore.models.dsp_denoise.NoisePSDEstimator`) and the a posteriori SNR; with a ``prior``
it also sees the prior's gain. A U-Net over frequency (strided convolutions along the bins of each
frame, additive skips) wraps a GRU over time (unidirectional when ``causal``), and a 1x1 head gives
two numbers per bin, ``u`` and ``v``, turned into the complex mask

    M = min(G * exp(B tanh(u / B)), max(G, max_gain)) * exp(i (pi / 2) tanh(v))

where ``G`` is the prior's gain (``wiener`` or ``logmmse`` from :mod:`restore.models.dsp_denoise`)
or 1 without a prior. The head is zero-initialised, so an untrained network returns the classic
estimator's output exactly (the noisy input when ``prior=None``) and training starts from that floor.
Features and the prior are computed without gradient; the mask is applied in float32.

Causality: convolutions act within a frame, the GRU runs forward in time and the tracker and the
decision-directed recursion are causal, so an output sample depends on input up to ``n_fft``
samples ahead. Backwards the memory is fading, not finite: the spec's ``receptive_field`` is the
tracker's memory (1.5 s) plus ``n_fft``, and chunked inference with that overlap relies on the
GRU's and the tracker's influence having faded by then.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .dsp_denoise import MEMORY_S, SPEECH_SPEC, LogMMSE, NoisePSDEstimator, SpectralEnhancer, Wiener
from .registry import register_model
from .stft import STFT

__all__ = ["SpectralMaskNet", "complex_mask"]

PRIORS = {"wiener": Wiener, "logmmse": LogMMSE}
_EPS = 1e-10


def complex_mask(
    u: Tensor, v: Tensor, base: Tensor | None, bound: float = 5.0, max_gain: float = 2.0
) -> Tensor:
    """Complex mask from the network's outputs ``u``, ``v`` and a base gain (all ``(N, F, M)``).

    Magnitude ``base * exp(bound * tanh(u / bound))`` capped at ``max(base, max_gain)`` (so
    ``u = 0`` gives ``base`` exactly), phase ``(pi / 2) tanh(v)``. ``base=None`` means 1.
    Float32 with autocast off.
    """
    with torch.autocast(device_type=u.device.type, enabled=False):
        u, v = u.float(), v.float()
        factor = torch.exp(bound * torch.tanh(u / bound))
        if base is None:
            magnitude = factor.clamp(max=max_gain)
        else:
            base = base.float()
            magnitude = torch.minimum(base * factor, base.clamp(min=max_gain))
        phase = (0.5 * math.pi) * torch.tanh(v)
        return torch.polar(magnitude, phase)


_BASE = {"sample_rate": 16000, "n_fft": 512, "hop": 128, "channels": [16, 32, 32, 32], "hidden": 128}


@register_model(
    "spectral_mask",
    config={**_BASE, "causal": True, "noise_estimate": True, "prior": "wiener"},
    summary="causal complex-mask CRN refining a Wiener filter, with noise-tracker features (CPU denoiser)",
    **SPEECH_SPEC,
)
@register_model(
    "spectral_mask_plain",
    config={**_BASE, "causal": True, "noise_estimate": False, "prior": None},
    summary="causal complex-mask CRN on the noisy log spectrum only (no prior, no noise estimate)",
    **SPEECH_SPEC,
)
class SpectralMaskNet(nn.Module):
    """Causal complex-ratio-mask CRN (conv U-Net over frequency + GRU over time) refining a DSP prior.

    ``forward(x (N, 1, T)) -> (N, 1, T)``. ``channels``: encoder widths, each layer halving the bins
    (kernel 5, stride 2 along frequency); ``hidden``: GRU width (split over two directions when not
    ``causal``); ``noise_estimate``: add the tracked noise PSD and a posteriori SNR to the features;
    ``prior``: ``"wiener"``, ``"logmmse"`` or ``None`` (a plain mask network).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop: int = 128,
        channels: Sequence[int] = (16, 32, 32, 32),
        hidden: int = 128,
        causal: bool = True,
        noise_estimate: bool = True,
        prior: str | None = "wiener",
        max_gain: float = 2.0,
        bound: float = 5.0,
    ) -> None:
        super().__init__()
        if prior is not None and prior not in PRIORS:
            raise ValueError(f"prior must be one of {sorted(PRIORS)} or None, got {prior!r}")
        channels = [int(c) for c in channels]
        if not channels or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty list of positive ints, got {channels}")
        if hidden < 1 or (not causal and hidden % 2):
            raise ValueError(f"hidden must be >= 1 (and even when causal=False), got {hidden}")
        if max_gain < 1.0 or bound <= 0:
            raise ValueError(f"max_gain must be >= 1 and bound > 0, got {max_gain} and {bound}")
        self.stft = STFT(n_fft, hop)
        self.prior: SpectralEnhancer | None = PRIORS[prior](sample_rate, n_fft, hop) if prior else None
        self.tracker = NoisePSDEstimator(sample_rate, hop) if noise_estimate and prior is None else None
        self.noise_estimate, self.causal = bool(noise_estimate), bool(causal)
        self.max_gain, self.bound = float(max_gain), float(bound)
        self.sample_rate = int(sample_rate)
        self.scale, self.in_channels, self.out_channels = 1, 1, 1
        self.size_multiple = 1
        self.receptive_field = round(MEMORY_S * sample_rate) + n_fft  # fading memory + one frame

        features = 1 + 2 * self.noise_estimate + (prior is not None)
        bins = [self.stft.bins]
        self.encoder = nn.ModuleList()
        for c_in, c_out in zip([features, *channels[:-1]], channels, strict=True):
            self.encoder.append(nn.Conv2d(c_in, c_out, (1, 5), stride=(1, 2), padding=(0, 2)))
            bins.append((bins[-1] - 1) // 2 + 1)
        self.bins = bins
        width = channels[-1] * bins[-1]
        self.gru = nn.GRU(width, hidden // (1 if causal else 2), batch_first=True, bidirectional=not causal)
        self.expand = nn.Linear(hidden, width)
        self.decoder = nn.ModuleList(
            nn.ConvTranspose2d(c_in, c_out, (1, 5), stride=(1, 2), padding=(0, 2))
            for c_in, c_out in zip(channels[::-1], [*channels[-2::-1], channels[0]], strict=True)
        )
        self.head = nn.Conv2d(channels[0], 2, 1)
        self.act = nn.ELU()
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def features(self, spec: Tensor) -> tuple[Tensor, Tensor | None]:
        """Features ``(N, C, M, F)`` and the prior gain ``(N, F, M)`` (or None), float32, no gradient."""
        with torch.no_grad(), torch.autocast(device_type=spec.device.type, enabled=False):
            gain = None
            if self.prior is not None:
                power, noise, gain = self.prior.estimate(spec)
            else:
                power = spec.abs().square()
                noise = self.tracker(power) if self.tracker is not None else None
            log_power = torch.log10(power + _EPS)
            feats = [(log_power + 3.0) / 3.0]
            if self.noise_estimate:
                log_noise = torch.log10(noise + _EPS)
                feats += [(log_noise + 3.0) / 3.0, (log_power - log_noise).clamp(-3.0, 5.0) / 2.0]
            if gain is not None:
                feats.append(gain.clamp(max=self.max_gain))
            return torch.stack(feats, dim=1).transpose(2, 3).contiguous(), gain

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 1, T)`` noisy audio -> ``(N, 1, T)`` enhanced audio."""
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"SpectralMaskNet expects mono audio (N, 1, T), got shape {tuple(x.shape)}")
        spec = self.stft(x)  # (N, F, M) complex64
        h, gain = self.features(spec)
        skips = []
        for conv in self.encoder:
            h = self.act(conv(h))
            skips.append(h)
        n, c, m, f = h.shape
        with torch.autocast(device_type=x.device.type, enabled=False):  # the recurrence in float32
            seq, _ = self.gru(h.permute(0, 2, 1, 3).reshape(n, m, c * f).float())
        h = self.act(self.expand(seq)).reshape(n, m, c, f).permute(0, 2, 1, 3)
        for deconv, skip, size in zip(self.decoder, reversed(skips), reversed(self.bins[:-1]), strict=True):
            h = self.act(deconv(h + skip, output_size=[m, size]))
        u, v = self.head(h).transpose(2, 3).unbind(1)  # (N, F, M) each
        mask = complex_mask(u, v, gain, self.bound, self.max_gain)
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = self.stft.inverse(spec * mask, x.shape[-1])
        return y.to(x.dtype) if x.is_floating_point() else y
