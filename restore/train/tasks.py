"""Tasks: how a clean batch becomes a training pair, and how the generator is called on it.

A task turns ``target (N, 3, H, W)`` into a dict of named tensors on the training device, seeded by
the batch's per-item seeds so a pair is reproducible (and identical after a resume):

- ``sr``: ``input`` = degradation(target) at ``scale`` (bicubic, Real-ESRGAN, ...), pred = G(input);
- ``deblur``: ``input`` = blur (+ optional noise/JPEG) of target, pred = G(input);
- ``inpaint``: ``mask`` (N, 1, H, W), 1 = hole; ``input`` = target with holes filled with 0,
  pred = G(input, mask).

Audio tasks turn clean speech ``target (N, 1, T)`` (and a batch of noise clips) into a pair; both
sides are divided by the input's RMS level (per item), which is how inference runs the models too
(:func:`normalise_level`), so a model never has to learn the recording level:

- ``audio_denoise``: ``input`` = noise at a random SNR, reverb, gain, clipping (``audio_denoise``
  degradation), pred = G(input);
- ``audio_bandwidth``: ``input`` = the target band-limited (resampled down and back up), pred = G(input).

Datasets that already carry an ``"input"`` (paired folders) skip the degradation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "AUDIO_TASKS",
    "TASK_NAMES",
    "AudioTask",
    "Task",
    "batch_generator",
    "build_task",
    "normalise_level",
]

IMAGE_TASKS = ("sr", "deblur", "inpaint")
AUDIO_TASKS = ("audio_denoise", "audio_bandwidth")
TASK_NAMES = IMAGE_TASKS + AUDIO_TASKS
LEVEL_FLOOR = 1e-3  # RMS floor of the level normalisation (silence is not blown up)


def batch_generator(seeds: Tensor | list[int] | int, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded from a batch's per-item seeds (order-sensitive, stable)."""
    from restore.data.folder import derive_seed

    if isinstance(seeds, Tensor):
        seeds = seeds.flatten().tolist()
    elif isinstance(seeds, int):
        seeds = [seeds]
    return torch.Generator(device=device).manual_seed(derive_seed("batch", *seeds))


def _degradation_module(spec: Any, scale: int | None) -> nn.Module:
    from restore.degrade import build_degradation

    if isinstance(spec, str):
        name, kwargs = spec, {}
    elif isinstance(spec, dict) and "name" in spec:
        kwargs = dict(spec)
        name = kwargs.pop("name")
    else:
        raise ValueError(f"task.degradation must be a name or {{'name': ..., **arguments}}, got {spec!r}")
    if scale is not None and name in ("bicubic", "realesrgan") and "scale" not in kwargs:
        kwargs["scale"] = scale
    return build_degradation(name, **kwargs)


def normalise_level(audio: Tensor, floor: float = LEVEL_FLOOR) -> Tensor:
    """Per-item RMS level ``(N, 1, 1)`` of ``audio (N, C, T)``, floored: divide by it before a model,
    multiply after."""
    with torch.autocast(device_type=audio.device.type, enabled=False):
        return audio.float().square().mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(floor)


