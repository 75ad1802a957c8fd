"""Few-step sampling with diffusers schedulers: SR3 super-resolution, conditional and RePaint inpainting.

All samplers take images in [0, 1] and return images in [0, 1]; they work in [-1, 1] inside. The
starting noise is drawn from ``generator`` (an int seeds a CPU ``torch.Generator``), on the CPU when
the generator is a CPU one, then moved to the device: the same seed gives the same result on every
device type up to the model's arithmetic, and bit-equal results on the CPU. DDIM with ``eta=0`` and
DPM-Solver++ are deterministic given the starting noise, so a tiler may pass ``noise=`` cropped
from one full-size draw to keep tiles consistent. DDIM and DDPM end with the scheduler's x0
estimate of the last step (their last ``prev_sample`` is at t = 0, which still holds
``sqrt(1 - a_0)`` of noise); DPM-Solver++ ends on sigma = 0.

Samplers run under ``torch.inference_mode`` and leave the model's train/eval mode alone (call
``model.eval()`` first); ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs the network under
autocast while the scheduler arithmetic stays in float32.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from restore.models.sr3 import SR3UNet

from .objective import DiffusionObjective

__all__ = ["SCHEDULERS", "make_scheduler", "repaint", "sample_inpaint_conditional", "sample_sr"]

SCHEDULERS = ("ddim", "dpm", "ddpm")


def _objective(source: Any) -> DiffusionObjective:
    if isinstance(source, DiffusionObjective):
        return source
    if isinstance(source, nn.Module):
        return DiffusionObjective.from_model(source)
    if source is None:
        return DiffusionObjective()
    raise TypeError(
        f"expected a DiffusionObjective, a model, a config dict or a scheduler, got {type(source).__name__}"
    )


def make_scheduler(name: str, source: Any = None, **overrides: Any) -> Any:
    """A fresh diffusers sampler built from a training schedule's config (same betas, prediction type).

    ``name``: ``"ddim"`` (DDIMScheduler), ``"dpm"`` (DPMSolverMultistepScheduler, DPM-Solver++ order 2
    with dynamic thresholding to [-1, 1]) or ``"ddpm"`` (ancestral DDPMScheduler). ``source``: a
    :class:`DiffusionObjective`, a model (:meth:`DiffusionObjective.from_model`), a diffusers
    scheduler or its config dict; ``None`` is the default DDPM schedule. Timesteps are spaced
    "trailing" (the first step is at t = T - 1, which few-step sampling needs); ``overrides`` are
    passed to ``from_config``.
    """
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    if name not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {name!r}")
    if isinstance(source, dict):
        config = dict(source)
    elif hasattr(source, "config") and not isinstance(source, nn.Module):
        config = dict(source.config)
    else:
        config = dict(_objective(source).scheduler.config)
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    defaults: dict[str, Any] = {"timestep_spacing": "trailing"}
    if name == "ddim":
        cls = DDIMScheduler
    elif name == "dpm":
        cls = DPMSolverMultistepScheduler
        defaults.update(algorithm_type="dpmsolver++", solver_order=2, thresholding=True, sample_max_value=1.0)
    else:
        cls = DDPMScheduler
    return cls.from_config({**config, **defaults, **overrides})


def _generator(generator: int | torch.Generator | None) -> torch.Generator | None:
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool) or not isinstance(generator, int):
        raise TypeError(f"generator must be an int seed, a torch.Generator or None, got {generator!r}")
    return torch.Generator("cpu").manual_seed(generator)


def _initial_noise(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device, noise: Tensor | None
) -> Tensor:
    from diffusers.utils.torch_utils import randn_tensor

    if noise is not None:
        if tuple(noise.shape) != shape:
            raise ValueError(f"noise must have shape {shape}, got {tuple(noise.shape)}")
        return noise.to(device=device, dtype=torch.float32)
    return randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def _model_output(model: nn.Module, x_t: Tensor, t: Tensor, condition: Tensor | None) -> Tensor:
    """The denoiser output of our SR3UNet or of a bare diffusers UNet2DModel, float32."""
    timesteps = t.expand(x_t.shape[0]).to(x_t.device)
    if isinstance(_unwrap(model), SR3UNet):
        out = model(x_t, timesteps=timesteps, condition=condition)
    else:
        x = x_t if condition is None else torch.cat([x_t, condition.to(x_t.dtype)], dim=1)
        out = model(x, timesteps)
        out = getattr(out, "sample", out)
    return out.float()


def _check_image(name: str, x: Tensor, channels: int) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} must be (N, {channels}, H, W), got {tuple(x.shape)}")


def _check_mask(image: Tensor, mask: Tensor) -> None:
    _check_image("image", image, 3)
    expected = (image.shape[0], 1, *image.shape[-2:])
    if tuple(mask.shape) != expected:
        raise ValueError(f"mask must be (N, 1, H, W) = {expected} to match image, got {tuple(mask.shape)}")


def _check_steps(steps: int) -> None:
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")


def _denoise_loop(
    model: nn.Module,
    condition: Tensor | None,
    shape: tuple[int, ...],
    device: torch.device,
    steps: int,
    scheduler: str,
    generator: int | torch.Generator | None,
    eta: float,
    noise: Tensor | None,
    autocast_dtype: torch.dtype | None,
    objective: DiffusionObjective | None,
) -> Tensor:
    """Run a sampler from noise; returns the image estimate in [-1, 1] (float32, not clamped).

    A residual model's sample is a scaled difference to its base (:meth:`SR3UNet.decode`): the
    scheduler does not clip it to [-1, 1], and the base is added back at the end.
    """
    _check_steps(steps)
    if eta != 0 and scheduler != "ddim":
        raise ValueError(f"eta applies to the 'ddim' scheduler only, got eta={eta} with {scheduler!r}")
    inner = _unwrap(model)
    residual = getattr(inner, "residual", False)
    unclipped = {"clip_sample": False, "thresholding": False} if residual else {}
    sampler = make_scheduler(scheduler, objective if objective is not None else model, **unclipped)
    with warnings.catch_warnings():  # DPM-Solver's set_timesteps trips a numpy 2 copy= DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        sampler.set_timesteps(steps, device=device)
    gen = _generator(generator)
    x = _initial_noise(shape, gen, device, noise) * sampler.init_noise_sigma
    extra = {"eta": eta} if scheduler == "ddim" else {}
    for i, t in enumerate(sampler.timesteps):
        model_input = sampler.scale_model_input(x, t)
        with _autocast(device, autocast_dtype):
            out = _model_output(model, model_input, t, condition)
        result = sampler.step(out, t, x, generator=gen, **extra)
        x = result.prev_sample.float()
        if i == len(sampler.timesteps) - 1 and getattr(result, "pred_original_sample", None) is not None:
            x = result.pred_original_sample.float()  # DDIM/DDPM stop at t = 0, still sqrt(1 - a_0) noise
    return inner.decode(x, inner.base(condition)) if residual else x


@torch.inference_mode()
def sample_sr(
    model: nn.Module,
    lr: Tensor,
    steps: int = 20,
    scheduler: str = "ddim",
    generator: int | torch.Generator | None = None,
    eta: float = 0.0,
    *,
    noise: Tensor | None = None,
    autocast_dtype: torch.dtype | None = None,
    objective: DiffusionObjective | None = None,
) -> Tensor:
    """SR3 super-resolution: ``lr (N, 3, h, w)`` in [0, 1] -> ``(N, 3, h*s, w*s)`` in [0, 1].

    ``model`` is an :class:`SR3UNet` with ``cond_channels=3`` and ``scale = s``; the condition is the
    bicubic upsample of ``lr`` (:func:`restore.models.sr3.sr_condition`); a residual model's sample
    is added to that upsample (:meth:`SR3UNet.decode`). ``scheduler``: ``"ddim"``,
    ``"dpm"`` or ``"ddpm"`` (:func:`make_scheduler`); ``eta`` is DDIM's noise (0 = deterministic).
    ``noise`` replaces the starting noise ``(N, 3, h*s, w*s)``.
    """
    inner = _unwrap(model)
    if not isinstance(inner, SR3UNet) or inner.cond_channels != 3:
        raise ValueError("sample_sr needs an SR3UNet with cond_channels=3 (an SR model, e.g. 'sr3_x4')")
    _check_image("lr", lr, 3)
    condition = inner.condition(lr)
    x0 = _denoise_loop(
        model, condition, tuple(condition.shape), lr.device, steps, scheduler, generator, eta, noise,
        autocast_dtype, objective,
    )
    return ((x0 + 1) / 2).clamp(0, 1)


@torch.inference_mode()
def sample_inpaint_conditional(
    model: nn.Module,
    image: Tensor,
    mask: Tensor,
    steps: int = 20,
    scheduler: str = "ddim",
    generator: int | torch.Generator | None = None,
    eta: float = 0.0,
    *,
    noise: Tensor | None = None,
    autocast_dtype: torch.dtype | None = None,
    objective: DiffusionObjective | None = None,
) -> Tensor:
    """Mask-conditional inpainting: ``image (N, 3, H, W)`` in [0, 1], ``mask (N, 1, H, W)`` (1 = hole).

    ``model`` is an :class:`SR3UNet` with ``cond_channels=4`` (condition = masked image and mask,
    :func:`restore.models.sr3.inpaint_condition`; a residual model is conditioned on, and adds its
    sample to, the push-pull fill). Known pixels are pasted back: they equal the
    input exactly. Returns ``(N, 3, H, W)`` in [0, 1].
    """
    inner = _unwrap(model)
    if not isinstance(inner, SR3UNet) or inner.cond_channels != 4:
        raise ValueError(
            "sample_inpaint_conditional needs an SR3UNet with cond_channels=4 (e.g. 'diffusion_inpaint_tiny')"
        )
    _check_mask(image, mask)
    condition = inner.condition(image, mask)
    x0 = _denoise_loop(
        model, condition, tuple(image.shape), image.device, steps, scheduler, generator, eta, noise,
        autocast_dtype, objective,
    )
    mask = mask.to(image.dtype)
    return mask * ((x0 + 1) / 2).clamp(0, 1).to(image.dtype) + (1 - mask) * image


@torch.inference_mode()
def repaint(
    model: nn.Module,
    image: Tensor,
    mask: Tensor,
    steps: int = 50,
    jump_length: int = 10,
    jump_n_sample: int = 10,
    generator: int | torch.Generator | None = None,
    eta: float = 0.0,
    *,
    autocast_dtype: torch.dtype | None = None,
    objective: DiffusionObjective | None = None,
) -> Tensor:
    """RePaint inpainting (Lugmayr et al. 2022) with diffusers' ``RePaintScheduler``.

    ``model`` is an unconditional denoiser: an :class:`SR3UNet` with ``cond_channels=0`` or a bare
    diffusers ``UNet2DModel`` with 3 input channels (give its ``objective`` unless it is the DDPM
    default: 1000 steps, linear betas, epsilon). Any prediction type works (the output is converted
    to epsilon for the scheduler). ``image (N, 3, H, W)`` in [0, 1], ``mask (N, 1, H, W)`` 1 = hole;
    ``jump_length`` / ``jump_n_sample`` are the resampling schedule (RePaint's j and r; the network
    runs about ``steps * jump_n_sample`` times when ``steps > jump_length``). Known pixels equal the
    input exactly. Returns ``(N, 3, H, W)`` in [0, 1].
    """
    from diffusers import RePaintScheduler

    _check_steps(steps)
    _check_mask(image, mask)
    if jump_length < 1 or jump_n_sample < 1:
        raise ValueError(f"jump_length and jump_n_sample must be >= 1, got {jump_length}, {jump_n_sample}")
    inner = _unwrap(model)
    if isinstance(inner, SR3UNet) and inner.cond_channels != 0:
        raise ValueError(
            f"repaint needs an unconditional model (cond_channels=0), got cond_channels={inner.cond_channels}"
        )
    objective = objective if objective is not None else _objective(model)
    config = objective.scheduler.config
    sampler = RePaintScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_start=config.beta_start,
        beta_end=config.beta_end,
        beta_schedule=config.beta_schedule,
        eta=eta,
    )
    device = image.device
    sampler.set_timesteps(steps, jump_length, jump_n_sample, device=device)
    gen = _generator(generator)
    known = (1 - mask).float()
    original = image.float() * 2 - 1
    x = _initial_noise(tuple(image.shape), gen, device, None)
    t_last = sampler.timesteps[0] + 1
    for t in sampler.timesteps:
        if t < t_last:
            with _autocast(device, autocast_dtype):
                out = _model_output(model, x, t, None)
            eps = objective.predicted_eps(out, x, t.expand(x.shape[0]).to(device))
            x = sampler.step(eps, t, x, original, known, generator=gen).prev_sample.float()
        else:
            x = sampler.undo_step(x, t_last, generator=gen).float()
        t_last = t
    out = ((x + 1) / 2).clamp(0, 1)
    return mask.to(image.dtype) * out.to(image.dtype) + (1 - mask.to(image.dtype)) * image
