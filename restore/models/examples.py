"""Example inputs for a model: the right number of tensors, shapes the model accepts, seeded values."""

from __future__ import annotations

import torch
from torch import nn

from .registry import spec_of


def example_inputs(
    model: nn.Module,
    batch: int = 1,
    size: int = 32,
    device: torch.device | str = "cpu",
    seed: int = 0,
    length: int = 4096,
) -> tuple[torch.Tensor, ...]:
    """One tensor per name in ``model.spec.inputs``, on ``device``.

    An audio model (``inputs[0] == "audio"``) gets ``(batch, in_channels, T)`` uniform in [-0.5, 0.5],
    ``T`` = ``length`` rounded up to the spec's size multiple.

    The image is ``(batch, in_channels, s, s)`` uniform in [0, 1], with ``s`` = ``size`` rounded up to
    the spec's size multiple; a ``mask`` is ``(batch, 1, s, s)`` with the centre square (half the side)
    missing; a ``condition`` is a random image with the model's ``condition_channels``.
    """
    spec = spec_of(model)
    if spec.inputs[0] == "audio":
        samples = -(-max(length, spec.size_multiple) // spec.size_multiple) * spec.size_multiple
        gen = torch.Generator().manual_seed(seed)
        audio = torch.rand(batch, spec.in_channels, samples, generator=gen) - 0.5
        return (audio.to(device),)
    side = -(-max(size, spec.size_multiple) // spec.size_multiple) * spec.size_multiple
    gen = torch.Generator().manual_seed(seed)
    tensors = [torch.rand(batch, spec.in_channels, side, side, generator=gen)]
    for name in spec.inputs[1:]:
        if name == "mask":
            mask = torch.zeros(batch, 1, side, side)
            mask[..., side // 4 : 3 * side // 4, side // 4 : 3 * side // 4] = 1
            tensors.append(mask)
        elif name == "condition":
            tensors.append(torch.rand(batch, model.condition_channels, side, side, generator=gen))
        else:
            raise ValueError(f"{spec.name}: no example for input {name!r}")
    return tuple(t.to(device) for t in tensors)
