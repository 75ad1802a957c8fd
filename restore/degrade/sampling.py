"""Per-sample random draws and argument checks shared by the degradations.

Every draw happens on the generator's device (the ``device`` given when there is no generator),
so one seeded ``torch.Generator`` reproduces a batch wherever it runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["check_images", "check_range", "draw_device", "per_sample", "rand_bernoulli", "rand_uniform"]


def draw_device(generator: torch.Generator | None, fallback: torch.device | str) -> torch.device:
    """Where random numbers are drawn: the generator's device, else ``fallback``."""
    return generator.device if generator is not None else torch.device(fallback)


def rand_uniform(
    shape: int | tuple[int, ...],
    low: float,
    high: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """float32 samples of U(low, high) of ``shape`` (an int n gives (n,)), drawn on the generator's device."""
    if high < low:
        raise ValueError(f"range must be (low, high) with low <= high, got ({low}, {high})")
    shape = (shape,) if isinstance(shape, int) else shape
    u = torch.rand(shape, generator=generator, device=draw_device(generator, device))
    return low + (high - low) * u


def rand_bernoulli(
    n: int, prob: float, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(n,) bool, each True with probability ``prob``, drawn on the generator's device (else ``device``)."""
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {prob}")
    return torch.rand(n, generator=generator, device=draw_device(generator, device)) < prob


def per_sample(value: float | torch.Tensor, n: int, device: torch.device, name: str) -> torch.Tensor:
    """A number or an (N,) tensor as an (N,) floating tensor on ``device`` (numbers: float64)."""
    if isinstance(value, (bool, int, float)):
        mps = torch.device(device).type == "mps"  # no float64 there
        value = torch.tensor(float(value), dtype=torch.float32 if mps else torch.float64)
    t = torch.as_tensor(value).to(device)
    if not t.is_floating_point():
        t = t.to(torch.float64 if t.device.type != "mps" else torch.float32)
    if t.ndim == 0:
        return t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"{name} must be a number or a tensor of shape ({n},), got shape {tuple(t.shape)}")
    return t


def check_range(
    value: Sequence[float], name: str, low: float = 0.0, high: float = math.inf
) -> tuple[float, float]:
    """``value`` as a float pair (a, b) with low <= a <= b <= high, else a ValueError naming ``name``."""
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        bound = f"{low} <= low <= high" + (f" <= {high}" if high != math.inf else "")
        raise ValueError(f"{name} must be (low, high) with {bound}, got {value!r}")
    return float(value[0]), float(value[1])


def check_images(images: torch.Tensor, name: str = "images", floating: bool = True) -> None:
    """Raise a ValueError naming ``name`` unless it is a (N, C, H, W) (floating) tensor."""
    if (
        not isinstance(images, torch.Tensor)
        or images.ndim != 4
        or (floating and not images.is_floating_point())
    ):
        is_tensor = isinstance(images, torch.Tensor)
        what = f"{tuple(images.shape)} {images.dtype}" if is_tensor else type(images).__name__
        kind = "floating (N, C, H, W)" if floating else "(N, C, H, W)"
        raise ValueError(f"{name} must be a {kind} tensor, got {what}")
