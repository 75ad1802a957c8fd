"""Demucs: waveform U-Net for real-time speech enhancement (Defossez, Synnaeve, Adi 2020).

"Real Time Speech Enhancement in the Waveform Domain" (facebookresearch/denoiser). The input is
upsampled by ``resample`` (2 or 4) with a windowed-sinc interpolator, encoded by ``depth`` blocks
``Conv1d(K, stride S) -> ReLU -> Conv1d(1x1, 2H) -> GLU``, passed through a 2-layer LSTM over the
bottleneck frames (bidirectional + Linear when not causal), decoded by mirrored blocks
``Conv1d(1x1, 2H) -> GLU -> ConvTranspose1d(K, S) (-> ReLU except the last)`` with additive skips,
downsampled back and cropped to the input length. Keys (``encoder.{i}.0``, ``encoder.{i}.2``,
``decoder.{i}.0``, ``decoder.{i}.2``, ``lstm.lstm.*``, ``lstm.linear.*``) are the original's, so the
released dns48 / dns64 / master64 state dicts load with ``strict=True`` (build them with
``normalize=True``, as they were trained).

Receptive field and look-ahead: one output sample sees at most ``receptive_field`` input samples on
each side through the convolutions and the sinc filters (``conv_receptive_field`` plus the
resampling filters' reach). The LSTM adds unbounded past context (and future context when
bidirectional); chunked inference therefore relies on the overlap covering the conv part and on the
LSTM's fading memory. With ``causal=True`` an output sample depends on no input more than
``lookahead`` samples ahead of it (the convs' forward reach plus the sinc filters' half-width).

Mixed precision: the sinc resampling and the input normalisation run in float32 with autocast off.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register_model

__all__ = ["BLSTM", "Demucs", "downsample2", "rescale_module", "sinc_kernel", "upsample2"]

SINC_ZEROS = 56


def sinc_kernel(zeros: int = SINC_ZEROS) -> Tensor:
    """Half-sample sinc interpolation filter ``(1, 1, 2 * zeros)`` (odd taps of a Hann window).

    ``sinc(pi * t)`` at ``t = -zeros + 0.5 ... zeros - 0.5`` times the odd samples of a symmetric
    Hann window of ``4 * zeros + 1`` points: the value halfway between two samples of a band-limited
    signal (Smith & Gossett 1984).
    """
    if zeros < 1:
        raise ValueError(f"zeros must be >= 1, got {zeros}")
    window = torch.hann_window(4 * zeros + 1, periodic=False, dtype=torch.float64)[1::2]
    t = torch.linspace(-zeros + 0.5, zeros - 0.5, 2 * zeros, dtype=torch.float64) * math.pi
    return (torch.sin(t) / t * window).float().view(1, 1, -1)


def _kernel_for(x: Tensor, kernel: Tensor | None, zeros: int) -> Tensor:
    kernel = sinc_kernel(zeros) if kernel is None else kernel
    return kernel.to(device=x.device, dtype=torch.float32)


def upsample2(x: Tensor, zeros: int = SINC_ZEROS, kernel: Tensor | None = None) -> Tensor:
    """Upsample ``(..., T)`` by 2 with sinc interpolation -> ``(..., 2T)`` float32.

    Even output samples are the input; odd ones the half-sample interpolation (zero padding
    outside). Runs in float32 with autocast off.
    """
    *other, length = x.shape
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float().reshape(-1, 1, length)
        mid = F.conv1d(x, _kernel_for(x, kernel, zeros), padding=zeros)[..., 1:]
        return torch.stack([x, mid], dim=-1).reshape(*other, 2 * length)


def downsample2(x: Tensor, zeros: int = SINC_ZEROS, kernel: Tensor | None = None) -> Tensor:
    """Downsample ``(..., T)`` by 2 with sinc low-pass filtering -> ``(..., ceil(T / 2))`` float32.

    The mean of the even samples and the odd samples interpolated onto the even positions (the
    adjoint of :func:`upsample2`, so ``downsample2(upsample2(x)) ~= x``). Runs in float32 with
    autocast off.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float()
        if x.shape[-1] % 2:
            x = F.pad(x, (0, 1))
        even, odd = x[..., ::2], x[..., 1::2]
        *other, length = odd.shape
        mid = F.conv1d(odd.reshape(-1, 1, length), _kernel_for(x, kernel, zeros), padding=zeros)[..., :-1]
        return (even + mid.reshape(*other, length)) * 0.5


