"""EnCodec's multi-scale STFT discriminator (MS-STFT; Défossez et al. 2022).

Each scale takes the normalised complex STFT of the waveform, real and imaginary parts as two
channels, time along dim 2 and frequency along dim 3, and runs a 2-D conv stack over it. Structure
and key names follow audiocraft's ``audiocraft/adversarial/discriminators/msstftd.py``
(``discriminators.{i}.convs.{j}.conv``, ``discriminators.{i}.conv_post.conv``); weight norm is
:func:`torch.nn.utils.parametrizations.weight_norm`, which also loads the ``weight_g`` / ``weight_v``
keys of checkpoints written with the old ``torch.nn.utils.weight_norm``.

The STFT runs in float32 with autocast off (:mod:`restore.models.stft`), centred with reflect
padding (``torch.stft(center=True)``), so any ``T >= 1`` works; audiocraft uses ``center=False``,
which gives the frames of ours that do not reach into the padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from .mpd import check_audio, run_discriminators
from .registry import register_model
from .stft import stft

N_FFTS = [1024, 2048, 512]
HOPS = [256, 512, 128]


def same_padding(kernel_size: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """Padding that keeps the size of a stride-1 conv: ``((k - 1) * d) // 2`` per dimension."""
    return ((kernel_size[0] - 1) * dilation[0]) // 2, ((kernel_size[1] - 1) * dilation[1]) // 2


