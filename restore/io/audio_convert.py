"""Conversion between what users pass to ``restore.enhance`` and the ``(C, T)`` float32 models take.

Accepted (and given back in the same kind, dtype and layout):

- a path (str or ``os.PathLike``) to a wav/flac/ogg file: read with soundfile, given back as a
  numpy float32 array in soundfile's layout, ``(T,)`` for mono and ``(T, C)`` otherwise;
- a numpy array in soundfile's layout, ``(T,)`` or ``(T, C)``: float (in [-1, 1]) or int16 / int32
  PCM (scaled by 2^15 / 2^31, and rounded and clipped on the way back);
- a torch tensor ``(T,)``, ``(C, T)`` or ``(N, C, T)`` (the torchaudio layout), float, on any device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["AudioSource", "from_audio_tensor", "to_audio_tensor"]

_INT_SCALE = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}


@dataclass
class AudioSource:
    """An input converted to ``audio (C, T)`` float32, with what is needed to give the result back."""

    audio: torch.Tensor
    sample_rate: int
    kind: str  # "path" | "numpy" | "tensor"
    shape: tuple[int, ...]
    dtype: Any
    device: torch.device | None = None
    path: Path | None = None
    subtype: str | None = None  # of a file input (the default subtype of a written output)


def _check_rate(sample_rate: Any) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int (Hz), got {sample_rate!r}")
    return int(sample_rate)


def _check_samples(audio: torch.Tensor, what: str) -> None:
    if audio.shape[-1] == 0 or audio.numel() == 0:
        raise ValueError(f"{what} is empty (shape {tuple(audio.shape)})")
    if not torch.isfinite(audio).all():
        raise ValueError(f"{what} contains NaN or infinite samples")


def to_audio_tensor(audio: Any, sample_rate: int | None = None) -> AudioSource:
    """``audio`` (see the module docstring) -> :class:`AudioSource` with ``(C, T)`` float32 on the CPU
    (tensors stay on their device). Arrays and tensors need ``sample_rate``; files carry their own."""
    from restore.io.audio import audio_info, read_audio

    if isinstance(audio, (str, os.PathLike)):
        path = Path(audio)
        info = audio_info(path)
        if sample_rate is not None and _check_rate(sample_rate) != info.sample_rate:
            raise ValueError(
                f"{path}: the file is {info.sample_rate} Hz, but sample_rate={sample_rate} was given "
                "(sample_rate is for arrays and tensors; files carry their own)"
            )
        data, rate = read_audio(path)
        _check_samples(data, f"audio file '{path}'")
        shape = (data.shape[1],) if data.shape[0] == 1 else (data.shape[1], data.shape[0])
        return AudioSource(data, rate, "path", shape, np.dtype(np.float32), path=path, subtype=info.subtype)
    if sample_rate is None:
        raise ValueError("sample_rate is required for arrays and tensors, e.g. enhance(audio, 16000)")
    rate = _check_rate(sample_rate)
    if isinstance(audio, np.ndarray):
        if audio.dtype in _INT_SCALE:
            data = torch.from_numpy(audio.astype(np.float32) / np.float32(_INT_SCALE[audio.dtype]))
        elif np.issubdtype(audio.dtype, np.floating):
            data = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        else:
            raise ValueError(f"audio array must be float, int16 or int32, got dtype {audio.dtype}")
        if data.dim() == 1:
            channels = data[None]
        elif data.dim() == 2:
            channels = data.T.contiguous()
        else:
            raise ValueError(
                "audio array must be (samples,) or (samples, channels) as soundfile reads it, "
                f"got {audio.shape}"
            )
        _check_samples(channels, "audio array")
        return AudioSource(channels, rate, "numpy", tuple(audio.shape), audio.dtype)
    if isinstance(audio, torch.Tensor):
        if not audio.is_floating_point():
            raise ValueError(f"audio tensor must be float in [-1, 1], got dtype {audio.dtype}")
        if audio.dim() not in (1, 2, 3):
            raise ValueError(f"audio tensor must be (T,), (C, T) or (N, C, T), got {tuple(audio.shape)}")
        channels = audio.detach().float().reshape(-1, audio.shape[-1])
        _check_samples(channels, "audio tensor")
        return AudioSource(channels, rate, "tensor", tuple(audio.shape), audio.dtype, device=audio.device)
    raise TypeError(
        "audio must be a file path, a numpy array (samples[, channels]) or a torch tensor ([N, C,] T), "
        f"got {type(audio).__name__}"
    )


def from_audio_tensor(out: torch.Tensor, source: AudioSource) -> Any:
    """``out (C, T')`` float32 back to the kind, dtype and layout of ``source`` (``T'`` may differ)."""
    length = out.shape[-1]
    if source.kind == "tensor":
        return out.to(device=source.device, dtype=source.dtype).reshape(*source.shape[:-1], length)
    data = out.detach().cpu().numpy()
    data = data[0] if len(source.shape) == 1 else data.T
    if source.dtype in _INT_SCALE:
        scale = _INT_SCALE[source.dtype]
        info = np.iinfo(source.dtype)
        return np.clip(np.round(data.astype(np.float64) * scale), info.min, info.max).astype(source.dtype)
    return np.ascontiguousarray(data.astype(source.dtype, copy=False))
