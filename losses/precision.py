"""Mixed-precision policy: run numerically sensitive code in float32 with autocast off.

FFT/STFT, SSIM statistics, Gram matrices, feature normalisation and log/exp of small numbers
lose too much in float16/bfloat16. :func:`float32_call` runs any callable with autocast disabled
on the inputs' device and every floating tensor argument cast to float32 (gradients still flow
back to the half-precision originals through the cast).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


def to_float32(obj: Any) -> Any:
    """Cast every floating tensor in ``obj`` (tensors, lists, tuples, dicts) to float32."""
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.is_floating_point() and obj.dtype != torch.float64 else obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_float32(o) for o in obj)
    if isinstance(obj, dict):
        return {k: to_float32(v) for k, v in obj.items()}
    return obj


def _device_type(args: tuple, kwargs: dict) -> str:
    for obj in (*args, *kwargs.values()):
        if isinstance(obj, torch.Tensor):
            return obj.device.type
        if isinstance(obj, (list, tuple)) and obj and isinstance(obj[0], torch.Tensor):
            return obj[0].device.type
    return "cpu"


def float32_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` with autocast disabled and floating tensor arguments in float32."""
    device_type = _device_type(args, kwargs)
    with torch.autocast(device_type=device_type, enabled=False):
        return fn(*to_float32(args), **to_float32(kwargs))


def float32(fn: F) -> F:
    """Decorator form of :func:`float32_call` for functional losses and metrics."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return float32_call(fn, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
