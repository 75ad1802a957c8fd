"""Exponential moving average of a model's weights (the generator's EMA used for validation and export)."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA(nn.Module):
    """``ema = decay * ema + (1 - decay) * model`` after each optimiser step, buffers copied.

    ``ModelEMA(model, decay=0.999, start=0)``: updates before step ``start`` copy the weights
    (``decay = 0``), as BasicSR's ``net_g_ema`` starts from the generator. The averaged copy lives in
    ``self.module`` (float32, eval mode, no gradients); ``state_dict()`` holds it and the update
    count, so ``accelerator.register_for_checkpointing(ema)`` saves and resumes it.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, start: int = 0) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.start = int(start)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend ``model``'s current parameters into the average (call after ``optimizer.step()``)."""
        decay = self.decay if int(self.updates) >= self.start else 0.0
        ema_params = dict(self.module.named_parameters())
        pairs = [(ema_params[name], param.detach()) for name, param in model.named_parameters()]
        targets = [t for t, _ in pairs]
        sources = [p.to(t.dtype) for t, p in pairs]
        torch._foreach_lerp_(targets, sources, 1.0 - decay)  # one fused call for all parameters
        ema_buffers = dict(self.module.named_buffers())
        for name, buffer in model.named_buffers():
            if name in ema_buffers:
                ema_buffers[name].copy_(buffer)
        self.updates += 1

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"decay={self.decay}, start={self.start}"
