"""AERO-style spectral bandwidth extension (Mandel, Tal, Adi 2023, "AERO: Audio Super Resolution in
the Spectral Domain"; reference code slp-rl/aero).

The input is the band-limited signal already resampled to the target rate, ``(N, 1, T)``. Its complex
STFT (``n_fft`` 512, ``hop`` 128 by default; :class:`restore.models.stft.STFT`, float32) becomes two
channels (real, imaginary) over ``n_fft // 2`` frequency bins (the Nyquist bin is left as it is).
An encoder of strided convolutions along frequency, one time frame at a time, each followed by a
residual dilated convolution along time (AERO's DConv branch, causal on request) and a 1x1 conv +
GLU, shrinks the frequency axis; a learned frequency embedding after the first layer tells the
translation-equivariant convs where they are in the spectrum. At the bottleneck every frame's
features (all remaining bins together, so each output bin sees the whole spectrum) go through a
2-layer LSTM over time (bidirectional unless ``causal``). Mirrored decoder layers (1x1 conv + GLU,
transposed conv along frequency) with additive skips output a complex correction that is ADDED to the
input spectrogram before the inverse STFT. The last layer is zero-initialised, so the untrained model
is the identity (up to the STFT round trip, ~1e-7) and bandwidth-extension training starts from the
input signal.

Levels: each frame is divided by its RMS over frequency (plus ``floor``) before the network and the
correction is multiplied back, so the model is level-invariant and stays causal.

Receptive field: an output sample is synthesised from frames within ``n_fft / 2`` of it, each of
which sees ``n_fft / 2`` further, and the time convs add ``sum(dilations)`` frames (on the left only
when causal): ``receptive_field = n_fft + hop * sum(dilations)`` samples for the conv part. The LSTM
adds unbounded context (past only when causal); chunked inference relies on the overlap covering the
conv part and on the LSTM's fading memory.

Mixed precision: STFT, inverse STFT, the frame levels and the final correction run in float32 with
autocast off; the convs and the LSTM follow autocast.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register_model
from .stft import STFT

__all__ = ["Aero", "FreqDecoderLayer", "FreqEncoderLayer", "TimeBranch"]


class TimeBranch(nn.Module):
    """Residual branch along time per frequency bin: dilated (1, k) conv -> GELU -> 1x1 conv -> scale.

    (N, C, F, L) -> (N, C, F, L). ``causal`` pads only on the past side. ``scale`` (per channel,
    init ``init``) is AERO's LayerScale, so the branch starts as a small perturbation.
    """

    def __init__(
        self,
        channels: int,
        compress: int = 4,
        kernel_size: int = 3,
        dilation: int = 1,
        causal: bool = False,
        init: float = 0.1,
    ) -> None:
        super().__init__()
        hidden = max(1, channels // compress)
        self.conv1 = nn.Conv2d(channels, hidden, (1, kernel_size), dilation=(1, dilation))
        self.conv2 = nn.Conv2d(hidden, channels, 1)
        self.scale = nn.Parameter(torch.full((channels,), float(init)))
        total = dilation * (kernel_size - 1)
        self.padding = (total, 0) if causal else (total // 2, total - total // 2)

    @property
    def reach(self) -> tuple[int, int]:
        """Frames seen (past, future)."""
        return self.padding

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(F.gelu(self.conv1(F.pad(x, (*self.padding, 0, 0)))))
        return x + self.scale.view(1, -1, 1, 1).to(y.dtype) * y


class FreqEncoderLayer(nn.Module):
    """Strided conv over frequency (per frame) -> GELU -> time branch -> 1x1 conv -> GLU.

    (N, Cin, F, L) -> (N, Cout, F / stride, L).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int = 8,
        stride: int = 4,
        time_branch: bool = True,
        dilation: int = 1,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, (kernel_size, 1), (stride, 1), ((kernel_size - stride) // 2, 0))
        self.time = TimeBranch(cout, dilation=dilation, causal=causal) if time_branch else None
        self.rewrite = nn.Conv2d(cout, 2 * cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.gelu(self.conv(x))
        if self.time is not None:
            x = self.time(x)
        return F.glu(self.rewrite(x), dim=1)


class FreqDecoderLayer(nn.Module):
    """1x1 conv -> GLU -> transposed conv over frequency (per frame) -> GELU (not on the last layer).

    (N, Cin, F, L) -> (N, Cout, F * stride, L).
    """

    def __init__(
        self, cin: int, cout: int, kernel_size: int = 8, stride: int = 4, last: bool = False
    ) -> None:
        super().__init__()
        self.rewrite = nn.Conv2d(cin, 2 * cin, 1)
        self.conv_tr = nn.ConvTranspose2d(
            cin, cout, (kernel_size, 1), (stride, 1), ((kernel_size - stride) // 2, 0)
        )
        self.last = last

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_tr(F.glu(self.rewrite(x), dim=1))
        return x if self.last else F.gelu(x)


class TimeModel(nn.Module):
    """Bottleneck over time: Linear(C*F -> H) -> LSTM (2 layers) -> Linear(-> C*F), per frame features.

    (N, C, F, L) -> (N, C, F, L); bidirectional unless ``causal``.
    """

    def __init__(self, features: int, hidden: int, layers: int = 2, causal: bool = False) -> None:
        super().__init__()
        self.proj_in = nn.Linear(features, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True, bidirectional=not causal)
        self.proj_out = nn.Linear(hidden * (1 if causal else 2), features)

    def forward(self, x: Tensor) -> Tensor:
        n, c, f, frames = x.shape
        y = x.reshape(n, c * f, frames).transpose(1, 2)  # (N, L, C*F)
        y, _ = self.lstm(self.proj_in(y))
        return self.proj_out(y).transpose(1, 2).reshape(n, c, f, frames)


@register_model(
    "aero",
    task="audio",
    config={
        "n_fft": 512,
        "hop": 128,
        "channels": 32,
        "strides": [4, 4, 4],
        "lstm_hidden": 128,
        "causal": False,
        "sample_rate": 16000,
    },
    in_channels=1,
    out_channels=1,
    supports_fp16=True,
    supports_bf16=True,
    size_multiple=1,
    receptive_field=1408,
    inputs=("audio",),
    summary="AERO-style spectral bandwidth extension: freq-axis conv U-Net + BiLSTM over frames, 1.2M",
)
class Aero(nn.Module):
    """AERO-style spectral bandwidth extension (complex STFT correction from a frequency U-Net + LSTM).

    (N, 1, T) band-limited audio at the target rate -> (N, 1, T) for any T >= 1. ``channels`` of the
    first frequency layer grow by ``growth`` per layer; ``strides`` along frequency must divide
    ``n_fft // 2`` (product) and satisfy ``kernel_size - stride`` even and >= 0; ``lstm_hidden`` is
    the bottleneck LSTM width; ``causal`` makes the time convs and the LSTM look only at the past;
    ``time_branch`` toggles the per-layer dilated time convs (dilation 2**layer); ``freq_emb`` weights
    the frequency embedding (0 = none); ``floor`` is added to each frame's RMS level.
    """

    def __init__(
        self,
        n_fft: int = 512,
        hop: int = 128,
        channels: int = 32,
        growth: float = 2,
        strides: tuple[int, ...] | list[int] = (4, 4, 4),
        kernel_size: int = 8,
        lstm_hidden: int = 128,
        lstm_layers: int = 2,
        causal: bool = False,
        time_branch: bool = True,
        freq_emb: float = 0.2,
        floor: float = 1e-4,
        sample_rate: int = 16000,
    ) -> None:
        super().__init__()
        strides = tuple(int(s) for s in strides)
        if n_fft < 4 or n_fft % 2:
            raise ValueError(f"n_fft must be even and >= 4, got {n_fft}")
        if not strides or any(s < 1 for s in strides):
            raise ValueError(f"strides must be a non-empty sequence of ints >= 1, got {strides}")
        bins = n_fft // 2
        if bins % math.prod(strides):
            raise ValueError(f"n_fft // 2 ({bins}) must be divisible by prod(strides) ({math.prod(strides)})")
        for s in strides:
            if kernel_size < s or (kernel_size - s) % 2:
                raise ValueError(
                    f"kernel_size - stride must be even and >= 0, got kernel_size={kernel_size}, stride={s}"
                )
        for arg, value in (("hop", hop), ("channels", channels), ("lstm_hidden", lstm_hidden)):
            if value < 1:
                raise ValueError(f"{arg} must be >= 1, got {value}")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.in_channels = self.out_channels = 1
        self.scale = 1
        self.size_multiple = 1
        self.sample_rate = sample_rate
        self.causal = causal
        self.floor = floor
        self.bins = bins
        self.stft = STFT(n_fft, hop)

        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        dilations = [2**i for i in range(len(strides))] if time_branch else []
        cin, width, freqs = 2, channels, bins
        for index, stride in enumerate(strides):
            self.encoder.append(
                FreqEncoderLayer(
                    cin, width, kernel_size, stride, time_branch, 2**index if time_branch else 1, causal
                )
            )
            self.decoder.insert(0, FreqDecoderLayer(width, cin, kernel_size, stride, last=index == 0))
            freqs //= stride
            if index == 0:
                first_channels, first_freqs = width, freqs
            cin, width = width, int(growth * width)
        self.freq_emb_scale = freq_emb
        self.freq_emb = None
        if freq_emb:
            # Smooth random init over frequency (cumulative sum of Gaussians / sqrt(n)), as AERO's embedding.
            emb = torch.randn(first_freqs, first_channels).cumsum(0)
            emb = emb / torch.arange(1, first_freqs + 1).sqrt()[:, None]
            self.freq_emb = nn.Parameter(emb.t().contiguous())  # (C, F)
        self.time_model = TimeModel(cin * freqs, lstm_hidden, lstm_layers, causal)
        last = self.decoder[-1].conv_tr
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

        frames = sum(dilations) * (2 if causal else 1)  # kernel 3: `d` frames per side, `2d` back if causal
        self.receptive_field = n_fft + hop * frames
        # Causal: centred frames reach n_fft / 2 ahead and are synthesised up to n_fft / 2 back, so an
        # output sample depends on at most n_fft - 1 future samples. Not causal: unbounded (None).
        self.lookahead: int | None = n_fft - 1 if causal else None

    def forward(self, x: Tensor) -> Tensor:
        """(N, 1, T) -> (N, 1, T)."""
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"Aero expects mono audio (N, 1, T), got {tuple(x.shape)}")
        length = x.shape[-1]
        if length < 1:
            raise ValueError("Aero needs at least one sample, got T=0")
        spec = self.stft(x)  # (N, F + 1, L) complex64, float32 under any autocast
        with torch.autocast(device_type=x.device.type, enabled=False):
            feats = torch.view_as_real(spec[:, : self.bins]).permute(0, 3, 1, 2)  # (N, 2, F, L)
            level = feats.square().mean(dim=(1, 2), keepdim=True).sqrt() + self.floor  # (N, 1, 1, L)
            h = feats / level
        skips = []
        for index, encode in enumerate(self.encoder):
            h = encode(h)
            if index == 0 and self.freq_emb is not None:
                h = h + self.freq_emb_scale * self.freq_emb[None, :, :, None].to(h.dtype)
            skips.append(h)
        h = self.time_model(h)
        for decode in self.decoder:
            h = decode(h + skips.pop(-1))
        with torch.autocast(device_type=x.device.type, enabled=False):
            corr = (h.float() * level).permute(0, 2, 3, 1).contiguous()  # (N, F, L, 2)
            corr = F.pad(torch.view_as_complex(corr), (0, 0, 0, 1))  # Nyquist bin: no correction
            return self.stft.inverse(spec + corr, length)
