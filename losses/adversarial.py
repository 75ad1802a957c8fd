"""Adversarial losses: GAN objectives, R1 and WGAN-GP penalties, discriminator feature matching.

GAN objectives (``gan``, ``lsgan``, ``hinge``, ``wgan``, ``ragan``) take discriminator logits,
never sigmoid outputs, and a constructor argument ``side``: ``"generator"`` (default) gives the
generator's loss, ``"discriminator"`` the discriminator's. Shapes:

- ``fake_logits``: ``(N, ...)`` discriminator output on generated samples, or a list of such
  tensors (multi-scale / multi-period discriminators): the loss is the mean of the per-tensor
  losses (BasicSR's ``MultiScaleGANLoss``, HiFi-GAN).
- ``real_logits``: the same on real samples (a list pairs element-wise with ``fake_logits``).
  Needed on the discriminator side, and by ``ragan`` on both sides; ignored otherwise.

The objectives run on float32 copies of the logits (a cheap cast): means of many float16 logits
lose precision and ``exp`` of large logits overflows.

On the discriminator side, pass logits of *detached* generated samples (``D(G(z).detach())``); on
the generator side the losses back-propagate through ``fake_logits`` into the generator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .reduction import tensor_list
from .registry import register

SIDES = ("generator", "discriminator")

Logits = torch.Tensor | Sequence[torch.Tensor]
Features = Sequence[torch.Tensor] | Sequence[Sequence[torch.Tensor]]


# ---------------------------------------------------------------------------------------------
# shared helpers


def check_side(side: str) -> str:
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    return side


def multiscale_gan_loss(
    objective: str,
    side: str,
    per_scale: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    fake_logits: Logits,
    real_logits: Logits | None,
    needs_real: bool,
) -> torch.Tensor:
    """Apply ``per_scale(fake, real)`` to each discriminator's logits (cast to float32); average.

    This is the one loop shared by every GAN objective. ``needs_real`` says whether this
    objective and side use ``real_logits``; a missing one raises ``ValueError`` naming both.
    """
    fakes = tensor_list(fake_logits, "fake_logits")
    if real_logits is None:
        if needs_real:
            raise ValueError(
                f"{objective} {side} side needs real_logits (the discriminator's output on real samples)"
            )
        reals: list[torch.Tensor | None] = [None] * len(fakes)
    else:
        reals = list(tensor_list(real_logits, "real_logits"))
        if len(reals) != len(fakes):
            raise ValueError(
                f"{objective}: fake_logits and real_logits have {len(fakes)} and {len(reals)} "
                "discriminator outputs; they must pair up"
            )
    losses = [
        per_scale(f.float(), None if r is None else r.float()) for f, r in zip(fakes, reals, strict=True)
    ]
    return torch.stack(losses).mean()


def _bce(logits: torch.Tensor, label: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))


# ---------------------------------------------------------------------------------------------
# per-scale objectives: (fake, real) -> scalar; ``real`` is None only where the side ignores it


def _vanilla(fake, real, side, real_label, fake_label):
    if side == "generator":
        return _bce(fake, real_label)
    return _bce(real, real_label) + _bce(fake, fake_label)


def _least_squares(fake, real, side, real_label, fake_label):
    if side == "generator":
        return (fake - real_label).square().mean()
    return (real - real_label).square().mean() + (fake - fake_label).square().mean()


def _hinge(fake, real, side):
    if side == "generator":
        return -fake.mean()
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def _wasserstein(fake, real, side):
    if side == "generator":
        return -fake.mean()
    return fake.mean() - real.mean()


def _relativistic_average(fake, real, side, real_label, fake_label):
    if side == "generator":
        real = real.detach()
        return 0.5 * (_bce(real - fake.mean(), fake_label) + _bce(fake - real.mean(), real_label))
    return 0.5 * (
        _bce(real - fake.detach().mean(), real_label) + _bce(fake - real.detach().mean(), fake_label)
    )


# ---------------------------------------------------------------------------------------------
# functions


def gan_loss(
    fake_logits: Logits,
    real_logits: Logits | None = None,
    side: str = "generator",
    real_label: float = 1.0,
    fake_label: float = 0.0,
) -> torch.Tensor:
    """Vanilla (non-saturating) GAN loss with ``binary_cross_entropy_with_logits``.

    Generator: ``BCE(fake, real_label)``. Discriminator: ``BCE(real, real_label) + BCE(fake,
    fake_label)`` (the sum of BasicSR's ``l_d_real`` and ``l_d_fake``, which it back-propagates
    separately). Returns a scalar.
    """
    check_side(side)
    fn = functools.partial(_vanilla, side=side, real_label=real_label, fake_label=fake_label)
    return multiscale_gan_loss("gan", side, fn, fake_logits, real_logits, side == "discriminator")


def lsgan_loss(
    fake_logits: Logits,
    real_logits: Logits | None = None,
    side: str = "generator",
    real_label: float = 1.0,
    fake_label: float = 0.0,
) -> torch.Tensor:
    """Least-squares GAN (Mao et al. 2017): generator ``mean((fake - 1)^2)``; discriminator
    ``mean((real - 1)^2) + mean(fake^2)`` (labels configurable). Returns a scalar."""
    check_side(side)
    fn = functools.partial(_least_squares, side=side, real_label=real_label, fake_label=fake_label)
    return multiscale_gan_loss("lsgan", side, fn, fake_logits, real_logits, side == "discriminator")


def hinge_gan_loss(
    fake_logits: Logits, real_logits: Logits | None = None, side: str = "generator"
) -> torch.Tensor:
    """Hinge GAN (SAGAN, BigGAN): generator ``-mean(fake)``; discriminator
    ``mean(relu(1 - real)) + mean(relu(1 + fake))``. Returns a scalar."""
    check_side(side)
    fn = functools.partial(_hinge, side=side)
    return multiscale_gan_loss("hinge", side, fn, fake_logits, real_logits, side == "discriminator")


def wgan_loss(
    fake_logits: Logits, real_logits: Logits | None = None, side: str = "generator"
) -> torch.Tensor:
    """Wasserstein GAN critic loss: generator ``-mean(fake)``; discriminator
    ``mean(fake) - mean(real)``. Pair it with ``gradient_penalty`` (WGAN-GP). Returns a scalar."""
    check_side(side)
    fn = functools.partial(_wasserstein, side=side)
    return multiscale_gan_loss("wgan", side, fn, fake_logits, real_logits, side == "discriminator")


def ragan_loss(
    fake_logits: Logits,
    real_logits: Logits | None = None,
    side: str = "generator",
    real_label: float = 1.0,
    fake_label: float = 0.0,
) -> torch.Tensor:
    """Relativistic average GAN as in ESRGAN (BasicSR ``ESRGANModel``); both sides need real_logits.

    Generator (``real_logits`` detached)::

        (BCE(real - mean(fake), fake_label) + BCE(fake - mean(real), real_label)) / 2

    Discriminator: ``BCE(real - mean(fake).detach(), real_label) / 2 + BCE(fake -
    mean(real).detach(), fake_label) / 2``, the sum of BasicSR's ``l_d_real`` and ``l_d_fake``
    (which it back-propagates separately, each with the other side's mean detached, so the
    gradients are the same). Means are per discriminator output. Returns a scalar.
    """
    check_side(side)
    fn = functools.partial(_relativistic_average, side=side, real_label=real_label, fake_label=fake_label)
    return multiscale_gan_loss("ragan", side, fn, fake_logits, real_logits, True)


def _scaler_enabled(grad_scaler: Any) -> bool:
    return grad_scaler is not None and bool(grad_scaler.is_enabled())


def input_gradient(
    outputs: Logits, inputs: torch.Tensor, grad_scaler: Any = None, name: str = "inputs"
) -> torch.Tensor:
    """``d sum(outputs) / d inputs`` in float32, differentiable (``create_graph=True``).

    A list of outputs (multi-output discriminator) is summed. With an enabled ``grad_scaler``
    the gradient of ``grad_scaler.scale(sum)`` is taken and multiplied by ``1 / get_scale()``
    after the cast to float32 (PyTorch AMP "gradient penalty" recipe), so small float16
    gradients inside the discriminator do not underflow to zero.
    """
    if not inputs.requires_grad:
        raise ValueError(
            f"{name} must have requires_grad=True and be the tensor the discriminator ran on "
            f"(call {name}.requires_grad_(True) before the discriminator)"
        )
    total = torch.stack([o.float().sum() for o in tensor_list(outputs, "discriminator output")]).sum()
    scaled = _scaler_enabled(grad_scaler)
    if scaled:
        total = grad_scaler.scale(total)
    try:
        (grad,) = torch.autograd.grad(total, inputs, create_graph=True)
    except RuntimeError as err:
        raise RuntimeError(
            f"could not differentiate the discriminator output with respect to {name}: it must be the "
            f"very tensor (requires_grad=True) the "
            f"discriminator ran on. ({err})"
        ) from err
    grad = grad.float()
    if scaled:
        grad = grad * (1.0 / float(grad_scaler.get_scale()))
    return grad


def r1_penalty(
    real_logits: Logits, real: torch.Tensor, gamma: float = 10.0, grad_scaler: Any = None
) -> torch.Tensor:
    """R1 penalty (Mescheder et al. 2018): ``gamma / 2 * mean_i ||d D(real_i) / d real_i||^2``.

    ``real`` ``(N, ...)`` must have ``requires_grad=True`` and be the tensor that produced
    ``real_logits`` (a tensor or a list, whose sums are added). The gradient is taken with
    ``create_graph=True``, so the penalty back-propagates into the discriminator's parameters;
    the squared norm is computed in float32. ``grad_scaler``: see :func:`input_gradient`.
    """
    grad = input_gradient(real_logits, real, grad_scaler, name="real")
    return 0.5 * gamma * grad.square().flatten(1).sum(1).mean()


def gradient_penalty(
    discriminator: Callable[[torch.Tensor], Logits],
    real: torch.Tensor,
    fake: torch.Tensor,
    penalty_weight: float = 10.0,
    grad_scaler: Any = None,
) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): ``weight * mean_i (||grad D(x_hat_i)||_2 - 1)^2``.

    ``x_hat = eps * real + (1 - eps) * fake`` with ``eps ~ U(0, 1)`` per sample (``torch.rand``
    on the samples' device; seed with ``torch.manual_seed``), detached from ``real``/``fake`` as
    in the reference code. ``discriminator`` may return a list (outputs are summed). The norm is
    computed in float32; ``grad_scaler``: see :func:`input_gradient`. The norm is over each whole
    sample, as in the paper; BasicSR's ``gradient_penalty_loss`` takes it over dim 1 only (the
    channels of an image, per pixel), which agrees for flat ``(N, D)`` inputs.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake shapes differ: {tuple(real.shape)} vs {tuple(fake.shape)}")
    eps = torch.rand((real.shape[0],) + (1,) * (real.ndim - 1), device=real.device).to(real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    grad = input_gradient(discriminator(x_hat), x_hat, grad_scaler, name="x_hat")
    norm = torch.linalg.vector_norm(grad.flatten(1), dim=1)
    return penalty_weight * (norm - 1.0).square().mean()


def _feature_groups(features: Any, name: str) -> list[list[torch.Tensor]]:
    """A list of tensors (one discriminator) or a list of lists -> list (per D) of lists."""
    if isinstance(features, (list, tuple)) and features:
        if all(isinstance(f, torch.Tensor) for f in features):
            return [list(features)]
        if all(
            isinstance(g, (list, tuple)) and g and all(isinstance(f, torch.Tensor) for f in g)
            for g in features
        ):
            return [list(g) for g in features]
    raise TypeError(
        f"{name} must be a non-empty list of tensors or a list (per discriminator) of such lists, "
        f"got {type(features).__name__}"
    )


def feature_matching_loss(fake_features: Features, real_features: Features) -> torch.Tensor:
    """L1 between discriminator features of fake and real samples (pix2pixHD, MelGAN, HiFi-GAN).

    Features are a list of tensors (one discriminator) or a list per discriminator of lists of
    tensors. The mean absolute difference of each layer is averaged over the layers of each
    discriminator, then over discriminators. ``real_features`` are detached (no gradient into
    the discriminator through this loss's real branch). Returns a float32 scalar.
    """
    fakes = _feature_groups(fake_features, "fake_features")
    reals = _feature_groups(real_features, "real_features")
    if len(fakes) != len(reals):
        raise ValueError(
            f"fake_features and real_features come from {len(fakes)} and {len(reals)} discriminators"
        )
    per_disc = []
    for d, (fake_layers, real_layers) in enumerate(zip(fakes, reals, strict=True)):
        if len(fake_layers) != len(real_layers):
            raise ValueError(
                f"discriminator {d}: {len(fake_layers)} fake and {len(real_layers)} real feature layers"
            )
        layer_losses = []
        for f, r in zip(fake_layers, real_layers, strict=True):
            if f.shape != r.shape:
                raise ValueError(
                    f"discriminator {d}: feature shapes differ: {tuple(f.shape)} vs {tuple(r.shape)}"
                )
            layer_losses.append(F.l1_loss(f, r.detach()).float())
        per_disc.append(torch.stack(layer_losses).mean())
    return torch.stack(per_disc).mean()


# ---------------------------------------------------------------------------------------------
# modules

_GAN_SPEC = dict(
    kind="adversarial", input_range="logits", inputs=("fake_logits",), optional_inputs=("real_logits",)
)


class _GANObjective(nn.Module):
    def __init__(self, side: str = "generator") -> None:
        super().__init__()
        self.side = check_side(side)

    def extra_repr(self) -> str:
        return f"side={self.side!r}"


class _LabelledGANObjective(_GANObjective):
    def __init__(self, side: str = "generator", real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__(side)
        if real_label == fake_label:
            raise ValueError(f"real_label and fake_label must differ, both are {real_label}")
        self.real_label, self.fake_label = float(real_label), float(fake_label)

    def extra_repr(self) -> str:
        return f"side={self.side!r}, real_label={self.real_label}, fake_label={self.fake_label}"


@register("gan", **_GAN_SPEC)
class GANLoss(_LabelledGANObjective):
    """Vanilla non-saturating GAN loss on logits (BCE with logits); side = generator or discriminator.

    Generator: ``BCE(fake, real_label)``; discriminator: ``BCE(real, real_label) + BCE(fake,
    fake_label)``. ``real_label < 1`` gives one-sided label smoothing. Lists of logits
    (multi-scale discriminators) average the per-scale losses.
    """

    def forward(self, fake_logits: Logits, real_logits: Logits | None = None) -> torch.Tensor:
        return gan_loss(fake_logits, real_logits, self.side, self.real_label, self.fake_label)


@register("lsgan", **_GAN_SPEC)
class LSGANLoss(_LabelledGANObjective):
    """Least-squares GAN loss (LSGAN); side = generator or discriminator.

    Generator: ``mean((fake - real_label)^2)``; discriminator: ``mean((real - real_label)^2) +
    mean((fake - fake_label)^2)``.
    """

    def forward(self, fake_logits: Logits, real_logits: Logits | None = None) -> torch.Tensor:
        return lsgan_loss(fake_logits, real_logits, self.side, self.real_label, self.fake_label)


@register("hinge", **_GAN_SPEC)
class HingeGANLoss(_GANObjective):
    """Hinge GAN loss (SAGAN, BigGAN); side = generator or discriminator.

    Generator: ``-mean(fake)``; discriminator: ``mean(relu(1 - real)) + mean(relu(1 + fake))``.
    """

    def forward(self, fake_logits: Logits, real_logits: Logits | None = None) -> torch.Tensor:
        return hinge_gan_loss(fake_logits, real_logits, self.side)


@register("wgan", **_GAN_SPEC)
class WGANLoss(_GANObjective):
    """Wasserstein GAN critic loss (use with gradient_penalty); side = generator or discriminator.

    Generator: ``-mean(fake)``; discriminator: ``mean(fake) - mean(real)``.
    """

    def forward(self, fake_logits: Logits, real_logits: Logits | None = None) -> torch.Tensor:
        return wgan_loss(fake_logits, real_logits, self.side)


@register("ragan", **_GAN_SPEC)
class RaGANLoss(_LabelledGANObjective):
    """Relativistic average GAN loss as in ESRGAN/BasicSR; both sides need real_logits.

    Generator: ``(BCE(real - mean(fake), 0) + BCE(fake - mean(real), 1)) / 2`` with
    ``real_logits`` detached; discriminator: ``BCE(real - mean(fake).detach(), 1) / 2 +
    BCE(fake - mean(real).detach(), 0) / 2`` (BasicSR's ``l_d_real + l_d_fake``).
    """

    def forward(self, fake_logits: Logits, real_logits: Logits | None = None) -> torch.Tensor:
        return ragan_loss(fake_logits, real_logits, self.side, self.real_label, self.fake_label)


@register(
    "r1",
    kind="adversarial",
    input_range="logits",
    inputs=("real_logits", "real"),
    optional_inputs=("grad_scaler",),
)
class R1Penalty(nn.Module):
    """R1 gradient penalty gamma/2 * E||grad_x D(x)||^2 on real samples, grad-scaler aware.

    ``real`` must have ``requires_grad=True`` and be the tensor the discriminator ran on (any
    float dtype: the entry is not registry-cast to float32, because a cast copy of ``real`` would
    not be in the discriminator's graph; the gradient and its norm are taken in float32 inside).
    The input gradient is taken with ``create_graph=True`` (the penalty trains D). With an
    enabled ``grad_scaler`` the gradient of ``scaler.scale(sum(real_logits))`` is unscaled in
    float32, so small float16 gradients do not underflow. With float16 logits each logit's
    gradient equals the scale itself, so a scale above 65504 (GradScaler's default 2**16)
    overflows: the penalty is then inf/NaN and the scaler skips the step and lowers the scale,
    as for any overflowing step.
    """

    def __init__(self, gamma: float = 10.0) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def forward(self, real_logits: Logits, real: torch.Tensor, grad_scaler: Any = None) -> torch.Tensor:
        return r1_penalty(real_logits, real, self.gamma, grad_scaler)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"


@register(
    "gradient_penalty",
    kind="adversarial",
    input_range="any",
    inputs=("discriminator", "real", "fake"),
    optional_inputs=("grad_scaler",),
)
class GradientPenalty(nn.Module):
    """WGAN-GP gradient penalty weight * E(||grad D(x_hat)||_2 - 1)^2 on real/fake interpolates.

    ``x_hat = eps * real + (1 - eps) * fake``, ``eps ~ U(0, 1)`` per sample. The discriminator
    runs under the caller's autocast; the gradient is unscaled (``grad_scaler``) and its norm
    taken in float32. A discriminator returning a list has its outputs summed.
    """

    def __init__(self, penalty_weight: float = 10.0) -> None:
        super().__init__()
        if penalty_weight < 0:
            raise ValueError(f"penalty_weight must be >= 0, got {penalty_weight}")
        self.penalty_weight = float(penalty_weight)

    def forward(
        self,
        discriminator: Callable[[torch.Tensor], Logits],
        real: torch.Tensor,
        fake: torch.Tensor,
        grad_scaler: Any = None,
    ) -> torch.Tensor:
        return gradient_penalty(discriminator, real, fake, self.penalty_weight, grad_scaler)

    def extra_repr(self) -> str:
        return f"penalty_weight={self.penalty_weight}"


@register(
    "feature_matching",
    kind="adversarial",
    input_range="features",
    inputs=("fake_features", "real_features"),
)
class FeatureMatchingLoss(nn.Module):
    """Discriminator feature matching: L1 between fake and real features (pix2pixHD, HiFi-GAN).

    Averaged over layers, then over discriminators; no gradient flows into ``real_features``.
    """

    def forward(self, fake_features: Features, real_features: Features) -> torch.Tensor:
        return feature_matching_loss(fake_features, real_features)
