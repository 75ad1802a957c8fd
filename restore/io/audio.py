"""Read and write audio files as float32 tensors ``(C, T)`` in [-1, 1]; the sample rate travels beside.

    audio, rate = read_audio("speech.wav")                            # (C, T) float32, int
    audio, rate = read_audio("song.flac", sample_rate=16000, mono=True)  # (1, T') resampled, mixed down
    info = audio_info("speech.wav")                                   # header only: rate, channels, frames
    write_audio("out.flac", audio, rate)                              # PCM_16; atomic (temp file + rename)
    y = resample(audio, 44100, 16000)                                 # torchaudio's windowed sinc

Files go through ``soundfile`` (libsndfile), never torchaudio's I/O (moved to torchcodec in
torchaudio >= 2.9); resampling is ``torchaudio.functional.resample``. Both are imported inside the
functions, so ``import restore.io`` stays cheap.

Integer PCM is scaled exactly as libsndfile's float read does (``int / 2**(bits - 1)``, so 16-bit
samples lie on the grid ``k / 32768`` in [-1, 1)). Writing does the inverse itself (clip to [-1, 1],
``round(x * 2**(bits - 1))``, saturate), so a value on the grid is written bit-exactly whatever the
libsndfile version.

A truncated WAV (its header declares more sample data than the file holds) is an error here:
libsndfile alone reads such a file without complaint and returns only the frames present.
"""

from __future__ import annotations

import math
import os
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "AUDIO_SUFFIXES",
    "AudioInfo",
    "AudioReadError",
    "KAISER_BEST",
    "audio_info",
    "audio_suffixes",
    "list_audio",
    "read_audio",
    "resample",
    "write_audio",
]

# Always decodable; ``.mp3`` is added by :func:`audio_suffixes` when the installed libsndfile decodes
# MP3 (deciding that imports soundfile, which ``import restore.io`` must not do).
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".ogg")
_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}
_DEFAULT_SUBTYPES = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}
_INTEGER_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}
_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
_MAX_CHANNELS = 64  # more than this is almost surely a (T, C) array passed as (C, T)
_suffixes_cache: tuple[str, ...] | None = None

# torchaudio's equivalent of librosa's "kaiser_best" resampling (torchaudio's resampling tutorial):
# pass band flat to 0.01 dB, stop band > 100 dB down.
KAISER_BEST: dict[str, Any] = {
    "lowpass_filter_width": 64,
    "rolloff": 0.9475937167399596,
    "resampling_method": "sinc_interp_kaiser",
    "beta": 14.769656459379492,
}


def audio_suffixes() -> tuple[str, ...]:
    """Suffixes :func:`list_audio` finds: :data:`AUDIO_SUFFIXES` (``.wav .flac .ogg``), plus ``.mp3``
    when this libsndfile decodes MP3 (``soundfile.available_formats()`` has it; libsndfile >= 1.1).

    Imports soundfile on the first call (cached).
    """
    global _suffixes_cache
    if _suffixes_cache is None:
        import soundfile

        mp3 = "MP3" in soundfile.available_formats()
        _suffixes_cache = AUDIO_SUFFIXES + ((".mp3",) if mp3 else ())
    return _suffixes_cache


class AudioReadError(OSError):
    """An audio file could not be read; the message names the file and the problem.

    A subclass of ``OSError`` (like :class:`restore.io.ImageReadError`), so ``except OSError`` catches
    it. Attributes: ``path`` (str) and ``reason`` (str).
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read audio '{self.path}': {reason}")

    def __reduce__(self):  # keep picklable (DataLoader workers, multiprocessing)
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file's header says: sample rate, channels, frames, libsndfile subtype and format."""

    sample_rate: int
    channels: int
    frames: int
    subtype: str  # e.g. "PCM_16", "FLOAT", "VORBIS"
    format: str  # e.g. "WAV", "FLAC", "OGG"

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


# ----------------------------------------------------------------------------- listing


