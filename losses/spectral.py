"""Spectral audio losses: multi-resolution STFT, log-mel L1, EnCodec's multi-scale mel loss.

All take ``pred`` and ``target`` waveforms of shape ``(N, C, T)`` (or ``(N, T)``) in [-1, 1] and
run in float32 with autocast off (STFTs in half precision are unsupported or inaccurate).
``mrstft`` takes the STFT of ``pred`` and ``target`` in one call on the two batches concatenated and
back-propagates through STFT and magnitude with a fused, exact backward that skips the target.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .precision import float32, float32_call
from .registry import register

WINDOWS = ("hann_window", "hamming_window", "blackman_window", "bartlett_window", "kaiser_window")
MAG_DISTANCES = ("L1", "L2")


def _as_signals(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes and flatten ``(N, C, T)`` / ``(N, T)`` to ``(N * C, T)``."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim not in (2, 3):
        raise ValueError(f"expected audio of shape (N, C, T) or (N, T), got {tuple(pred.shape)}")
    length = pred.shape[-1]
    return pred.reshape(-1, length), target.reshape(-1, length)


def _window_name(window: str) -> str:
    name = window if window.endswith("_window") else f"{window}_window"
    if name not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
    return name


def _check_resolutions(
    fft_sizes: Sequence[int], hop_sizes: Sequence[int], win_lengths: Sequence[int]
) -> list[tuple[int, int, int]]:
    if not (len(fft_sizes) == len(hop_sizes) == len(win_lengths)) or len(fft_sizes) == 0:
        raise ValueError(
            "fft_sizes, hop_sizes and win_lengths must be non-empty and of equal length, got "
            f"{len(fft_sizes)}, {len(hop_sizes)}, {len(win_lengths)}"
        )
    resolutions = []
    for n_fft, hop, win in zip(fft_sizes, hop_sizes, win_lengths, strict=True):
        if min(n_fft, hop, win) <= 0:
            raise ValueError(f"FFT size, hop and window length must be positive, got {n_fft}, {hop}, {win}")
        if win > n_fft:
            raise ValueError(f"window length {win} is longer than its FFT size {n_fft}")
        resolutions.append((int(n_fft), int(hop), int(win)))
    return resolutions


def _padded_window(window: torch.Tensor, n_fft: int) -> torch.Tensor:
    """The window zero-padded to ``n_fft`` and centred, as ``torch.stft`` does."""
    size = window.shape[0]
    if size == n_fft:
        return window
    left = (n_fft - size) // 2
    return F.pad(window, (left, n_fft - size - left))


def _stft_adjoint(
    grad: torch.Tensor, length: int, n_fft: int, hop: int, window: torch.Tensor
) -> torch.Tensor:
    """``Re(A^H g)`` for ``A`` the centred, reflect-padded, one-sided ``torch.stft``; ``(B, F, T) -> (B, T)``.

    The STFT is linear in the signal, so this is its exact backward. It costs one inverse real FFT
    and an overlap-add (``fold``), against a complex FFT and an ``as_strided`` scatter for autograd.
    """
    n_bins = grad.shape[1]
    # Bins 1..ceil(n_fft/2)-1 stand for two conjugate bins of the full spectrum; irfft counts them
    # twice, so halve them (and undo irfft's 1/n_fft).
    scale = torch.full((n_bins, 1), 0.5 * n_fft, dtype=grad.real.dtype, device=grad.device)
    scale[0] = n_fft
    if n_fft % 2 == 0:
        scale[-1] = n_fft
    frames = torch.fft.irfft(grad * scale, n=n_fft, dim=1) * _padded_window(window, n_fft)[:, None]
    pad = n_fft // 2
    padded_len = length + 2 * pad
    padded = F.fold(frames, (1, padded_len), kernel_size=(1, n_fft), stride=(1, hop)).view(-1, padded_len)
    out = padded[:, pad : pad + length].clone()
    out[:, 1 : pad + 1] += padded[:, :pad].flip(-1)  # reflect padding: fold the edges back
    out[:, length - 1 - pad : length - 1] += padded[:, pad + length :].flip(-1)
    return out


class _STFTPair(torch.autograd.Function):
    """STFT of ``pred`` and ``target`` in one ``torch.stft`` call, with a backward for what needs it.

    Autograd through a concatenation would run the STFT backward on the target half as well
    (wasted when the target is data); this returns the two spectra separately, the target's
    marked non-differentiable unless it requires grad, and back-propagates only what is needed.
    """

    @staticmethod
    def forward(ctx, x, y, n_fft, hop, win_length, window):  # type: ignore[override]
        spec = torch.stft(torch.cat([x, y]), n_fft, hop, win_length, window, return_complex=True)
        ctx.save_for_backward(window)
        ctx.params = (n_fft, hop, x.shape[-1])
        spec_x, spec_y = spec[: x.shape[0]], spec[x.shape[0] :]
        if not ctx.needs_input_grad[0]:
            ctx.mark_non_differentiable(spec_x)
        if not ctx.needs_input_grad[1]:
            ctx.mark_non_differentiable(spec_y)
        return spec_x, spec_y

    @staticmethod
    def backward(ctx, grad_x, grad_y):  # type: ignore[override]
        (window,) = ctx.saved_tensors
        n_fft, hop, length = ctx.params
        dx = _stft_adjoint(grad_x, length, n_fft, hop, window) if ctx.needs_input_grad[0] else None
        dy = _stft_adjoint(grad_y, length, n_fft, hop, window) if ctx.needs_input_grad[1] else None
        return dx, dy, None, None, None, None


def _magnitude(spec: torch.Tensor, eps: float) -> torch.Tensor:
    """``sqrt(clamp(re^2 + im^2, min=eps))``, auraloss's STFT magnitude."""
    return torch.sqrt(torch.clamp(spec.real.square() + spec.imag.square(), min=eps))


