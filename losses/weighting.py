"""Weighting strategies that combine a LossSet's terms into the total to back-propagate.

- ``fixed``: ``sum_i w_i * L_i``.
- ``balancer``: the EnCodec gradient balancer (Défossez et al. 2022). Each term's gradient with
  respect to the model output is normalised by an EMA of its norm, so the weights become the
  fractions of the total gradient each term contributes, whatever the terms' scales.
- ``uncertainty``: learned homoscedastic uncertainty weights (Kendall et al. 2018),
  ``sum_i exp(-s_i) * w_i * L_i + s_i`` with learned ``s_i`` (add ``loss_set.parameters()`` to the
  optimizer).
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register


@register("fixed", kind="weighting", inputs=())
class FixedWeights(nn.Module):
    """Fixed weights: total = sum of weight * term (the default)."""

    def __init__(self, labels: list[str] | None = None) -> None:
        super().__init__()

    def forward(
        self, terms: dict[str, torch.Tensor], weights: dict[str, float], pred: torch.Tensor | None = None
    ) -> torch.Tensor:
        return sum(weights[k] * v.float() for k, v in terms.items())  # type: ignore[return-value]


class _EMA:
    """Bias-corrected exponential moving average of named scalars (as in flashy's ``averager``)."""

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.total: dict[str, torch.Tensor] = {}
        self.fix: dict[str, float] = {}

    def __call__(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for key, value in values.items():
            self.total[key] = self.decay * self.total.get(key, torch.zeros_like(value)) + value
            self.fix[key] = self.decay * self.fix.get(key, 0.0) + 1.0
            out[key] = self.total[key] / self.fix[key]
        return out


@register("balancer", kind="weighting", inputs=())
class GradientBalancer(nn.Module):
    """EnCodec gradient balancer: weights are fractions of the total gradient on the model output.

    The total it returns is a surrogate whose gradient with respect to ``pred`` is the balanced
    sum ``sum_i (w_i / sum w) * total_norm * g_i / ema(||g_i||)``, so ``total.backward()`` (or
    ``accelerator.backward(total)``) trains the model as EnCodec's ``Balancer.backward`` does.
    Every term must depend on ``pred``. Under data parallelism the EMA norms are per process.
    """

    def __init__(
        self,
        labels: list[str] | None = None,
        total_norm: float = 1.0,
        ema_decay: float = 0.999,
        per_batch_item: bool = True,
        epsilon: float = 1e-12,
    ) -> None:
        super().__init__()
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.total_norm = total_norm
        self.per_batch_item = per_batch_item
        self.epsilon = epsilon
        self.averager = _EMA(ema_decay)
        self.last_norms: dict[str, float] = {}

    def forward(
        self, terms: dict[str, torch.Tensor], weights: dict[str, float], pred: torch.Tensor | None = None
    ) -> torch.Tensor:
        if pred is None or not pred.requires_grad:
            raise ValueError("the gradient balancer needs `pred` (the model output) with requires_grad")
        if not torch.is_grad_enabled():
            return sum(weights[k] * v.float() for k, v in terms.items())  # evaluation: plain sum
        grads, norms = {}, {}
        for label, loss in terms.items():
            (grad,) = torch.autograd.grad(loss, [pred], retain_graph=True, allow_unused=True)
            if grad is None:
                raise ValueError(
                    f"loss term {label!r} does not depend on pred; the balancer cannot weight it"
                )
            grad = grad.float()
            if self.per_batch_item:
                norm = grad.flatten(1).norm(dim=1).mean()
            else:
                norm = grad.norm()
            grads[label], norms[label] = grad, norm.detach()
        avg_norms = self.averager(norms)
        self.last_norms = {k: float(v) for k, v in avg_norms.items()}
        total_weight = sum(weights[k] for k in terms)
        if total_weight <= 0:
            raise ValueError("the balancer's weights must sum to a positive number")
        out_grad = torch.zeros_like(pred, dtype=torch.float32)
        for label, avg_norm in avg_norms.items():
            scale = weights[label] / total_weight * self.total_norm / (self.epsilon + avg_norm)
            out_grad.add_(grads[label] * scale)
        # d/dpred of (pred * out_grad).sum() is out_grad: the balanced gradient.
        return (pred.float() * out_grad.detach()).sum()


@register("uncertainty", kind="weighting", inputs=())
class UncertaintyWeights(nn.Module):
    """Learned uncertainty weights (Kendall et al. 2018): sum exp(-s_i) w_i L_i + s_i.

    ``s_i = log(sigma_i^2)`` is a learned parameter per term, initialised to ``init_log_var``.
    """

    def __init__(self, labels: list[str] | None = None, init_log_var: float = 0.0) -> None:
        super().__init__()
        if not labels:
            raise ValueError("uncertainty weighting needs the term labels")
        self.labels = list(labels)
        self.log_vars = nn.Parameter(torch.full((len(self.labels),), float(init_log_var)))

    def forward(
        self, terms: dict[str, torch.Tensor], weights: dict[str, float], pred: torch.Tensor | None = None
    ) -> torch.Tensor:
        total = self.log_vars.new_zeros(())
        for i, label in enumerate(self.labels):
            s = self.log_vars[i]
            total = total + torch.exp(-s) * weights[label] * terms[label].float() + s
        return total
