"""HiFi-GAN's multi-period discriminator (MPD; Kong et al. 2020).

Each sub-discriminator folds the waveform ``(N, 1, T)`` into ``(N, 1, T / p, p)`` (period ``p``) and
runs 2-D convolutions with ``(k, 1)`` kernels over it, so it sees samples ``p`` apart. Key names
follow ``jik876/hifi-gan`` ``models.py`` (``discriminators.{i}.convs.{j}``, ``discriminators.{i}.conv_post``)
and weight norm is :func:`torch.nn.utils.parametrizations.weight_norm`, whose load hook maps the
original checkpoints' ``weight_g`` / ``weight_v`` keys, so a published HiFi-GAN ``mpd`` state dict loads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from .registry import register_model

PERIODS = [2, 3, 5, 7, 11]
CHANNELS = [32, 128, 512, 1024, 1024]


def check_audio(x: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` unless ``x`` is mono audio ``(N, 1, T)`` with ``T >= 1``."""
    if x.ndim != 3 or x.shape[1] != 1 or x.shape[-1] < 1:
        raise ValueError(f"{name} expects mono audio (N, 1, T), got shape {tuple(x.shape)}")


def run_discriminators(
    discriminators: nn.ModuleList, x: torch.Tensor, return_features: bool
) -> list[torch.Tensor] | tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """Each sub-discriminator on ``x``: its logits list, and with ``return_features`` its features
    per sub-discriminator (the list-of-lists the adversarial losses take)."""
    logits, features = [], []
    for disc in discriminators:
        logit, feats = disc(x)
        logits.append(logit)
        features.append(feats)
    return (logits, features) if return_features else logits


def fold_periods(x: torch.Tensor, period: int) -> torch.Tensor:
    """``(N, C, T)`` -> ``(N, C, ceil(T / period), period)``: column ``j`` holds samples ``j, j + p, ...``.

    ``T`` is first padded at the end to a multiple of ``period`` by reflection (as HiFi-GAN), or
    with zeros when the signal is too short to reflect (``T <= pad``).
    """
    n, c, t = x.shape
    pad = (-t) % period
    if pad:
        x = F.pad(x, (0, pad), mode="reflect" if pad < t else "constant")
    return x.reshape(n, c, (t + pad) // period, period)


class PeriodDiscriminator(nn.Module):
    """One period of the MPD: fold by ``period``, ``(k, 1)`` convs with stride ``(s, 1)``, a 1-channel head.

    ``(N, 1, T)`` -> logits ``(N, 1, rows, period)`` and the features after every conv (activations
    of ``convs`` and the raw ``conv_post`` output, as HiFi-GAN's ``fmap``).
    """

    def __init__(
        self,
        period: int,
        channels: list[int],
        kernel_size: int = 5,
        stride: int = 3,
        negative_slope: float = 0.1,
    ) -> None:
        super().__init__()
        self.period = period
        self.negative_slope = negative_slope
        padding = (kernel_size - 1) // 2
        self.convs = nn.ModuleList()
        in_ch = 1
        for i, out_ch in enumerate(channels):
            step = 1 if i == len(channels) - 1 else stride  # the last conv keeps the resolution
            conv = nn.Conv2d(in_ch, out_ch, (kernel_size, 1), (step, 1), padding=(padding, 0))
            self.convs.append(weight_norm(conv))
            in_ch = out_ch
        self.conv_post = weight_norm(nn.Conv2d(in_ch, 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        z = fold_periods(x, self.period)
        for conv in self.convs:
            z = F.leaky_relu(conv(z), self.negative_slope)
            features.append(z)
        z = self.conv_post(z)
        features.append(z)
        return z, features

    def receptive_rows(self) -> int:
        """Rows (periods) of the folded input that one output row sees."""
        rf, jump = 1, 1
        for conv in [*self.convs, self.conv_post]:
            rf += (conv.kernel_size[0] - 1) * jump
            jump *= conv.stride[0]
        return rf

    def extra_repr(self) -> str:
        return f"period={self.period}"


@register_model(
    "mpd",
    task="discriminator",
    config={"periods": PERIODS, "channels": CHANNELS},
    in_channels=1,
    out_channels=1,
    inputs=("audio",),
    summary="HiFi-GAN multi-period discriminator, periods 2/3/5/7/11: a list of 5 logit maps",
)
@register_model(
    "mpd_small",
    task="discriminator",
    config={"periods": PERIODS, "channels": [c // 4 for c in CHANNELS]},
    in_channels=1,
    out_channels=1,
    inputs=("audio",),
    summary="HiFi-GAN multi-period discriminator with a quarter of the channels (8..256)",
)
class MultiPeriodDiscriminator(nn.Module):
    """HiFi-GAN multi-period discriminator: one 2-D conv stack per period over the folded waveform.

    ``forward(x (N, 1, T))`` -> a list with one logit map ``(N, 1, rows_p, p)`` per period ``p``
    (``rows_p`` = ``ceil(T / p)`` after four stride-3 convs), no sigmoid. ``return_features=True``
    returns ``(logits, features)``, features a list per period of the 6 maps HiFi-GAN's feature
    loss uses (each conv's LeakyReLU output and the ``conv_post`` output).

    Per period: reflect-pad ``T`` to a multiple of ``p``, fold to ``(N, 1, T / p, p)``, then Conv2d
    ``(kernel_size, 1)`` stride ``(stride, 1)`` with ``channels`` (32, 128, 512, 1024, 1024 published;
    the last one stride 1), LeakyReLU(``negative_slope`` = 0.1), and ``conv_post`` ``(3, 1)`` to one
    channel; weight norm on every conv. The published configuration has 41.1M parameters.
    """

    def __init__(
        self,
        periods: list[int] = PERIODS,
        channels: list[int] = CHANNELS,
        kernel_size: int = 5,
        stride: int = 3,
        negative_slope: float = 0.1,
    ) -> None:
        super().__init__()
        periods, channels = list(periods), list(channels)
        if not periods or any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in periods):
            raise ValueError(f"periods must be a non-empty list of ints >= 1, got {periods!r}")
        if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty list of ints >= 1, got {channels!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd int >= 1, got {kernel_size!r}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride!r}")
        self.scale = 1
        self.in_channels = 1
        self.out_channels = 1
        self.size_multiple = 1
        self.periods = periods
        self.discriminators = nn.ModuleList(
            PeriodDiscriminator(p, channels, kernel_size, stride, negative_slope) for p in periods
        )
        # Radius in samples: half the span of folded rows one logit sees, times the largest period.
        self.receptive_field = max(-(-d.receptive_rows() * d.period // 2) for d in self.discriminators)

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> list[torch.Tensor] | tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        check_audio(x, type(self).__name__)
        return run_discriminators(self.discriminators, x, return_features)