class _STFTMagnitudePair(torch.autograd.Function):
    """STFT magnitudes of ``x`` and ``y`` from one ``torch.stft`` call, with a fused backward.

    Forward values are exactly :func:`_magnitude` of the STFT. The backward of magnitude and
    STFT together is ``grad / mag * spec`` (zero where the ``eps`` clamp is active) followed by
    :func:`_stft_adjoint`, computed only for the inputs that require grad. First-order only.
    """

    @staticmethod
    def forward(ctx, x, y, n_fft, hop, win_length, window, eps):  # type: ignore[override]
        spec = torch.stft(torch.cat([x, y]), n_fft, hop, win_length, window, return_complex=True)
        mag = torch.clamp_(spec.real.square() + spec.imag.square(), min=eps).sqrt_()
        batch = x.shape[0]
        ctx.save_for_backward(window, spec, mag)
        ctx.params = (n_fft, hop, x.shape[-1], batch)
        # Clamped entries equal sqrt(eps) computed exactly as in the forward.
        ctx.floor = torch.tensor(eps, dtype=mag.dtype).sqrt().item()
        x_mag, y_mag = mag[:batch], mag[batch:]
        if not ctx.needs_input_grad[0]:
            ctx.mark_non_differentiable(x_mag)
        if not ctx.needs_input_grad[1]:
            ctx.mark_non_differentiable(y_mag)
        return x_mag, y_mag

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_x, grad_y):  # type: ignore[override]
        window, spec, mag = ctx.saved_tensors
        n_fft, hop, length, batch = ctx.params

        def vjp(grad: torch.Tensor, part: slice) -> torch.Tensor:
            m = mag[part]
            coef = torch.where(m > ctx.floor, grad / m, 0.0)
            return _stft_adjoint(spec[part] * coef, length, n_fft, hop, window)

        dx = vjp(grad_x, slice(0, batch)) if ctx.needs_input_grad[0] else None
        dy = vjp(grad_y, slice(batch, None)) if ctx.needs_input_grad[1] else None
        return dx, dy, None, None, None, None, None


