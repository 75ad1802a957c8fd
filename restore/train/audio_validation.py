"""Validation of audio tasks: a fixed set of clips, SI-SDR / PESQ / STOI / LSD, and sample wav files.

The clips are level-normalised like training pairs (:func:`restore.train.tasks.normalise_level`), so
the model sees what it was trained on; the metrics are scale-invariant or level-independent
(SI-SDR, PESQ, STOI, LSD), and the sample files are written back at the original level.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .tasks import AudioTask, normalise_level

__all__ = ["AudioValidationPair", "build_audio_validation_set", "evaluate_audio", "write_audio_samples"]


@dataclass
class AudioValidationPair:
    """One validation clip: ``input`` and ``target`` ``(1, 1, T)`` divided by ``level``."""

    name: str
    input: Tensor
    target: Tensor
    level: float


def _pair(name: str, noisy: Tensor, clean: Tensor) -> AudioValidationPair:
    level = normalise_level(noisy)
    return AudioValidationPair(name, noisy / level, clean / level, float(level))


def build_audio_validation_set(config: Any, task: AudioTask) -> list[AudioValidationPair]:
    """Clips for validation from ``config`` (a :class:`restore.train.config.ValidationConfig`).

    ``config.data``: None (the built-in synthetic speech, degraded with a fixed seed), a paired folder
    (``clean/`` + ``noisy/``, the VoiceBank layout; used as is) or a folder of clean speech (degraded
    here with a fixed seed per clip; synthetic noise). Clips are mono, at the task's sample rate, at
    most ``config.max_images`` of them and ``config.max_seconds`` long.
    """
    from restore.data.audio import PairedAudioFolder
    from restore.data.sample_audio import sample_speech_clips
    from restore.io.audio import list_audio, read_audio

    rate = task.sample_rate
    max_samples = int(config.max_seconds * rate)
    pairs: list[AudioValidationPair] = []
    if config.data is None:
        clips = [(f"sample{i}", clip) for i, clip in enumerate(sample_speech_clips(count=config.max_images))]
    else:
        root = Path(config.data)
        if not root.is_dir():
            raise FileNotFoundError(f"validation folder not found: '{root}'")
        if (root / "clean").is_dir() and (root / "noisy").is_dir():
            dataset = PairedAudioFolder(root, sample_rate=rate)
            for index in range(min(len(dataset), config.max_images)):
                item = dataset[index]
                noisy = item["input"].mean(0, keepdim=True)[None, :, :max_samples]
                clean = item["target"].mean(0, keepdim=True)[None, :, :max_samples]
                pairs.append(_pair(item["name"], noisy, clean))
            return pairs
        clips = []
        for path in list_audio(root, recursive=True)[: config.max_images]:
            audio, _ = read_audio(path, sample_rate=rate, mono=True)
            clips.append((path.stem, audio))
    for index, (name, clip) in enumerate(clips):
        clean = clip[None, :, :max_samples].float()
        pair = task.make_pair({"target": clean, "seed": torch.tensor([index])}, torch.device("cpu"))
        level = float(normalise_level(clean) / normalise_level(pair["target"]))  # the noisy input's level
        pairs.append(AudioValidationPair(name, pair["input"], pair["target"], level))
    return pairs


@torch.no_grad()
def evaluate_audio(
    model: nn.Module,
    pairs: list[AudioValidationPair],
    task: AudioTask,
    device: torch.device,
    *,
    autocast: Any = None,
) -> tuple[dict[str, float], list[Tensor]]:
    """Mean metrics over ``pairs`` and the predictions (CPU float32, level-normalised like the pairs).

    Always SI-SDR (dB) of the output and its gain over the input; for denoising PESQ-WB and STOI when
    the optional ``pesq``/``pystoi`` packages are installed; for bandwidth extension the log-spectral
    distance. A clip PESQ cannot score (no speech found) is left out of that mean.
    """
    from restore import metrics

    names = ("si_sdr", "pesq_wb", "stoi") if task.name == "audio_denoise" else ("si_sdr", "lsd")
    rows: list[dict[str, float]] = []
    predictions = []
    was_training = model.training
    model.eval()
    try:
        for pair in pairs:
            noisy = pair.input.to(device)
            if autocast is not None:
                with autocast():
                    pred = model(noisy)
            else:
                pred = model(noisy)
            pred = pred.float().cpu()
            predictions.append(pred)
            target = pair.target.float()
            row, _ = metrics.speech_scores(pred, target, task.sample_rate, names)
            row["si_sdr_gain"] = row["si_sdr"] - float(metrics.si_sdr(pair.input, target)[0])
            rows.append(row)
    finally:
        model.train(was_training)
    return metrics.mean_scores(rows), predictions


def write_audio_samples(
    folder: Path, pairs: list[AudioValidationPair], predictions: list[Tensor], count: int, sample_rate: int
) -> list[tuple[str, Tensor]]:
    """``<name>_{input,output,target}.wav`` for the first ``count`` clips, at their original level.

    Returns ``(tag, (1, T) waveform)`` for trackers.
    """
    from restore.io.audio import write_audio

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for pair, pred in list(zip(pairs, predictions, strict=False))[:count]:
        for kind, wave in (("input", pair.input), ("output", pred), ("target", pair.target)):
            clip = (wave[0] * pair.level).clamp(-1, 1)
            write_audio(folder / f"{pair.name}_{kind}.wav", clip, sample_rate)
            written.append((f"{pair.name}/{kind}", clip))
    return written
