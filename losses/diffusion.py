"""The diffusion denoising loss: the network output against its target (epsilon, v or x0).

A diffusion trainer computes the model output at a noisy ``x_t`` and what it should have been
(``model_output``, ``model_target``), and per sample ``(N,)`` an optional weight by timestep (P2,
min-SNR) and an optional pseudo-Huber ``c`` by timestep (scheduled pseudo-Huber). This module knows
nothing about noise schedules: it takes those per-sample values as inputs (``restore.diffusion``
computes them; the training task passes them as ``timestep_weight`` and ``huber_c``).
"""

from __future__ import annotations

import torch
from torch import nn

from .reduction import check_reduction
from .registry import register

LOSS_TYPES = ("l2", "l1", "huber")


def _per_sample(values: torch.Tensor, name: str, n: int) -> torch.Tensor:
    if values.shape != (n,):
        raise ValueError(f"{name} must have one value per sample, shape ({n},), got {tuple(values.shape)}")
    return values.float()


def denoising_residual_loss(
    model_output: torch.Tensor,
    model_target: torch.Tensor,
    loss_type: str = "l2",
    huber_c: float | torch.Tensor = 0.1,
    timestep_weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Per-sample mean over all but the batch dimension of the residual loss, weighted, then reduced.

    ``l2``: ``r^2``; ``l1``: ``|r|``; ``huber``: ``2c(sqrt(r^2 + c^2) - c)`` (about ``r^2`` below
    ``c`` and ``2c|r|`` above), with ``r = model_output - model_target``. ``huber_c`` is a number or
    per sample ``(N,)``; ``timestep_weight`` multiplies the per-sample losses ``(N,)``.
    ``reduction``: ``"mean"`` / ``"sum"`` over the batch, or ``"none"`` for the ``(N,)`` values.
    Float32.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    check_reduction(reduction)
    if model_output.shape != model_target.shape:
        raise ValueError(
            f"model_output and model_target shapes differ: {tuple(model_output.shape)} vs "
            f"{tuple(model_target.shape)}"
        )
    n = model_output.shape[0]
    r = model_output.float() - model_target.float()
    if loss_type == "l2":
        loss = r.square()
    elif loss_type == "l1":
        loss = r.abs()
    else:
        c = huber_c
        if isinstance(c, torch.Tensor):
            c = _per_sample(c, "huber_c", n).to(r.device).view(-1, *([1] * (r.ndim - 1)))
        r2 = r.square()
        # sqrt(r^2 + c^2) - c written without the cancellation that loses small residuals in float32
        loss = 2 * c * r2 / (torch.sqrt(r2 + c * c) + c)
    per_sample = loss.flatten(1).mean(dim=1)
    if timestep_weight is not None:
        per_sample = per_sample * _per_sample(timestep_weight, "timestep_weight", n).to(r.device)
    if reduction == "none":
        return per_sample
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


@register(
    "denoising",
    kind="pixel",
    modality="any",
    fp32=True,
    inputs=("model_output", "model_target"),
    optional_inputs=("timestep_weight", "huber_c"),
)
class DenoisingLoss(nn.Module):
    """Diffusion denoising loss on the network output (eps, v or x0): l2, l1 or pseudo-Huber, by timestep.

    ``loss_type``: ``"l2"`` (the DDPM "simple" loss), ``"l1"`` or ``"huber"`` (pseudo-Huber with
    ``c`` from the ``huber_c`` input ``(N,)`` when the caller gives one, e.g. scheduled by timestep,
    else the constant ``huber_c``). The optional ``timestep_weight (N,)`` input multiplies each
    sample's loss (P2 or min-SNR weighting) before the batch mean. Runs in float32.
    """

    def __init__(self, loss_type: str = "l2", huber_c: float = 0.1, reduction: str = "mean") -> None:
        super().__init__()
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
        if not huber_c > 0:
            raise ValueError(f"huber_c must be positive, got {huber_c}")
        self.loss_type = loss_type
        self.huber_c = float(huber_c)
        self.reduction = check_reduction(reduction)

    def forward(
        self,
        model_output: torch.Tensor,
        model_target: torch.Tensor,
        timestep_weight: torch.Tensor | None = None,
        huber_c: torch.Tensor | None = None,
    ) -> torch.Tensor:
        c = huber_c if huber_c is not None else self.huber_c
        return denoising_residual_loss(
            model_output, model_target, self.loss_type, c, timestep_weight, self.reduction
        )

    def extra_repr(self) -> str:
        return f"loss_type={self.loss_type!r}, huber_c={self.huber_c}"