def _mrstft(
    pred: torch.Tensor,
    target: torch.Tensor,
    resolutions: Sequence[tuple[int, int, int]],
    windows: Sequence[torch.Tensor],
    w_sc: float,
    w_log_mag: float,
    w_lin_mag: float,
    w_phs: float,
    eps: float,
    mag_distance: str,
) -> torch.Tensor:
    x, y = _as_signals(pred, target)
    longest = max(n_fft for n_fft, _, _ in resolutions)
    if x.shape[-1] <= longest // 2:
        raise ValueError(
            f"signals of {x.shape[-1]} samples are too short for a centred STFT of size {longest}"
        )
    distance = F.l1_loss if mag_distance == "L1" else F.mse_loss
    total = x.new_zeros(())
    for (n_fft, hop, win), window in zip(resolutions, windows, strict=True):
        window = window.to(x.dtype)
        if w_phs:  # the phase needs the complex spectra
            spec_x, spec_y = _STFTPair.apply(x, y, n_fft, hop, win, window)
            x_mag, y_mag = _magnitude(spec_x, eps), _magnitude(spec_y, eps)
        else:
            x_mag, y_mag = _STFTMagnitudePair.apply(x, y, n_fft, hop, win, window, eps)
        loss = x.new_zeros(())
        if w_sc:
            sc = torch.linalg.vector_norm(y_mag - x_mag) / torch.linalg.vector_norm(y_mag)
            loss = loss + w_sc * sc
        if w_log_mag:
            loss = loss + w_log_mag * distance(torch.log(x_mag), torch.log(y_mag))
        if w_lin_mag:
            loss = loss + w_lin_mag * distance(x_mag, y_mag)
        if w_phs:
            loss = loss + w_phs * F.mse_loss(torch.angle(spec_x), torch.angle(spec_y))
        total = total + loss
    return total / len(resolutions)


def _make_windows(
    window: str, win_lengths: Sequence[int], device: torch.device | None = None
) -> list[torch.Tensor]:
    fn = getattr(torch, _window_name(window))
    return [fn(int(w), dtype=torch.float32, device=device) for w in win_lengths]


@float32
def multi_resolution_stft_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    fft_sizes: Sequence[int] = (1024, 2048, 512),
    hop_sizes: Sequence[int] = (120, 240, 50),
    win_lengths: Sequence[int] = (600, 1200, 240),
    window: str = "hann_window",
    w_sc: float = 1.0,
    w_log_mag: float = 1.0,
    w_lin_mag: float = 0.0,
    w_phs: float = 0.0,
    eps: float = 1e-8,
    mag_distance: str = "L1",
) -> torch.Tensor:
    """Multi-resolution STFT loss (Yamamoto et al. 2019), numerically as auraloss's defaults.

    Per resolution: ``w_sc * ||Y - X||_F / ||Y||_F + w_log_mag * mean|log X - log Y|
    (+ w_lin_mag * mean|X - Y| + w_phs * MSE of phases)`` with ``X = sqrt(clamp(|STFT|^2, eps))``
    (centred, reflect-padded STFT); the result is the mean over resolutions. Channels are folded
    into the batch and the Frobenius norms run over the whole batch, as auraloss does.

    Args:
        pred, target: ``(N, C, T)`` or ``(N, T)`` waveforms.

    Returns:
        A scalar tensor.
    """
    resolutions = _check_resolutions(fft_sizes, hop_sizes, win_lengths)
    _check_weights(w_sc, w_log_mag, w_lin_mag, w_phs, eps, mag_distance)
    windows = _make_windows(window, [r[2] for r in resolutions], pred.device)
    return _mrstft(pred, target, resolutions, windows, w_sc, w_log_mag, w_lin_mag, w_phs, eps, mag_distance)


