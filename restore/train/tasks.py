"""Tasks: how a clean batch becomes a training pair, and how the generator is called on it.

A task turns ``target (N, 3, H, W)`` into a dict of named tensors on the training device, seeded by
the batch's per-item seeds so a pair is reproducible (and identical after a resume):

- ``sr``: ``input`` = degradation(target) at ``scale`` (bicubic, Real-ESRGAN, ...), pred = G(input);
- ``deblur``: ``input`` = blur (+ optional noise/JPEG) of target, pred = G(input);
- ``inpaint``: ``mask`` (N, 1, H, W), 1 = hole; ``input`` = target with holes filled with 0,
  pred = G(input, mask).

Datasets that already carry an ``"input"`` (paired folders) skip the degradation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["TASK_NAMES", "Task", "build_task", "batch_generator"]

TASK_NAMES = ("sr", "deblur", "inpaint")


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


@dataclass
class Task:
    """A training task (see the module docstring). ``scale`` is 1 except for super-resolution."""

    name: str
    scale: int
    degradation: nn.Module | None
    mask: nn.Module | None

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


def build_task(config: Any) -> Task:
    """A :class:`Task` from a :class:`restore.train.config.TaskConfig`."""
    if config.name not in TASK_NAMES:
        raise ValueError(f"task.name must be one of {TASK_NAMES}, got {config.name!r}")
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