class NormConv2d(nn.Module):
    """A Conv2d kept under ``.conv`` (audiocraft's key layout), with weight norm when ``norm``."""

    def __init__(self, *args, norm: bool = True, **kwargs) -> None:
        super().__init__()
        conv = nn.Conv2d(*args, **kwargs)
        self.conv = weight_norm(conv) if norm else conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class DiscriminatorSTFT(nn.Module):
    """One scale of the MS-STFT discriminator: complex STFT -> 2-D conv stack -> 1-channel logits.

    ``(N, 1, T)`` -> logits ``(N, 1, frames, F')`` with ``frames = T // hop + 1`` and ``F'`` the
    ``n_fft // 2 + 1`` bins after ``len(dilations)`` stride-2 convs (1024 -> 65), plus the
    LeakyReLU output of each conv in ``convs`` as features.

    Layers (filters ``f``, ``kernel_size`` (3, 9) = (time, frequency)): conv 2 -> f (no weight norm,
    as audiocraft), then one conv per dilation d in (1, 2, 4) with stride (1, 2) and dilation (d, 1),
    a (3, 3) conv, each followed by LeakyReLU(0.2), and ``conv_post`` (3, 3) to one channel. The
    spectrogram is ``torch.stft / sqrt(sum(window^2))`` (torchaudio's ``normalized=True``), Hann window.
    """

    def __init__(
        self,
        filters: int,
        n_fft: int = 1024,
        hop: int = 256,
        win_length: int | None = None,
        kernel_size: Sequence[int] = (3, 9),
        stride: Sequence[int] = (1, 2),
        dilations: Sequence[int] = (1, 2, 4),
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.win_length = win_length or n_fft
        if self.win_length > n_fft:
            raise ValueError(f"win_length ({self.win_length}) must be <= n_fft ({n_fft})")
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)
        self.activation = nn.LeakyReLU(negative_slope)
        kernel_size, stride = (kernel_size[0], kernel_size[1]), (stride[0], stride[1])
        square = (kernel_size[0], kernel_size[0])
        first = NormConv2d(2, filters, kernel_size, padding=same_padding(kernel_size), norm=False)
        self.convs = nn.ModuleList([first])
        for d in dilations:
            padding = same_padding(kernel_size, (d, 1))
            self.convs.append(NormConv2d(filters, filters, kernel_size, stride, padding, dilation=(d, 1)))
        self.convs.append(NormConv2d(filters, filters, square, padding=same_padding(square)))
        self.conv_post = NormConv2d(filters, 1, square, padding=same_padding(square))
        # audiocraft keeps torchaudio's Spectrogram window in its state dict: ignore it when loading.
        self._register_load_state_dict_pre_hook(_drop_spectrogram_window)

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, T)`` -> float32 ``(N, 2, frames, n_fft // 2 + 1)``: real and imaginary parts."""
        spec = stft(x, self.n_fft, self.hop, self.win_length, self.window)  # (N, F, frames), autocast off
        with torch.autocast(device_type=x.device.type, enabled=False):
            spec = spec / self.window.square().sum().sqrt()
            return torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        z = self.spectrogram(x)
        for conv in self.convs:
            z = self.activation(conv(z))
            features.append(z)
        return self.conv_post(z), features

    def receptive_frames(self) -> int:
        """STFT frames one output frame sees."""
        rf, jump = 1, 1
        for layer in [*self.convs, self.conv_post]:
            conv = layer.conv
            rf += (conv.kernel_size[0] - 1) * conv.dilation[0] * jump
            jump *= conv.stride[0]
        return rf

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop={self.hop}, win_length={self.win_length}"


def _drop_spectrogram_window(state_dict, prefix, *args) -> None:
    state_dict.pop(f"{prefix}spec_transform.window", None)


@register_model(
    "msstft_discriminator",
    task="discriminator",
    config={"filters": 32, "n_ffts": N_FFTS, "hops": HOPS},
    in_channels=1,
    out_channels=1,
    inputs=("audio",),
    summary="EnCodec multi-scale STFT discriminator, n_fft 1024/2048/512: a list of 3 logit maps",
)
@register_model(
    "msstft_discriminator_small",
    task="discriminator",
    config={"filters": 16, "n_ffts": N_FFTS, "hops": HOPS},
    in_channels=1,
    out_channels=1,
    inputs=("audio",),
    summary="EnCodec multi-scale STFT discriminator with 16 filters",
)
class MultiScaleSTFTDiscriminator(nn.Module):
    """EnCodec multi-scale STFT discriminator: one conv stack per STFT resolution, on real+imag.

    ``forward(x (N, 1, T))`` -> a list with one logit map ``(N, 1, T // hop + 1, F')`` per scale
    (``n_ffts`` 1024, 2048, 512 with ``hops`` 256, 512, 128 and ``win_lengths`` = ``n_ffts`` by
    default; ``F'`` = 65, 129, 33), no sigmoid. ``return_features=True`` returns ``(logits,
    features)``, features a list per scale of the 5 LeakyReLU outputs of its conv stack.

    Per scale (:class:`DiscriminatorSTFT`): normalised complex STFT in float32 with autocast off,
    real and imaginary parts as 2 channels, Conv2d kernels (3, 9) over (time, frequency) with
    ``filters`` channels, dilations (1, 2, 4) in time and stride 2 in frequency, weight norm,
    LeakyReLU(0.2), and a (3, 3) conv to one channel.
    """

    def __init__(
        self,
        filters: int = 32,
        n_ffts: list[int] = N_FFTS,
        hops: list[int] = HOPS,
        win_lengths: list[int] | None = None,
        kernel_size: Sequence[int] = (3, 9),
        dilations: Sequence[int] = (1, 2, 4),
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        n_ffts, hops = list(n_ffts), list(hops)
        win_lengths = list(n_ffts) if win_lengths is None else list(win_lengths)
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(f"filters must be an int >= 1, got {filters!r}")
        if not n_ffts or not len(n_ffts) == len(hops) == len(win_lengths):
            raise ValueError(
                f"n_ffts, hops and win_lengths must be non-empty and of one length, got {n_ffts}, {hops}, "
                f"{win_lengths}"
            )
        for n_fft, hop, win in zip(n_ffts, hops, win_lengths, strict=True):
            if n_fft < 2 or hop < 1 or not 1 <= win <= n_fft:
                raise ValueError(
                    f"each scale needs n_fft >= 2, hop >= 1 and 1 <= win_length <= n_fft, got n_fft={n_fft}, "
                    f"hop={hop}, win_length={win}"
                )
        if len(kernel_size) != 2:
            raise ValueError(f"kernel_size must be (time, frequency), got {kernel_size!r}")
        self.scale = 1
        self.in_channels = 1
        self.out_channels = 1
        self.size_multiple = 1
        self.discriminators = nn.ModuleList(
            DiscriminatorSTFT(filters, n, h, w, kernel_size, (1, 2), dilations, negative_slope)
            for n, h, w in zip(n_ffts, hops, win_lengths, strict=True)
        )
        # Radius in samples of the waveform span behind one logit, over the widest scale.
        self.receptive_field = max(
            -(-((d.receptive_frames() - 1) * d.hop + d.win_length) // 2) for d in self.discriminators
        )

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> list[torch.Tensor] | tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        check_audio(x, type(self).__name__)
        return run_discriminators(self.discriminators, x, return_features)