def _check_weights(
    w_sc: float, w_log_mag: float, w_lin_mag: float, w_phs: float, eps: float, mag_distance: str
) -> None:
    weights = {"w_sc": w_sc, "w_log_mag": w_log_mag, "w_lin_mag": w_lin_mag, "w_phs": w_phs}
    for key, value in weights.items():
        if value < 0:
            raise ValueError(f"{key} must be >= 0, got {value}")
    if not any(weights.values()):
        raise ValueError("at least one of w_sc, w_log_mag, w_lin_mag, w_phs must be positive")
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    if mag_distance not in MAG_DISTANCES:
        raise ValueError(f"mag_distance must be one of {MAG_DISTANCES}, got {mag_distance!r}")


@register("mrstft", kind="spectral", modality="audio", input_range="[-1,1]", fp32=True)
class MultiResolutionSTFTLoss(nn.Module):
    """Multi-resolution STFT loss (spectral convergence + log-magnitude L1), as auraloss.

    Defaults and formulas are those of ``auraloss.freq.MultiResolutionSTFTLoss()``: FFT sizes
    (1024, 2048, 512), hops (120, 240, 50), windows (600, 1200, 240), Hann, ``eps=1e-8``. Input
    ``(N, C, T)`` or ``(N, T)``; output a scalar. Windows are non-persistent buffers. One STFT
    call per resolution serves ``pred`` and ``target``; the backward through STFT and magnitude
    is fused and skips the target (first-order gradients only unless ``w_phs > 0``).
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (1024, 2048, 512),
        hop_sizes: Sequence[int] = (120, 240, 50),
        win_lengths: Sequence[int] = (600, 1200, 240),
        window: str = "hann_window",
        w_sc: float = 1.0,
        w_log_mag: float = 1.0,
        w_lin_mag: float = 0.0,
        w_phs: float = 0.0,
        eps: float = 1e-8,
        mag_distance: str = "L1",
    ) -> None:
        super().__init__()
        self.resolutions = _check_resolutions(fft_sizes, hop_sizes, win_lengths)
        _check_weights(w_sc, w_log_mag, w_lin_mag, w_phs, eps, mag_distance)
        self.window = _window_name(window)
        self.w_sc, self.w_log_mag, self.w_lin_mag, self.w_phs = (
            float(w_sc),
            float(w_log_mag),
            float(w_lin_mag),
            float(w_phs),
        )
        self.eps = float(eps)
        self.mag_distance = mag_distance
        for i, w in enumerate(_make_windows(window, [r[2] for r in self.resolutions])):
            self.register_buffer(f"window_{i}", w, persistent=False)

    @property
    def windows(self) -> list[torch.Tensor]:
        return [getattr(self, f"window_{i}") for i in range(len(self.resolutions))]

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return float32_call(
            _mrstft,
            pred,
            target,
            self.resolutions,
            self.windows,
            self.w_sc,
            self.w_log_mag,
            self.w_lin_mag,
            self.w_phs,
            self.eps,
            self.mag_distance,
        )

    def extra_repr(self) -> str:
        return f"resolutions={self.resolutions}, window={self.window!r}"


def _non_persistent(module: nn.Module) -> nn.Module:
    """Make every buffer of ``module`` (recursively) non-persistent: a loss has no state to save."""
    for sub in module.modules():
        for name, buf in list(sub.named_buffers(recurse=False)):
            delattr(sub, name)
            sub.register_buffer(name, buf, persistent=False)
    return module


def _mel_transform(
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    win_length: int | None,
    n_mels: int,
    f_min: float,
    f_max: float | None,
    power: float,
    center: bool = True,
    normalized: bool = False,
    quiet: bool = False,
) -> nn.Module:
    import torchaudio

    if sample_rate <= 0 or n_fft <= 0 or hop_length <= 0 or n_mels <= 0:
        raise ValueError(
            "sample_rate, n_fft, hop_length and n_mels must be positive, got "
            f"{sample_rate}, {n_fft}, {hop_length}, {n_mels}"
        )
    if win_length is not None and not 0 < win_length <= n_fft:
        raise ValueError(f"win_length must be in (0, n_fft={n_fft}], got {win_length}")
    nyquist = sample_rate / 2
    if f_min < 0 or f_min >= (nyquist if f_max is None else f_max):
        raise ValueError(f"f_min must be >= 0 and below f_max (or Nyquist), got f_min={f_min}, f_max={f_max}")
    if f_max is not None and f_max > nyquist:
        raise ValueError(f"f_max={f_max} is above the Nyquist frequency {nyquist}")
    if power <= 0:
        raise ValueError(f"power must be positive, got {power}")
    with warnings.catch_warnings():
        if quiet:  # empty mel filters at small FFT sizes are part of the reference recipe
            warnings.filterwarnings("ignore", message="At least one mel filterbank has all zero values")
        mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            win_length=win_length,
            hop_length=hop_length,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            power=power,
            center=center,
            normalized=normalized,
            window_fn=torch.hann_window,
        )
    return _non_persistent(mel)


def _log_mel_l1(pred: torch.Tensor, target: torch.Tensor, mel: nn.Module, eps: float) -> torch.Tensor:
    x, y = _as_signals(pred, target)
    if x.shape[-1] <= mel.n_fft // 2:
        raise ValueError(f"signals of {x.shape[-1]} samples are too short for n_fft={mel.n_fft}")
    # Two calls rather than one on the concatenation: autograd then skips the target's branch.
    return F.l1_loss(torch.log(torch.clamp(mel(x), min=eps)), torch.log(torch.clamp(mel(y), min=eps)))


@register("mel", kind="spectral", modality="audio", input_range="[-1,1]", fp32=True)
class MelLoss(nn.Module):
    """L1 distance between log-mel spectrograms (HiFi-GAN style), via torchaudio.

    ``mean |log(max(M(pred), eps)) - log(max(M(target), eps))|`` with ``M`` a
    ``torchaudio.transforms.MelSpectrogram`` (magnitude, ``power=1``, centred Hann STFT).
    Input ``(N, C, T)`` or ``(N, T)``; output a scalar.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 256,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float | None = None,
        eps: float = 1e-5,
        power: float = 1.0,
    ) -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.eps = float(eps)
        self.mel = _mel_transform(sample_rate, n_fft, hop_length, None, n_mels, f_min, f_max, power)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return float32_call(_log_mel_l1, pred, target, self.mel, self.eps)