def list_audio(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Audio files (suffix in :func:`audio_suffixes`, any case) in ``folder``, sorted by relative path.

    Hidden files (names starting with ``.``) are skipped; ``recursive=True`` searches sub-folders.
    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"audio folder not found: '{root}'")
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: '{root}'")
    suffixes = audio_suffixes()
    candidates = root.rglob("*") if recursive else root.iterdir()
    files = [
        p
        for p in candidates
        if p.suffix.lower() in suffixes
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.is_file()
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


# ----------------------------------------------------------------------------- reading


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioReadError(path, "file not found")
    if path.is_dir():
        raise AudioReadError(path, "is a folder, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioReadError(path, "permission denied")


def _libsndfile_reason(path: Path, error: Exception) -> str:
    """A libsndfile error as a reason: unknown format, unsupported format, or corrupt data."""
    message = str(getattr(error, "error_string", "") or error).strip()
    lower = message.lower()
    if path.suffix.lower() == ".mp3" and ".mp3" not in audio_suffixes():
        return "unsupported format: this libsndfile cannot decode MP3 (libsndfile >= 1.1 can)"
    if "not recognised" in lower or "not recognized" in lower:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        return "not a recognised audio file (unknown format)"
    if "unsupported" in lower or "not supported" in lower:
        return f"unsupported format ({message})"
    return f"corrupt or truncated audio data ({message})"


def _wav_truncation(path: Path) -> tuple[int, int] | None:
    """(declared frames, frames present) when a RIFF/WAVE file's ``data`` chunk runs past the end.

    None when the file is complete, is not a plain RIFF WAV, or declares an unknown size (0 or
    0xFFFFFFFF, as streaming writers leave it).
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = 0
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"fmt " and chunk_size >= 14:
                block_align = struct.unpack("<H", f.read(14)[12:14])[0]
            elif chunk_id == b"data":
                available = size - offset - 8
                if chunk_size in (0, 0xFFFFFFFF) or chunk_size <= available or block_align == 0:
                    return None
                return chunk_size // block_align, available // block_align
            offset += 8 + chunk_size + (chunk_size & 1)
    return None


def _open_info(path: Path) -> AudioInfo:
    """Header of ``path`` with the checks :func:`audio_info` documents."""
    import soundfile

    _check_file(path)
    try:
        info = soundfile.info(str(path))
    except soundfile.LibsndfileError as error:
        raise AudioReadError(path, _libsndfile_reason(path, error)) from None
    except RuntimeError as error:  # older soundfile raises a plain RuntimeError
        raise AudioReadError(path, _libsndfile_reason(path, error)) from None
    truncated = _wav_truncation(path) if info.format in ("WAV", "WAVEX") else None
    if truncated is not None:
        declared, present = truncated
        raise AudioReadError(
            path, f"truncated file: the header declares {declared} frames but only {present} are present"
        )
    if info.frames <= 0:
        raise AudioReadError(path, "zero frames (an empty or truncated file)")
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioReadError(path, f"invalid header: {info.samplerate} Hz, {info.channels} channels")
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames), info.subtype, info.format)


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """The header of an audio file as an :class:`AudioInfo` (reads no sample data).

    Raises:
        AudioReadError: file not found, a folder, not a recognised audio file, corrupt header,
            truncated WAV, zero frames, unsupported format.
    """
    return _open_info(Path(path))


def read_audio(
    path: str | os.PathLike, sample_rate: int | None = None, mono: bool = False
) -> tuple[torch.Tensor, int]:
    """Read an audio file as ``(float32 (C, T), sample_rate)``.

    Args:
        path: the file (any format libsndfile reads: WAV, FLAC, OGG Vorbis/Opus, MP3, AIFF, ...).
        sample_rate: resample to this rate (:func:`resample`); None keeps the file's rate.
        mono: average the channels into one, ``(1, T)``.

    Integer PCM is divided by ``2**(bits - 1)`` (libsndfile's float read); float files are returned
    as stored (values may exceed 1).

    Raises:
        AudioReadError: file not found, a folder, not a recognised audio file, corrupt or truncated
            data, zero frames, unsupported format.
    """
    import soundfile

    path = Path(path)
    if sample_rate is not None:
        sample_rate = _check_rate(sample_rate, "sample_rate")
    info = _open_info(path)
    try:
        with soundfile.SoundFile(str(path)) as f:
            data = f.read(dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise AudioReadError(path, _libsndfile_reason(path, error)) from None
    if data.shape[0] == 0:
        raise AudioReadError(path, "zero frames (an empty or truncated file)")
    if data.shape[0] < info.frames:
        raise AudioReadError(
            path, f"truncated or corrupt data: the header declares {info.frames} frames, "
            f"only {data.shape[0]} could be decoded"
        )
    audio = torch.from_numpy(np.ascontiguousarray(data.T))
    if mono and audio.shape[0] > 1:
        audio = audio.mean(dim=0, keepdim=True)
    rate = info.sample_rate
    if sample_rate is not None and sample_rate != rate:
        audio = resample(audio, rate, sample_rate)
        rate = sample_rate
    return audio.contiguous(), rate


# ----------------------------------------------------------------------------- resampling


def _check_rate(rate: Any, name: str) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a positive integer number of Hz, got {rate!r}")
    if not math.isfinite(float(rate)) or float(rate) != int(rate) or int(rate) <= 0:
        raise ValueError(f"{name} must be a positive integer number of Hz, got {rate!r}")
    return int(rate)


def resample(
    audio: torch.Tensor,
    orig_rate: int,
    new_rate: int,
    *,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
    resampling_method: str = "sinc_interp_hann",
    beta: float | None = None,
) -> torch.Tensor:
    """Resample ``audio (..., T)`` from ``orig_rate`` to ``new_rate`` Hz: float32 ``(..., T')``.

    ``torchaudio.functional.resample`` (windowed sinc; the keyword arguments are its own, with its
    defaults) in float32 with autocast off, on the tensor's device; ``T' = ceil(T * new_rate /
    orig_rate)``. Equal rates return the input (as float32). The defaults leave images about 25 dB
    down just above the lower Nyquist frequency; :data:`KAISER_BEST` (librosa's ``kaiser_best``) gives
    a sharp band edge at a few times the cost: ``resample(x, 48000, 16000, **KAISER_BEST)``.
    """
    orig_rate = _check_rate(orig_rate, "orig_rate")
    new_rate = _check_rate(new_rate, "new_rate")
    if not isinstance(audio, torch.Tensor):
        raise TypeError(f"audio must be a torch.Tensor, got {type(audio).__name__}")
    if audio.ndim == 0:
        raise ValueError("audio must have a time axis (..., T), got a scalar")
    if orig_rate == new_rate:
        return audio.float()
    import torchaudio.functional

    with torch.autocast(device_type=audio.device.type, enabled=False):
        return torchaudio.functional.resample(
            audio.float(),
            orig_rate,
            new_rate,
            lowpass_filter_width=lowpass_filter_width,
            rolloff=rolloff,
            resampling_method=resampling_method,
            beta=beta,
        )


# ----------------------------------------------------------------------------- writing


def _format_for(path: Path, fmt: str | None) -> str:
    import soundfile

    if fmt is None:
        fmt = _FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(
                f"cannot tell the audio format from the suffix of '{path}'; use one of "
                f"{sorted(_FORMATS)} or pass format= (e.g. format='WAV')"
            )
    fmt = str(fmt).upper()
    if fmt not in soundfile.available_formats():
        available = sorted(soundfile.available_formats())
        raise ValueError(f"unknown or unavailable audio format {fmt!r}; available: {available}")
    return fmt


def _to_array(audio: torch.Tensor | np.ndarray) -> np.ndarray:
    """(C, T) / (T,) / (1, C, T) tensor or array -> float64 (C, T), validated."""
    if isinstance(audio, torch.Tensor):
        if not audio.is_floating_point():
            raise ValueError(f"audio must be floating-point in [-1, 1], got dtype {audio.dtype}")
        array = audio.detach().to("cpu", torch.float64).numpy()
    elif isinstance(audio, np.ndarray):
        if not np.issubdtype(audio.dtype, np.floating):
            raise ValueError(f"audio must be floating-point in [-1, 1], got dtype {audio.dtype}")
        array = audio.astype(np.float64)
    else:
        raise TypeError(f"audio must be a torch.Tensor or numpy array, got {type(audio).__name__}")
    if array.ndim == 1:
        array = array[None]
    elif array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"audio must be (C, T), (T,) or (1, C, T), got shape {tuple(audio.shape)}")
    channels, frames = array.shape
    if channels == 0 or frames == 0:
        raise ValueError(f"audio has no samples: shape {tuple(audio.shape)}")
    if channels > _MAX_CHANNELS:
        raise ValueError(
            f"audio has {channels} channels (shape {tuple(audio.shape)}); it must be (C, T) -- "
            "transpose a (T, C) array"
        )
    if not np.isfinite(array).all():
        raise ValueError("audio contains NaN or infinite values; refusing to write")
    return array


def write_audio(
    path: str | os.PathLike,
    audio: torch.Tensor | np.ndarray,
    sample_rate: int,
    subtype: str | None = None,
    format: str | None = None,
) -> Path:
    """Write ``audio`` ``(C, T)`` (or ``(T,)``: one channel) at ``sample_rate`` Hz; returns the path.

    Args:
        path: the file; parent folders are created. The write is atomic: a temporary file in the same
            folder is renamed over ``path``.
        audio: float tensor or numpy array in [-1, 1].
        sample_rate: positive integer Hz.
        subtype: libsndfile subtype; default ``PCM_16`` for WAV and FLAC, ``VORBIS`` for OGG,
            ``MPEG_LAYER_III`` for MP3. ``PCM_24``, ``PCM_32``, ``FLOAT``, ... as the format allows.
        format: ``"WAV"``, ``"FLAC"``, ``"OGG"``, ``"MP3"``, ...; default from the suffix (``.wav``,
            ``.flac``, ``.ogg``, ``.mp3``). Pass it to write a name without such a suffix
            (``x.wav.partial-tmp``).

    Values are clipped to [-1, 1] for every subtype except ``FLOAT``/``DOUBLE``; integer PCM is
    ``round(x * 2**(bits - 1))`` saturated to the integer range.

    Raises:
        ValueError: bad shape, non-finite values, bad sample rate, unknown format or subtype.
    """
    import soundfile

    path = Path(path)
    sample_rate = _check_rate(sample_rate, "sample_rate")
    fmt = _format_for(path, format)
    subtype = (subtype or _DEFAULT_SUBTYPES.get(fmt) or soundfile.default_subtype(fmt)).upper()
    if not soundfile.check_format(fmt, subtype):
        valid = sorted(soundfile.available_subtypes(fmt))
        raise ValueError(f"subtype {subtype!r} is not valid for format {fmt!r}; valid: {valid}")
    array = _to_array(audio)
    if subtype in _FLOAT_SUBTYPES:
        data = array.T.astype(np.float64 if subtype == "DOUBLE" else np.float32)
    elif subtype in _INTEGER_BITS:
        bits = _INTEGER_BITS[subtype]
        full = 2 ** (bits - 1)
        levels = np.clip(np.round(np.clip(array, -1.0, 1.0) * full), -full, full - 1).astype(np.int64)
        data = (levels << (32 - bits)).astype(np.int32).T  # libsndfile keeps the top ``bits`` bits of int32
    else:  # lossy or companded codecs take floats
        data = np.clip(array, -1.0, 1.0).T.astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        soundfile.write(str(temp), np.ascontiguousarray(data), sample_rate, subtype=subtype, format=fmt)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path