@dataclass
class Task:
    """A training task (see the module docstring). ``scale`` is 1 except for super-resolution."""

    name: str
    scale: int
    degradation: nn.Module | None
    mask: nn.Module | None
    modality: str = "image"

    def make_pair(self, batch: dict[str, Any], device: torch.device) -> dict[str, Tensor]:
        """``{"target", "input"[, "mask"]}`` on ``device`` for a dataset batch."""
        target = batch["target"].to(device, non_blocking=True)
        pair = {"target": target}
        generator = batch_generator(batch["seed"], device) if "seed" in batch else None
        if self.name == "inpaint":
            from restore.degrade import apply_mask

            mask = batch.get("mask")
            mask = mask.to(device) if mask is not None else self.mask(target, generator=generator)
            pair["mask"] = mask
            pair["input"] = apply_mask(target, mask)
            return pair
        if "input" in batch:
            pair["input"] = batch["input"].to(device, non_blocking=True)
        else:
            with torch.no_grad():
                pair["input"] = self.degradation(target, generator=generator).clamp_(0, 1)
        return pair

    def forward(self, model: nn.Module, pair: dict[str, Tensor]) -> Tensor:
        """The generator's prediction for a pair."""
        if self.name == "inpaint":
            return model(pair["input"], pair["mask"])
        return model(pair["input"])

    def condition(self, pair: dict[str, Tensor]) -> Tensor:
        """What a conditional discriminator sees beside the image: the input, resized to the target."""
        condition = pair["input"]
        if condition.shape[-2:] != pair["target"].shape[-2:]:
            condition = torch.nn.functional.interpolate(
                condition, size=pair["target"].shape[-2:], mode="bicubic"
            )
        return condition


@dataclass
class AudioTask:
    """An audio training task (``audio_denoise`` or ``audio_bandwidth``; see the module docstring)."""

    name: str
    degradation: nn.Module
    sample_rate: int
    scale: int = 1
    modality: str = "audio"

    def make_pair(self, batch: dict[str, Any], device: torch.device) -> dict[str, Tensor]:
        """``{"target", "input"}`` ``(N, 1, T)`` on ``device``, both divided by the input's level."""
        target = batch["target"].to(device, non_blocking=True)
        if "input" in batch:
            noisy = batch["input"].to(device, non_blocking=True)
        else:
            generator = batch_generator(batch["seed"], device) if "seed" in batch else None
            noise = batch.get("noise")
            noise = noise.to(device, non_blocking=True) if noise is not None else None
            with torch.no_grad():
                if self.name == "audio_denoise":
                    noisy = self.degradation(target, noise, sample_rate=self.sample_rate, generator=generator)
                else:
                    noisy = self.degradation(target, sample_rate=self.sample_rate, generator=generator)
        level = normalise_level(noisy)
        return {"input": noisy / level, "target": target / level}

    def forward(self, model: nn.Module, pair: dict[str, Tensor]) -> Tensor:
        """The generator's prediction for a pair."""
        return model(pair["input"])

    def condition(self, pair: dict[str, Tensor]) -> Tensor:
        """What a conditional discriminator sees beside the waveform: the degraded input."""
        return pair["input"]


def _audio_degradation(name: str, spec: Any) -> nn.Module:
    from restore.degrade.audio import AudioBandwidthDegradation, AudioDenoiseDegradation

    cls = AudioDenoiseDegradation if name == "audio_denoise" else AudioBandwidthDegradation
    if spec in (None, "bicubic", name):
        return cls()
    if isinstance(spec, dict):
        kwargs = dict(spec)
        if kwargs.pop("name", name) != name:
            raise ValueError(f"task {name!r} takes degradation arguments of {name!r}, got {spec!r}")
        return cls(**kwargs)
    raise ValueError(f"task.degradation for {name!r} must be null or a dict of arguments, got {spec!r}")


def build_task(config: Any, sample_rate: int = 16000) -> Task | AudioTask:
    """A :class:`Task` or :class:`AudioTask` from a :class:`restore.train.config.TaskConfig`."""
    if config.name not in TASK_NAMES:
        raise ValueError(f"task.name must be one of {TASK_NAMES}, got {config.name!r}")
    if config.name in AUDIO_TASKS:
        return AudioTask(config.name, _audio_degradation(config.name, config.degradation), sample_rate)
    if config.name == "inpaint":
        from restore.degrade import RandomMask

        return Task("inpaint", 1, None, RandomMask(**config.mask))
    scale = config.scale if config.name == "sr" else 1
    degradation = config.degradation
    if config.name == "deblur" and degradation in (None, "bicubic"):
        degradation = "blur"
    return Task(
        config.name, scale, _degradation_module(degradation, scale if config.name == "sr" else None), None
    )