def mel_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    sample_rate: int = 16000,
    n_fft: int = 1024,
    hop_length: int = 256,
    n_mels: int = 80,
    f_min: float = 0.0,
    f_max: float | None = None,
    eps: float = 1e-5,
    power: float = 1.0,
) -> torch.Tensor:
    """L1 between log-mel spectrograms of ``(N, C, T)`` / ``(N, T)`` waveforms; a scalar.

    Builds the mel filterbank on each call: keep a :class:`MelLoss` in a training loop.
    """
    module = MelLoss(sample_rate, n_fft, hop_length, n_mels, f_min, f_max, eps, power).to(pred.device)
    return module(pred, target)


def _pad_for_frames(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Zero-pad the end so that the last frame is full (audiocraft's ``pad_for_conv1d``)."""
    length = x.shape[-1]
    n_frames = (length - n_fft) / hop + 1
    ideal_length = (math.ceil(n_frames) - 1) * hop + n_fft
    return F.pad(x, (0, ideal_length - length))


def _multiscale_mel(
    pred: torch.Tensor,
    target: torch.Tensor,
    mels: Sequence[nn.Module],
    alphas: Sequence[float],
    floor_level: float,
    total: float | None,
) -> torch.Tensor:
    x, y = _as_signals(pred, target)
    x, y = x.unsqueeze(1), y.unsqueeze(1)  # (B, 1, T): F.pad's reflect mode wants a channel dim
    loss = x.new_zeros(())
    for mel, alpha in zip(mels, alphas, strict=True):
        n_fft, hop = mel.n_fft, mel.hop_length
        p = (n_fft - hop) // 2
        if x.shape[-1] <= p:
            raise ValueError(f"signals of {x.shape[-1]} samples are too short for n_fft={n_fft}")
        # One mel per signal and scale serves both terms (audiocraft computes it twice).
        x_mel = mel(_pad_for_frames(F.pad(x, (p, p), "reflect"), n_fft, hop))
        y_mel = mel(_pad_for_frames(F.pad(y, (p, p), "reflect"), n_fft, hop))
        loss = loss + F.l1_loss(x_mel, y_mel)
        loss = loss + alpha * F.mse_loss(torch.log10(floor_level + x_mel), torch.log10(floor_level + y_mel))
    if total is not None:
        loss = loss / total
    return loss


@register("multiscale_mel", kind="spectral", modality="audio", input_range="[-1,1]", fp32=True)
class MultiScaleMelLoss(nn.Module):
    """EnCodec's multi-scale mel loss: L1 of mel + alpha-weighted MSE of log10 mel, summed over scales.

    As audiocraft's ``MultiScaleMelSpectrogramLoss``: scales ``i`` in ``range(range_start, range_end)``
    use ``n_fft = win = 2**i``, ``hop = 2**i // 4``; the waveform is reflect-padded by
    ``(n_fft - hop) // 2`` each side, zero-padded to full frames, and a non-centred
    ``torchaudio`` MelSpectrogram (``power=2`` as audiocraft, which leaves it at torchaudio's
    default) is taken. Per scale: ``L1(M(pred), M(target)) + alpha_i * MSE(log10(floor + M))``
    with ``alpha_i = sqrt(2**i - 1)`` (``alphas=True``) or 1; ``normalized=True`` normalises the
    STFT and divides the sum by ``sum(alpha_i + 1)``. ``sample_rate`` defaults to 16000 here
    (EnCodec uses 24000: pass it). Input ``(N, C, T)`` / ``(N, T)``; a scalar.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        range_start: int = 6,
        range_end: int = 11,
        n_mels: int = 64,
        f_min: float = 0.0,
        f_max: float | None = None,
        normalized: bool = False,
        alphas: bool = True,
        floor_level: float = 1e-5,
        power: float = 2.0,
    ) -> None:
        super().__init__()
        if not 2 <= range_start < range_end:
            raise ValueError(f"need 2 <= range_start < range_end, got {range_start}, {range_end}")
        if floor_level <= 0:
            raise ValueError(f"floor_level must be positive, got {floor_level}")
        self.mels = nn.ModuleList(
            _mel_transform(
                sample_rate,
                2**i,
                2**i // 4,
                2**i,
                n_mels,
                f_min,
                f_max,
                power,
                center=False,
                normalized=normalized,
                quiet=True,
            )
            for i in range(range_start, range_end)
        )
        self.alphas = [math.sqrt(2**i - 1) if alphas else 1.0 for i in range(range_start, range_end)]
        self.total = sum(a + 1 for a in self.alphas) if normalized else None
        self.floor_level = float(floor_level)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return float32_call(
            _multiscale_mel, pred, target, list(self.mels), self.alphas, self.floor_level, self.total
        )


def multiscale_mel_loss(
    pred: torch.Tensor, target: torch.Tensor, sample_rate: int = 16000, **kwargs: Any
) -> torch.Tensor:
    """EnCodec multi-scale mel loss of ``(N, C, T)`` / ``(N, T)`` waveforms; a scalar.

    Keyword arguments are those of :class:`MultiScaleMelLoss`; keep a module in a training loop.
    """
    return MultiScaleMelLoss(sample_rate=sample_rate, **kwargs).to(pred.device)(pred, target)
