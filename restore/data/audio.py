"""Audio datasets: clean speech segments with noise clips (mixed later on the device), paired folders.

    from restore.data import SpeechNoiseDataset, PairedAudioFolder
    train = SpeechNoiseDataset("speech/", noise="noise/", segment_seconds=2.0)   # or no arguments
    item = train[0]     # {"target": (1, T), "noise": (1, T), "seed": int, "name": str}
    val = PairedAudioFolder("VoiceBank_DEMAND_debug")   # clean/*.wav + noisy/*.wav

:class:`SpeechNoiseDataset` only cuts segments; the mixing (SNR, reverb, EQ, clipping) is done batched
on the training device by :class:`restore.degrade.audio.AudioDenoiseDegradation`, seeded by the item's
``"seed"``. Every random choice for item ``index`` comes from a generator seeded by ``(seed, epoch,
index)`` as in :class:`restore.data.CleanImageFolder`, so items do not depend on the number of
DataLoader workers.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..io.audio import AudioReadError, audio_info, audio_suffixes, list_audio, read_audio
from .folder import _Epoch, derive_seed

__all__ = ["PairedAudioFolder", "SpeechNoiseDataset"]

Source = str | os.PathLike | Sequence[str | os.PathLike] | None
_REDRAWS = 4  # extra crops tried when one is quieter than min_rms_db


def _files(source: str | os.PathLike | Sequence[str | os.PathLike], recursive: bool, role: str) -> list[Path]:
    """Audio files of a folder, a file, or a list of folders and files (in the given order)."""
    items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not items:
        raise ValueError(f"{role} must be a folder, a file, a list of them, or None; got an empty list")
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files.extend(list_audio(path, recursive=recursive))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{role} folder or file not found: '{path}'")
    if not files:
        where = ", ".join(f"'{p}'" for p in items)
        raise ValueError(f"no {role} audio files found in {where} (suffixes {', '.join(audio_suffixes())})")
    return files


@functools.lru_cache(maxsize=4)
def _builtin_clips(role: str, seconds: float, sample_rate: int) -> tuple[Tensor, ...]:
    """The built-in synthetic clips (8 speakers or 4 noises), made once per process and shared read-only."""
    from .sample_audio import sample_noise_clips, sample_speech_clips

    if role == "speech":
        return tuple(sample_speech_clips(8, seconds, sample_rate))
    return tuple(sample_noise_clips(4, seconds, sample_rate))


def _rms_db(x: Tensor) -> float:
    return 20.0 * math.log10(float(x.double().square().mean().sqrt()) + 1e-12)


class SpeechNoiseDataset(Dataset):
    """Random clean speech segments and noise segments, reproducible per (seed, epoch, index).

    Items: ``{"target": (1, T) float32, "noise": (1, T) float32, "seed": int, "name": str}`` with
    ``T = round(segment_seconds * sample_rate)``. The speech segment is a random crop of speech file
    ``index % len(files)`` (mono, resampled to ``sample_rate``); a clip shorter than T is zero-padded at
    a random offset; a crop quieter than ``min_rms_db`` dBFS is re-drawn up to 4 times (the loudest
    try is kept). The noise is a random crop of a random noise clip, looped when shorter than T.
    ``"seed"`` seeds the degradation on the device (independent of the crops' random stream).

    Args:
        speech: a folder, a file, or a list of folders/files of clean speech; None uses the built-in
            synthetic speech (:func:`restore.data.sample_audio.sample_speech_clips`, 8 speakers).
        noise: the same for noise recordings; None uses the built-in synthetic noises
            (:func:`restore.data.sample_audio.sample_noise_clips`).
        sample_rate: rate of the items, Hz (files are resampled).
        segment_seconds: item length in seconds.
        seed: base seed.
        repeat: the speech file list is repeated this many times per epoch.
        cache: keep decoded clips in memory (per worker process: use ``persistent_workers=True``).
            No file handle stays open either way.
        on_error: ``"skip"``: an unreadable file is excluded with a warning naming it (at
            construction for a bad header, else when first read, replaced by the next file);
            ``"raise"``: :class:`restore.io.AudioReadError`.
        recursive: search sub-folders.
        min_rms_db: speech crops quieter than this (dBFS) are re-drawn.

    ``len = len(speech files) * repeat``. Call :meth:`set_epoch` before iterating a new epoch.
    """

    def __init__(
        self,
        speech: Source = None,
        noise: Source = None,
        sample_rate: int = 16000,
        segment_seconds: float = 2.0,
        seed: int = 0,
        repeat: int = 1,
        cache: bool = True,
        on_error: str = "skip",
        recursive: bool = True,
        min_rms_db: float = -50.0,
    ) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive int (Hz), got {sample_rate!r}")
        if not segment_seconds > 0:
            raise ValueError(f"segment_seconds must be positive, got {segment_seconds!r}")
        if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
            raise ValueError(f"repeat must be a positive int, got {repeat!r}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.sample_rate = sample_rate
        self.segment = max(1, round(segment_seconds * sample_rate))
        self.seed = int(seed)
        self.repeat = repeat
        self.cache = cache
        self.on_error = on_error
        self.min_rms_db = float(min_rms_db)
        self._epoch = _Epoch()
        self._clips: dict[tuple[str, int], Tensor] = {}
        self._bad: dict[tuple[str, int], str] = {}
        self.speech_files = self._usable(_files(speech, recursive, "speech")) if speech is not None else []
        self.noise_files = self._usable(_files(noise, recursive, "noise")) if noise is not None else []
        if speech is None:
            for i, clip in enumerate(_builtin_clips("speech", max(3.0, 1.5 * segment_seconds), sample_rate)):
                self._clips[("speech", i)] = clip
        if noise is None:
            for i, clip in enumerate(_builtin_clips("noise", max(6.0, 2.0 * segment_seconds), sample_rate)):
                self._clips[("noise", i)] = clip
        self._counts = {
            "speech": len(self.speech_files) if speech is not None else 8,
            "noise": len(self.noise_files) if noise is not None else 4,
        }
        if speech is None:
            self.speech_names = [f"synthetic_speech_{i}" for i in range(8)]
        else:
            self.speech_names = [p.stem for p in self.speech_files]

    def _usable(self, files: list[Path]) -> list[Path]:
        """Files whose header reads; bad ones raise or are warned about and dropped (on_error)."""
        good = []
        for path in files:
            try:
                audio_info(path)
            except AudioReadError as error:
                if self.on_error == "raise":
                    raise
                warnings.warn(f"skipping '{path}': {error.reason}", RuntimeWarning, stacklevel=3)
                continue
            good.append(path)
        if not good:
            raise ValueError(f"no readable audio files left among {len(files)} (first: '{files[0]}')")
        return good

    def __len__(self) -> int:
        return self._counts["speech"] * self.repeat

    @property
    def epoch(self) -> int:
        return self._epoch.get()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops items use (call before ``iter(loader)``)."""
        self._epoch.set(epoch)

    def _read(self, role: str, index: int) -> Tensor:
        key = (role, index)
        clip = self._clips.get(key)
        if clip is None:
            path = (self.speech_files if role == "speech" else self.noise_files)[index]
            clip, _ = read_audio(path, sample_rate=self.sample_rate, mono=True)
            if self.cache:
                self._clips[key] = clip
        return clip

    def _load(self, role: str, index: int) -> tuple[int, Tensor]:
        """(index, clip) of clip ``index`` of ``role``, or of the next readable one (on_error='skip')."""
        count = self._counts[role]
        for offset in range(count):
            i = (index + offset) % count
            if (role, i) in self._bad:
                continue
            try:
                return i, self._read(role, i)
            except AudioReadError as error:
                if self.on_error == "raise":
                    raise
                self._bad[(role, i)] = error.reason
                warnings.warn(f"skipping '{error.path}': {error.reason}", RuntimeWarning, stacklevel=3)
        raise RuntimeError(f"no readable {role} file left among {count}")

    def _speech_crop(self, clip: Tensor, generator: torch.Generator) -> Tensor:
        t, length = self.segment, clip.shape[-1]
        if length <= t:
            offset = int(torch.randint(t - length + 1, (1,), generator=generator))
            return torch.nn.functional.pad(clip, (offset, t - length - offset))
        best, best_db = None, -math.inf
        for _ in range(1 + _REDRAWS):
            start = int(torch.randint(length - t + 1, (1,), generator=generator))
            crop = clip[:, start : start + t]
            level = _rms_db(crop)
            if level > best_db:
                best, best_db = crop, level
            if level >= self.min_rms_db:
                break
        return best

    def _noise_crop(self, clip: Tensor, generator: torch.Generator) -> Tensor:
        t, length = self.segment, clip.shape[-1]
        start = int(torch.randint(length - t + 1 if length >= t else length, (1,), generator=generator))
        if length >= t:
            return clip[:, start : start + t]
        return clip[:, (start + torch.arange(t)) % length]  # looped from a random offset

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        item_seed = derive_seed(self.seed, self.epoch, index)
        generator = torch.Generator().manual_seed(item_seed)
        speech_index, speech = self._load("speech", index % self._counts["speech"])
        target = self._speech_crop(speech, generator)
        noise_pick = int(torch.randint(self._counts["noise"], (1,), generator=generator))
        _, noise_clip = self._load("noise", noise_pick)
        noise = self._noise_crop(noise_clip, generator)
        return {
            "target": target.float().clone(),
            "noise": noise.float().clone(),
            "seed": derive_seed(item_seed, "degradation"),
            "name": self.speech_names[speech_index],
        }

    def __repr__(self) -> str:
        return (
            f"SpeechNoiseDataset(speech={self._counts['speech']} clips, noise={self._counts['noise']} "
            f"clips, sample_rate={self.sample_rate}, segment={self.segment}, repeat={self.repeat}, "
            f"epoch={self.epoch})"
        )


class PairedAudioFolder(Dataset):
    """Pairs of noisy and clean recordings in two folders, matched by file name (the VoiceBank layout).

    ``root/clean/<name>.wav`` + ``root/noisy/<name>.wav``. Items: ``{"input": (C, T), "target": (C, T),
    "name": stem, "sample_rate": int}``, float32, whole files (use batch size 1). At construction
    every pair's headers are compared: a file without a partner (both paths named), a different
    length, channel count or sample rate is a ``ValueError`` naming the file.

    Args:
        root: the dataset folder.
        sample_rate: resample both to this rate; None keeps the files' rate.
        clean, noisy: sub-folder names (or absolute folders) of targets and inputs.
        cache: keep decoded pairs in memory.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        sample_rate: int | None = None,
        clean: str | os.PathLike = "clean",
        noisy: str | os.PathLike = "noisy",
        cache: bool = False,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder not found: '{self.root}'")
        if sample_rate is not None and (
            isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0
        ):
            raise ValueError(f"sample_rate must be a positive int (Hz) or None, got {sample_rate!r}")
        self.sample_rate = sample_rate
        self.clean_dir, self.noisy_dir = self.root / clean, self.root / noisy
        for role, folder in (("clean", self.clean_dir), ("noisy", self.noisy_dir)):
            if not folder.is_dir():
                raise FileNotFoundError(f"{role} folder not found: '{folder}'")
        targets, inputs = self._by_stem(self.clean_dir), self._by_stem(self.noisy_dir)
        for stem, path in inputs.items():
            if stem not in targets:
                raise ValueError(f"noisy file '{path}' has no clean partner '{self.clean_dir / path.name}'")
        for stem, path in targets.items():
            if stem not in inputs:
                raise ValueError(f"clean file '{path}' has no noisy partner '{self.noisy_dir / path.name}'")
        if not inputs:
            raise ValueError(f"no audio files found in '{self.noisy_dir}'")
        self.names = sorted(inputs)
        self.pairs = [(inputs[name], targets[name]) for name in self.names]
        self.rates = [self._check_pair(noisy_path, clean_path) for noisy_path, clean_path in self.pairs]
        self.cache = cache
        self._items: dict[int, tuple[Tensor, Tensor]] = {}

    @staticmethod
    def _by_stem(folder: Path) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for path in list_audio(folder, recursive=False):
            if path.stem in found:
                raise ValueError(
                    f"two files named '{path.stem}' in '{folder}': {found[path.stem].name}, {path.name}"
                )
            found[path.stem] = path
        return found

    @staticmethod
    def _check_pair(noisy_path: Path, clean_path: Path) -> int:
        noisy, clean = audio_info(noisy_path), audio_info(clean_path)
        for what, a, b in (
            ("sample rate", noisy.sample_rate, clean.sample_rate),
            ("length (frames)", noisy.frames, clean.frames),
            ("channel count", noisy.channels, clean.channels),
        ):
            if a != b:
                raise ValueError(
                    f"{what} mismatch: noisy '{noisy_path}' has {a}, clean '{clean_path}' has {b}"
                )
        return noisy.sample_rate

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        pair = self._items.get(index)
        if pair is None:
            noisy_path, clean_path = self.pairs[index]
            noisy, _ = read_audio(noisy_path, sample_rate=self.sample_rate)
            clean, _ = read_audio(clean_path, sample_rate=self.sample_rate)
            pair = (noisy, clean)
            if self.cache:
                self._items[index] = pair
        rate = self.sample_rate if self.sample_rate is not None else self.rates[index]
        return {"input": pair[0], "target": pair[1], "name": self.names[index], "sample_rate": rate}

    def __repr__(self) -> str:
        return (
            f"PairedAudioFolder('{self.root}', pairs={len(self)}, sample_rate={self.sample_rate}, "
            f"clean='{self.clean_dir}', noisy='{self.noisy_dir}')"
        )
