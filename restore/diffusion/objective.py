"""Diffusion training objective: DDPM forward process, prediction targets, loss weightings.

Images live in [-1, 1] inside the diffusion process (``x0 = 2 * image - 1``). With
``a_t = alphas_cumprod[t]``::

    x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps              (noisy)
    target: eps | v = sqrt(a_t) eps - sqrt(1 - a_t) x0 | x0
    SNR(t) = a_t / (1 - a_t)

Everything here runs in float32 with autocast off, whatever dtype the model output has. The
noise schedule is diffusers' ``DDPMScheduler`` (so the samplers in :mod:`restore.diffusion.sampling`
are built from the same config).

Loss weightings (per sample, ``(N,)``):

- P2, perception-prioritized (Choi et al. 2022): ``lambda_t = 1 / (k + SNR(t))**gamma`` on the
  epsilon loss; :func:`p2_weights` converts it for v/x0 prediction so that the weighted loss is the
  same function of the model as the P2-weighted epsilon loss, and normalises it to mean 1 over t.
- min-SNR-gamma (Hang et al. 2023): ``min(SNR, gamma) / SNR`` on the epsilon loss, converted alike.
- scheduled pseudo-Huber (Khrapov & Popov 2024): :func:`scheduled_pseudo_huber`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "HUBER_SCHEDULES",
    "LOSS_TYPES",
    "PREDICTION_TYPES",
    "WEIGHTINGS",
    "DiffusionObjective",
    "alphas_cumprod",
    "denoising_loss",
    "eps_from_output",
        "min_snr_weights",
    "p2_weights",
    "scheduled_huber_c",
    "scheduled_pseudo_huber",
    "x0_from_output",
    "x0_loss",
]

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
LOSS_TYPES = ("l2", "l1", "huber")
WEIGHTINGS = (None, "p2", "min_snr")
HUBER_SCHEDULES = ("snr", "exponential", "constant")


def _ddpm_scheduler(num_train_timesteps: int, beta_schedule: str, prediction_type: str = "epsilon") -> Any:
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, prediction_type=prediction_type
    )


def alphas_cumprod(num_train_timesteps: int = 1000, beta_schedule: str = "linear") -> Tensor:
    """``(T,)`` float32 cumulative products of ``1 - beta`` of diffusers' DDPM schedule."""
    return _ddpm_scheduler(num_train_timesteps, beta_schedule).alphas_cumprod.float().clone()


def _expand(coef: Tensor, like: Tensor) -> Tensor:
    return coef.view(-1, *([1] * (like.ndim - 1)))


def _check_prediction_type(prediction_type: str) -> None:
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")


def x0_from_output(output: Tensor, x_t: Tensor, alpha_cumprod: Tensor, prediction_type: str) -> Tensor:
    """x0 estimate from a model output; ``alpha_cumprod (N,)`` is ``a_t`` of each sample. Float32."""
    _check_prediction_type(prediction_type)
    with torch.autocast(device_type=x_t.device.type, enabled=False):
        output, x_t = output.float(), x_t.float()
        a = _expand(alpha_cumprod.float().to(x_t.device), x_t)
        if prediction_type == "epsilon":
            return (x_t - (1 - a).sqrt() * output) / a.sqrt()
        if prediction_type == "v_prediction":
            return a.sqrt() * x_t - (1 - a).sqrt() * output
        return output


def eps_from_output(output: Tensor, x_t: Tensor, alpha_cumprod: Tensor, prediction_type: str) -> Tensor:
    """Epsilon estimate from a model output (what RePaint's scheduler expects). Float32."""
    _check_prediction_type(prediction_type)
    with torch.autocast(device_type=x_t.device.type, enabled=False):
        output, x_t = output.float(), x_t.float()
        a = _expand(alpha_cumprod.float().to(x_t.device), x_t)
        if prediction_type == "epsilon":
            return output
        if prediction_type == "v_prediction":
            return a.sqrt() * output + (1 - a).sqrt() * x_t
        return (x_t - a.sqrt() * output) / (1 - a).sqrt()