class BLSTM(nn.Module):
    """2-layer LSTM over time, bidirectional with a Linear back to ``dim`` (keys ``lstm``, ``linear``).

    (T, N, dim) -> (T, N, dim) (sequence first, as the original).
    """

    def __init__(self, dim: int, layers: int = 2, bi: bool = True) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size=dim, hidden_size=dim, num_layers=layers, bidirectional=bi)
        self.linear = nn.Linear(2 * dim, dim) if bi else None

    def forward(self, x: Tensor, hidden: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple]:
        x, hidden = self.lstm(x, hidden)
        if self.linear is not None:
            x = self.linear(x)
        return x, hidden


def rescale_module(module: nn.Module, reference: float) -> None:
    """Demucs init: divide each (transposed) conv's weight and bias by ``sqrt(std(weight) / reference)``."""
    for sub in module.modules():
        if isinstance(sub, nn.Conv1d | nn.ConvTranspose1d):
            scale = (sub.weight.detach().std() / reference) ** 0.5
            sub.weight.data /= scale
            if sub.bias is not None:
                sub.bias.data /= scale


@register_model(
    "demucs",
    task="audio",
    config={"hidden": 48, "depth": 5, "causal": True, "resample": 4, "sample_rate": 16000},
    in_channels=1,
    out_channels=1,
    supports_fp16=True,
    supports_bf16=True,
    size_multiple=1,
    receptive_field=764,
    inputs=("audio",),
    summary="Demucs waveform U-Net + LSTM (denoiser dns48: H=48, depth 5, causal), 18.9M params",
)
@register_model(
    "demucs_dns64",
    task="audio",
    config={"hidden": 64, "depth": 5, "causal": True, "resample": 4, "sample_rate": 16000},
    in_channels=1,
    out_channels=1,
    supports_fp16=True,
    supports_bf16=True,
    size_multiple=1,
    receptive_field=764,
    inputs=("audio",),
    summary="Demucs waveform U-Net + LSTM (denoiser dns64: H=64, depth 5, causal), 33.5M params",
)
@register_model(
    "demucs_small",
    task="audio",
    config={"hidden": 24, "depth": 4, "causal": True, "resample": 4, "sample_rate": 16000},
    in_channels=1,
    out_channels=1,
    supports_fp16=True,
    supports_bf16=True,
    size_multiple=1,
    receptive_field=316,
    inputs=("audio",),
    summary="Demucs waveform U-Net + LSTM, H=24, depth 4, causal: the CPU-sized variant",
)
class Demucs(nn.Module):
    """Demucs waveform U-Net with an LSTM bottleneck for speech enhancement (denoiser's Demucs).

    (N, 1, T) -> (N, 1, T) for any T >= 1 (pads to :meth:`valid_length`, crops back). Arguments as
    the original: ``hidden`` channels of the first layer, multiplied by ``growth`` per layer up to
    ``max_hidden``; ``causal`` selects a unidirectional LSTM; ``resample`` in (1, 2, 4) upsamples the
    input first; ``normalize`` divides the input by its std (+ ``floor``) and multiplies the output
    back (off here: the restore pipeline sets levels; turn on for the published weights);
    ``glu`` uses GLU after the 1x1 convs (else ReLU); ``rescale`` is the init weight rescaling
    reference (0 = off).
    """

    def __init__(
        self,
        chin: int = 1,
        chout: int = 1,
        hidden: int = 48,
        depth: int = 5,
        kernel_size: int = 8,
        stride: int = 4,
        causal: bool = True,
        resample: int = 4,
        growth: float = 2,
        max_hidden: int = 10_000,
        normalize: bool = False,
        glu: bool = True,
        rescale: float = 0.1,
        floor: float = 1e-3,
        sample_rate: int = 16000,
    ) -> None:
        super().__init__()
        if resample not in (1, 2, 4):
            raise ValueError(f"resample must be 1, 2 or 4, got {resample}")
        for arg, value in (("chin", chin), ("chout", chout), ("hidden", hidden), ("depth", depth)):
            if value < 1:
                raise ValueError(f"{arg} must be >= 1, got {value}")
        if stride < 1 or kernel_size < stride:
            raise ValueError(
                f"need kernel_size >= stride >= 1, got kernel_size={kernel_size}, stride={stride}"
            )
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.chin, self.chout = chin, chout
        self.in_channels, self.out_channels = chin, chout
        self.scale = 1
        self.size_multiple = 1
        self.hidden, self.depth = hidden, depth
        self.kernel_size, self.stride = kernel_size, stride
        self.causal, self.resample = causal, resample
        self.normalize, self.floor = normalize, floor
        self.sample_rate = sample_rate

        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        ch_scale = 2 if glu else 1
        cin, cout, width = chin, chout, hidden
        for index in range(depth):
            self.encoder.append(
                nn.Sequential(
                    nn.Conv1d(cin, width, kernel_size, stride),
                    nn.ReLU(),
                    nn.Conv1d(width, width * ch_scale, 1),
                    nn.GLU(1) if glu else nn.ReLU(),
                )
            )
            decode: list[nn.Module] = [
                nn.Conv1d(width, width * ch_scale, 1),
                nn.GLU(1) if glu else nn.ReLU(),
                nn.ConvTranspose1d(width, cout, kernel_size, stride),
            ]
            if index > 0:
                decode.append(nn.ReLU())
            self.decoder.insert(0, nn.Sequential(*decode))
            cin = cout = width
            width = min(int(growth * width), max_hidden)
        self.lstm = BLSTM(cin, bi=not causal)
        if rescale:
            rescale_module(self, reference=rescale)
        self.register_buffer("sinc", sinc_kernel(SINC_ZEROS), persistent=False)

        # Reach of the conv stack at the upsampled rate: a top-level frame spans r samples and an output
        # sample is written by the frames whose span holds it, so it sees r - 1 samples either side.
        self.conv_receptive_field = (kernel_size - 1) * sum(stride**i for i in range(depth))
        self.receptive_field = self._reach(self.conv_receptive_field)
        # Causal: the LSTM only carries the past, so the future reach is the conv + sinc part. Not causal:
        # the BiLSTM sees the whole signal (None = unbounded).
        self.lookahead: int | None = self.receptive_field if causal else None

    def _reach(self, conv_reach: int) -> int:
        """Input samples one output sample can see on one side: resampling filters + conv stack."""
        stages = int(math.log2(self.resample))
        up = sum(SINC_ZEROS * 2 ** (stages - s) for s in range(stages))  # upsample2 sees `zeros` ahead
        down = sum((2 * SINC_ZEROS - 1) * 2**s for s in range(stages))  # downsample2: 2*zeros-1 high-rate
        return math.ceil((up + conv_reach + down) / self.resample)

    def valid_length(self, length: int) -> int:
        """Smallest input length >= ``length`` for which no conv leaves samples over."""
        length = math.ceil(length * self.resample)
        for _ in range(self.depth):
            length = max(math.ceil((length - self.kernel_size) / self.stride) + 1, 1)
        for _ in range(self.depth):
            length = (length - 1) * self.stride + self.kernel_size
        return int(math.ceil(length / self.resample))

    @property
    def total_stride(self) -> int:
        """Input samples per bottleneck frame."""
        return self.stride**self.depth // self.resample

    def forward(self, mix: Tensor) -> Tensor:
        """(N, chin, T) (or (N, T)) -> (N, chout, T)."""
        if mix.dim() == 2:
            mix = mix.unsqueeze(1)
        if mix.dim() != 3 or mix.shape[1] != self.chin:
            raise ValueError(f"Demucs expects audio (N, {self.chin}, T), got {tuple(mix.shape)}")
        length = mix.shape[-1]
        if length < 1:
            raise ValueError("Demucs needs at least one sample, got T=0")
        std: Tensor | float = 1.0
        if self.normalize:
            with torch.autocast(device_type=mix.device.type, enabled=False):
                mono = mix.float().mean(dim=1, keepdim=True)
                std = mono.std(dim=-1, keepdim=True) if length > 1 else torch.zeros_like(mono)
                mix = mix.float() / (self.floor + std)
        x = F.pad(mix, (0, self.valid_length(length) - length))
        for _ in range(int(math.log2(self.resample))):
            x = upsample2(x, kernel=self.sinc)
        skips = []
        for encode in self.encoder:
            x = encode(x)
            skips.append(x)
        x, _ = self.lstm(x.permute(2, 0, 1))
        x = x.permute(1, 2, 0)
        for decode in self.decoder:
            skip = skips.pop(-1)
            x = decode(x + skip[..., : x.shape[-1]])
        for _ in range(int(math.log2(self.resample))):
            x = downsample2(x, kernel=self.sinc)
        x = x[..., :length].float()
        return std * x