class DiffusionObjective:
    """The DDPM forward process and training targets for one noise schedule and prediction type.

    ``scheduler`` is the diffusers ``DDPMScheduler`` (its config seeds the samplers). Timesteps are
    ``(N,)`` long tensors in ``[0, num_train_timesteps)``; images in [-1, 1].
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "linear",
        prediction_type: str = "epsilon",
    ) -> None:
        _check_prediction_type(prediction_type)
        if not isinstance(num_train_timesteps, int) or num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be an integer >= 2, got {num_train_timesteps!r}")
        self.scheduler = _ddpm_scheduler(num_train_timesteps, beta_schedule, prediction_type)
        self.num_train_timesteps = num_train_timesteps
        self.beta_schedule = beta_schedule
        self.prediction_type = prediction_type
        self._alphas = {torch.device("cpu"): self.scheduler.alphas_cumprod.float().clone()}

    @classmethod
    def from_model(cls, model: nn.Module) -> DiffusionObjective:
        """The objective a model was built for (its ``num_train_timesteps``, ``beta_schedule``,
        ``prediction_type``); a bare diffusers UNet gets the DDPM defaults (1000, linear, epsilon)."""
        from restore.models.sr3 import SR3UNet

        model = getattr(model, "module", model)  # DDP / Accelerate wrappers
        if not isinstance(model, SR3UNet):
            return cls()
        return cls(model.num_train_timesteps, model.beta_schedule, model.prediction_type)

    def __repr__(self) -> str:
        return (
            f"DiffusionObjective(num_train_timesteps={self.num_train_timesteps}, "
            f"beta_schedule={self.beta_schedule!r}, prediction_type={self.prediction_type!r})"
        )

    def alphas_cumprod(self, device: torch.device | str = "cpu") -> Tensor:
        """``(T,)`` float32 ``a_t`` on ``device`` (cached)."""
        device = torch.device(device)
        if device not in self._alphas:
            self._alphas[device] = self._alphas[torch.device("cpu")].to(device)
        return self._alphas[device]

    def alpha(self, t: Tensor) -> Tensor:
        """``a_t`` for timesteps ``t (N,)``, float32 on ``t``'s device."""
        return self.alphas_cumprod(t.device)[t.long()]

    def snr(self, t: Tensor) -> Tensor:
        """Signal-to-noise ratio ``a_t / (1 - a_t)`` for ``t (N,)``, float32."""
        a = self.alpha(t)
        return a / (1 - a)

    def sample_timesteps(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> Tensor:
        """``(n,)`` long timesteps uniform in ``[0, num_train_timesteps)`` (``generator`` on ``device``)."""
        return torch.randint(0, self.num_train_timesteps, (n,), generator=generator, device=device)

    def noisy(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """``x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise``, float32."""
        with torch.autocast(device_type=x0.device.type, enabled=False):
            a = _expand(self.alpha(t), x0)
            return a.sqrt() * x0.float() + (1 - a).sqrt() * noise.float()

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """What the model should output: ``noise``, ``v`` or ``x0`` by ``prediction_type``. Float32."""
        with torch.autocast(device_type=x0.device.type, enabled=False):
            if self.prediction_type == "epsilon":
                return noise.float()
            if self.prediction_type == "sample":
                return x0.float()
            a = _expand(self.alpha(t), x0)
            return a.sqrt() * noise.float() - (1 - a).sqrt() * x0.float()

    def predicted_x0(self, model_output: Tensor, x_t: Tensor, t: Tensor, clamp: bool = False) -> Tensor:
        """x0 estimate from the model output at ``x_t``; ``clamp`` limits it to [-1, 1]. Float32."""
        x0 = x0_from_output(model_output, x_t, self.alpha(t), self.prediction_type)
        return x0.clamp(-1, 1) if clamp else x0

    def predicted_eps(self, model_output: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """Epsilon estimate from the model output at ``x_t``. Float32."""
        return eps_from_output(model_output, x_t, self.alpha(t), self.prediction_type)

    def prepare(self, x0: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """One training draw for clean ``x0`` in [-1, 1]: ``{"timesteps", "noise", "x_t", "target"}``.

        ``generator`` (on ``x0``'s device) makes the draw reproducible.
        """
        t = self.sample_timesteps(x0.shape[0], generator, x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=torch.float32)
        x_t, target = self.noisy(x0, noise, t), self.target(x0, noise, t)
        return {"timesteps": t, "noise": noise, "x_t": x_t, "target": target}


def _epsilon_equivalent(weight: Tensor, snr: Tensor, prediction_type: str) -> Tensor:
    """Convert a weight on the epsilon loss to the prediction type's loss.

    For the same model, ``|eps err|^2 = SNR |x0 err|^2 = SNR/(1+SNR) |v err|^2``.
    """
    if prediction_type == "epsilon":
        return weight
    if prediction_type == "v_prediction":
        return weight * snr / (1 + snr)
    return weight * snr


def p2_weights(
    t: Tensor, objective: DiffusionObjective, gamma: float = 1.0, k: float = 1.0, normalize: bool = True
) -> Tensor:
    """Perception-prioritized weights ``(N,)`` for timesteps ``t (N,)`` (Choi et al. 2022).

    For epsilon prediction: ``lambda_t = 1 / (k + SNR(t))**gamma``. For v and x0 prediction the
    weight is ``lambda_t * SNR/(1+SNR)`` and ``lambda_t * SNR``: the weighted loss then equals, for
    the same network, the P2-weighted epsilon loss (up to the constant normaliser).
    ``normalize`` divides by the mean of the weight over all ``num_train_timesteps`` timesteps,
    so uniform timestep sampling keeps the loss scale of the unweighted loss (mean weight 1).
    ``gamma = 0`` is the plain loss. Float32.
    """
    if gamma < 0 or k <= 0:
        raise ValueError(f"p2 needs gamma >= 0 and k > 0, got gamma={gamma}, k={k}")

    def weight(snr: Tensor) -> Tensor:
        return _epsilon_equivalent((k + snr).pow(-gamma), snr, objective.prediction_type)

    w = weight(objective.snr(t))
    if normalize:
        all_t = torch.arange(objective.num_train_timesteps, device=t.device)
        w = w / weight(objective.snr(all_t)).mean()
    return w


def min_snr_weights(t: Tensor, objective: DiffusionObjective, gamma: float = 5.0) -> Tensor:
    """Min-SNR-gamma weights ``(N,)`` (Hang et al. 2023): ``min(SNR, gamma) / SNR`` on the epsilon
    loss, i.e. ``min(SNR, gamma) / (SNR + 1)`` for v and ``min(SNR, gamma)`` for x0. Float32."""
    if gamma <= 0:
        raise ValueError(f"min_snr gamma must be positive, got {gamma}")
    snr = objective.snr(t)
    return _epsilon_equivalent(snr.clamp(max=gamma) / snr, snr, objective.prediction_type)


def scheduled_huber_c(
    t: Tensor, objective: DiffusionObjective, c: float = 0.1, schedule: str = "snr"
) -> Tensor:
    """Scheduled pseudo-Huber ``c (N,)`` for timesteps ``t`` (Khrapov & Popov 2024; as diffusers' scripts).

    - ``"snr"``: ``(1 - c) / (1 + sigma_t)**2 + c`` with ``sigma_t = sqrt((1 - a_t) / a_t)``:
      1 (quadratic, like l2) at low noise, down to ``c`` (robust) at high noise;
    - ``"exponential"``: ``exp(-alpha t)`` with ``alpha = -ln(c) / T``: 1 at t = 0, ``c`` at t = T;
    - ``"constant"``: ``c``.
    """
    if schedule not in HUBER_SCHEDULES:
        raise ValueError(f"huber schedule must be one of {HUBER_SCHEDULES}, got {schedule!r}")
    if not 0 < c <= 1:
        raise ValueError(f"huber c must be in (0, 1], got {c}")
    if schedule == "constant":
        return torch.full(t.shape, float(c), device=t.device)
    if schedule == "exponential":
        alpha = -math.log(c) / objective.num_train_timesteps
        return torch.exp(-alpha * t.float())
    a = objective.alpha(t)
    sigma = ((1 - a) / a).sqrt()
    return (1 - c) / (1 + sigma) ** 2 + c


def scheduled_pseudo_huber(
    pred: Tensor,
    target: Tensor,
    t: Tensor,
    objective: DiffusionObjective,
    c: float = 0.1,
    schedule: str = "snr",
) -> Tensor:
    """Per-sample scheduled pseudo-Huber loss ``(N,)``.

    The mean over C, H, W of ``2 c_t (sqrt(r^2 + c_t^2) - c_t)`` with ``r = pred - target`` and
    ``c_t`` = :func:`scheduled_huber_c`. The ``2 c_t`` factor (as diffusers' scripts) makes it
    ``~ r^2`` (the l2 loss) for ``|r| << c_t`` and ``~ 2 c_t |r|`` for ``|r| >> c_t``. Float32.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    with torch.autocast(device_type=pred.device.type, enabled=False):
        c_t = _expand(scheduled_huber_c(t, objective, c, schedule).to(pred.device), pred)
        r2 = (pred.float() - target.float()).square()
        # sqrt(r^2 + c^2) - c written without the cancellation that loses small residuals in float32
        loss = 2 * c_t * r2 / (torch.sqrt(r2 + c_t * c_t) + c_t)
        return loss.flatten(1).mean(dim=1)


def denoising_loss(
    model_output: Tensor,
    target: Tensor,
    t: Tensor,
    objective: DiffusionObjective,
    loss_type: str = "l2",
    weighting: str | None = None,
    *,
    p2_gamma: float = 1.0,
    p2_k: float = 1.0,
    min_snr_gamma: float = 5.0,
    huber_c: float = 0.1,
    huber_schedule: str = "snr",
    reduction: str = "mean",
) -> Tensor:
    """The diffusion loss: per-sample ``loss_type`` over C, H, W, times the weighting, averaged.

    ``loss_type``: ``"l2"`` (mean squared error, the DDPM "simple" loss), ``"l1"``, ``"huber"``
    (:func:`scheduled_pseudo_huber` with ``huber_c``, ``huber_schedule``). ``weighting``: ``None``,
    ``"p2"`` (:func:`p2_weights`) or ``"min_snr"`` (:func:`min_snr_weights`). ``reduction="none"``
    returns the weighted per-sample losses ``(N,)``. Float32, autocast off.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if model_output.shape != target.shape:
        raise ValueError(
            f"model_output and target shapes differ: {tuple(model_output.shape)} vs {tuple(target.shape)}"
        )
    with torch.autocast(device_type=model_output.device.type, enabled=False):
        pred, target = model_output.float(), target.float()
        if loss_type == "l2":
            per_sample = (pred - target).square().flatten(1).mean(dim=1)
        elif loss_type == "l1":
            per_sample = (pred - target).abs().flatten(1).mean(dim=1)
        else:
            per_sample = scheduled_pseudo_huber(pred, target, t, objective, huber_c, huber_schedule)
        if weighting == "p2":
            per_sample = per_sample * p2_weights(t, objective, p2_gamma, p2_k)
        elif weighting == "min_snr":
            per_sample = per_sample * min_snr_weights(t, objective, min_snr_gamma)
        return per_sample if reduction == "none" else per_sample.mean()


def x0_loss(
    loss_set: nn.Module, x0_pred: Tensor, x0_target: Tensor, *, clamp: bool = False, **extras: Any
) -> tuple[Tensor, dict[str, Tensor]]:
    """Apply an image :class:`losses.LossSet` to the predicted x0: ``(total, terms)``.

    ``x0_pred`` and ``x0_target`` are in [-1, 1] (diffusion space); they are mapped to [0, 1] (what
    the image losses take) in float32. ``clamp`` clips the prediction to [0, 1] first (the x0
    estimate at high noise can leave the range; clipping stops gradients there). ``extras``
    (``mask``...) pass through to the loss set.
    """
    with torch.autocast(device_type=x0_pred.device.type, enabled=False):
        pred = (x0_pred.float() + 1) / 2
        target = (x0_target.float() + 1) / 2
        if clamp:
            pred = pred.clamp(0, 1)
    return loss_set(pred, target, **extras)
