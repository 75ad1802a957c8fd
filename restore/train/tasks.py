"""Tasks: how a clean batch becomes a training pair, and how the generator is called on it.

A task turns ``target (N, 3, H, W)`` into a dict of named tensors on the training device, seeded by
the batch's per-item seeds so a pair is reproducible (and identical after a resume):

- ``sr``: ``input`` = degradation(target) at ``scale`` (bicubic, Real-ESRGAN, ...), pred = G(input);
- ``deblur``: ``input`` = blur (+ optional noise/JPEG) of target, pred = G(input);
- ``inpaint``: ``mask`` (N, 1, H, W), 1 = hole; ``input`` = target with holes filled with 0,
  pred = G(input, mask).

Audio tasks turn clean speech ``target (N, 1, T)`` (and a batch of noise clips) into a pair; both
sides are divided by the input's RMS level (per item), which is how inference runs the models too
(:func:`normalise_level`), so a model never has to learn the recording level:

- ``audio_denoise``: ``input`` = noise at a random SNR, reverb, gain, clipping (``audio_denoise``
  degradation), pred = G(input);
- ``audio_bandwidth``: ``input`` = the target band-limited (resampled down and back up), pred = G(input).

Diffusion tasks (:class:`DiffusionTask`) make the pairs of an image task, plus the diffusion draw
(``noise`` and a uniform ``timestep_u`` that becomes the timestep), and train a denoiser
(:class:`restore.models.sr3.SR3UNet`) with the ``denoising`` loss on its output; image losses apply
to the predicted x0 (the "pred"):

- ``diffusion_sr``: pairs as ``sr``; the model is conditioned on the bicubic upsample of ``input``;
- ``diffusion_inpaint``: pairs as ``inpaint``; the model is conditioned on the masked image and mask;
- ``diffusion``: an unconditional model (RePaint's); pairs as ``inpaint``, whose input and mask only
  serve validation, where the model inpaints them with RePaint.

Datasets that already carry an ``"input"`` (paired folders) skip the degradation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

__all__ = [
    "AUDIO_TASKS",
    "DIFFUSION_TASKS",
    "TASK_NAMES",
    "AudioTask",
    "DiffusionTask",
    "Task",
    "batch_generator",
    "build_task",
    "diffusion_options",
    "normalise_level",
    "pair_kind",
]

IMAGE_TASKS = ("sr", "deblur", "inpaint")
AUDIO_TASKS = ("audio_denoise", "audio_bandwidth")
DIFFUSION_TASKS = ("diffusion_sr", "diffusion_inpaint", "diffusion")
TASK_NAMES = IMAGE_TASKS + AUDIO_TASKS + DIFFUSION_TASKS
# The image task whose pairs (and validation protocol) each diffusion task uses, and the condition
# channels of the model it trains (restore.models.sr3.SR3UNet.cond_channels).
DIFFUSION_PAIRS = {"diffusion_sr": "sr", "diffusion_inpaint": "inpaint", "diffusion": "inpaint"}
DIFFUSION_COND_CHANNELS = {"diffusion_sr": 3, "diffusion_inpaint": 4, "diffusion": 0}
VALIDATION_SEED = 0  # the sampler seed at validation: the same starting noise at every evaluation
LEVEL_FLOOR = 1e-3  # RMS floor of the level normalisation (silence is not blown up)


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


def normalise_level(audio: Tensor, floor: float = LEVEL_FLOOR) -> Tensor:
    """Per-item RMS level ``(N, 1, 1)`` of ``audio (N, C, T)``, floored: divide by it before a model,
    multiply after."""
    with torch.autocast(device_type=audio.device.type, enabled=False):
        norm = torch.linalg.vector_norm(audio.float(), dim=(1, 2), keepdim=True)  # no squared copy
        return (norm / math.sqrt(audio.shape[1] * audio.shape[2])).clamp_min(floor)


@dataclass
class Task:
    """A training task (see the module docstring). ``scale`` is 1 except for super-resolution."""

    name: str
    scale: int
    degradation: nn.Module | None
    mask: nn.Module | None
    modality: str = "image"

    def make_pair(
        self, batch: dict[str, Any], device: torch.device, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """``{"target", "input"[, "mask"]}`` on ``device`` for a dataset batch.

        ``generator`` replaces the one seeded from ``batch["seed"]`` (for a caller that goes on
        drawing from the same stream).
        """
        target = batch["target"].to(device, non_blocking=True)
        pair = {"target": target}
        if generator is None and "seed" in batch:
            generator = batch_generator(batch["seed"], device)
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


@dataclass
class AudioTask:
    """An audio training task (``audio_denoise`` or ``audio_bandwidth``; see the module docstring)."""

    name: str
    degradation: nn.Module
    sample_rate: int
    scale: int = 1
    modality: str = "audio"

    def make_pair(self, batch: dict[str, Any], device: torch.device) -> dict[str, Tensor]:
        """``{"target", "input"}`` ``(N, 1, T)`` on ``device``, both divided by the input's level."""
        target = batch["target"].to(device, non_blocking=True)
        if "input" in batch:
            noisy = batch["input"].to(device, non_blocking=True)
        else:
            generator = batch_generator(batch["seed"], device) if "seed" in batch else None
            noise = batch.get("noise")
            noise = noise.to(device, non_blocking=True) if noise is not None else None
            with torch.no_grad():
                if self.name == "audio_denoise":
                    noisy = self.degradation(target, noise, sample_rate=self.sample_rate, generator=generator)
                else:
                    noisy = self.degradation(target, sample_rate=self.sample_rate, generator=generator)
        level = normalise_level(noisy)
        return {"input": noisy / level, "target": target / level}

    def forward(self, model: nn.Module, pair: dict[str, Tensor]) -> Tensor:
        """The generator's prediction for a pair."""
        return model(pair["input"])

    def condition(self, pair: dict[str, Tensor]) -> Tensor:
        """What a conditional discriminator sees beside the waveform: the degraded input."""
        return pair["input"]


def pair_kind(task: Any) -> str:
    """The image task whose pairs and validation protocol ``task`` uses (``sr`` for ``diffusion_sr``)."""
    return getattr(task, "base", task).name


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP / Accelerate wrappers (torch.compile's forwards attributes itself)."""
    return getattr(model, "module", model)


@dataclass
class DiffusionTask:
    """A diffusion training task: ``diffusion_sr``, ``diffusion_inpaint`` or ``diffusion``.

    ``base`` is the image task that makes the pairs (``sr`` or ``inpaint``); ``options`` are
    :func:`diffusion_options`. :meth:`forward` in training mode runs one denoising step on
    ``x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise`` (``x0 = 2 target - 1``) and stores in the pair what
    the ``denoising`` loss takes (:attr:`loss_inputs`): ``model_output``, ``model_target``, and per
    sample ``timestep_weight`` (``weighting``: ``p2`` or ``min_snr``) and ``huber_c`` (when
    ``huber_c`` is set: scheduled by ``huber_schedule``). It returns the predicted x0 in [0, 1]
    (clipped there when ``x0_clamp``), so that image losses (``l1``, ``lpips``, ``ssim``...) apply
    to it. In eval mode (validation) it samples with ``sample_steps`` steps of ``scheduler`` from a
    fixed seed: SR3 sampling, mask-conditional inpainting, or RePaint for the unconditional model.
    The noise schedule and prediction type are the model's
    (:meth:`restore.diffusion.DiffusionObjective.from_model`).
    """

    name: str
    base: Task
    options: dict[str, Any]
    modality: str = "image"
    loss_inputs: ClassVar[tuple[str, ...]] = ("model_output", "model_target", "timestep_weight", "huber_c")
    _objectives: dict[tuple, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def scale(self) -> int:
        """The SR factor (1 for inpainting and unconditional models)."""
        return self.base.scale

    @property
    def cond_channels(self) -> int:
        """Condition channels of the model this task trains (3: SR, 4: masked image + mask, 0: none)."""
        return DIFFUSION_COND_CHANNELS[self.name]

    def objective(self, model: nn.Module) -> Any:
        """The model's :class:`restore.diffusion.DiffusionObjective` (cached by schedule)."""
        from restore.diffusion import DiffusionObjective

        inner = _unwrap(model)
        key = tuple(
            getattr(inner, name, None) for name in ("num_train_timesteps", "beta_schedule", "prediction_type")
        )
        if key not in self._objectives:
            self._objectives[key] = DiffusionObjective.from_model(inner)
        return self._objectives[key]

    def make_pair(self, batch: dict[str, Any], device: torch.device) -> dict[str, Tensor]:
        """The image task's pair plus ``noise`` (like ``target``) and ``timestep_u (N,)`` in [0, 1).

        Both are drawn after the degradation from the same generator (seeded by the batch's seeds),
        so a pair is reproducible and identical after a resume. ``timestep_u`` becomes the timestep
        ``floor(u * num_train_timesteps)`` of the model's schedule in :meth:`forward`.
        """
        generator = batch_generator(batch["seed"], device) if "seed" in batch else None
        pair = self.base.make_pair(batch, device, generator=generator)
        target = pair["target"]
        pair["timestep_u"] = torch.rand(target.shape[0], generator=generator, device=target.device)
        pair["noise"] = torch.randn(
            target.shape, generator=generator, device=target.device, dtype=torch.float32
        )
        return pair

    def timesteps(self, pair: dict[str, Tensor], objective: Any) -> Tensor:
        """``(N,)`` long timesteps of a pair (from ``timestep_u``)."""
        steps = objective.num_train_timesteps
        return (pair["timestep_u"].float() * steps).long().clamp_(0, steps - 1)

    def timestep_weight(self, t: Tensor, objective: Any) -> Tensor | None:
        """Per-sample weights ``(N,)`` of the denoising loss, or None (no ``weighting``)."""
        from restore.diffusion import min_snr_weights, p2_weights

        o = self.options
        if o["weighting"] == "p2":
            return p2_weights(t, objective, o["p2_gamma"], o["p2_k"])
        if o["weighting"] == "min_snr":
            return min_snr_weights(t, objective, o["min_snr_gamma"])
        return None

    def forward(self, model: nn.Module, pair: dict[str, Tensor]) -> Tensor:
        """Training mode: the predicted x0 in [0, 1] (and the loss inputs stored in ``pair``);
        eval mode: a sampled image in [0, 1]."""
        if not model.training:
            return self.sample(model, pair)
        from restore.diffusion import scheduled_huber_c

        if "noise" not in pair or "timestep_u" not in pair:
            raise ValueError(
                f"task {self.name!r} trains on pairs from its make_pair (with 'noise' and 'timestep_u'); "
                f"got {sorted(pair)}"
            )
        inner = _unwrap(model)
        objective = self.objective(inner)
        t = self.timesteps(pair, objective)
        target = pair["target"]
        condition = inner.condition(pair["input"], pair.get("mask"))
        base = inner.base(condition)  # residual diffusion's base, else None
        with torch.autocast(device_type=target.device.type, enabled=False):
            x0 = target.float() * 2 - 1
            x0 = inner.encode(x0, base)  # residual diffusion: the scaled difference to the base
        noise = pair["noise"]
        x_t = objective.noisy(x0, noise, t)
        output = model(x_t, timesteps=t, condition=condition)
        pair["timesteps"] = t
        pair["model_output"] = output
        pair["model_target"] = objective.target(x0, noise, t)
        weight = self.timestep_weight(t, objective)
        if weight is not None:
            pair["timestep_weight"] = weight
        if self.options["huber_c"] is not None:
            c, schedule = self.options["huber_c"], self.options["huber_schedule"]
            pair["huber_c"] = scheduled_huber_c(t, objective, c, schedule)
        image = (inner.decode(objective.predicted_x0(output, x_t, t), base) + 1) / 2
        return image.clamp(0, 1) if self.options["x0_clamp"] else image

    def sample(self, model: nn.Module, pair: dict[str, Tensor]) -> Tensor:
        """The sampler's image in [0, 1] for a pair (``sample_steps`` steps, seed 0)."""
        from restore.diffusion import repaint, sample_inpaint_conditional, sample_sr

        steps, scheduler = self.options["sample_steps"], self.options["scheduler"]
        objective = self.objective(model)
        kwargs = {"generator": VALIDATION_SEED, "objective": objective}
        if self.name == "diffusion_sr":
            return sample_sr(model, pair["input"], steps, scheduler, **kwargs)
        if self.name == "diffusion_inpaint":
            return sample_inpaint_conditional(model, pair["input"], pair["mask"], steps, scheduler, **kwargs)
        return repaint(model, pair["input"], pair["mask"], steps, **kwargs)

    def condition(self, pair: dict[str, Tensor]) -> Tensor:
        """What a conditional discriminator sees beside the image (as the image task)."""
        return self.base.condition(pair)


def diffusion_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """``task.diffusion`` merged into the defaults and checked (a ``ValueError`` names a bad key)."""
    from losses.registry import did_you_mean
    from restore.diffusion.objective import HUBER_SCHEDULES, WEIGHTINGS
    from restore.diffusion.sampling import SCHEDULERS

    from .config import DIFFUSION_DEFAULTS

    options = dict(options or {})
    unknown = [key for key in options if key not in DIFFUSION_DEFAULTS]
    if unknown:
        hint = did_you_mean(unknown[0], list(DIFFUSION_DEFAULTS))
        raise ValueError(
            f"unknown task.diffusion option {unknown[0]!r}.{hint} Options: {', '.join(DIFFUSION_DEFAULTS)}"
        )
    o = {**DIFFUSION_DEFAULTS, **options}

    def number(key: str, low: float, low_ok: bool) -> None:
        value = o[key]
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or not (value >= low if low_ok else value > low):
            bound = f"{'>=' if low_ok else '>'} {low:g}"
            raise ValueError(f"task.diffusion.{key} must be a number {bound}, got {value!r}")
        o[key] = float(value)

    if o["weighting"] not in WEIGHTINGS:
        raise ValueError(f"task.diffusion.weighting must be one of {WEIGHTINGS}, got {o['weighting']!r}")
    number("p2_gamma", 0.0, True)
    number("p2_k", 0.0, False)
    number("min_snr_gamma", 0.0, False)
    if o["huber_c"] is not None:
        number("huber_c", 0.0, False)
        if o["huber_c"] > 1:
            raise ValueError(f"task.diffusion.huber_c must be in (0, 1] or null, got {o['huber_c']!r}")
    if o["huber_schedule"] not in HUBER_SCHEDULES:
        raise ValueError(
            f"task.diffusion.huber_schedule must be one of {HUBER_SCHEDULES}, got {o['huber_schedule']!r}"
        )
    steps = o["sample_steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"task.diffusion.sample_steps must be a positive integer, got {steps!r}")
    if o["scheduler"] not in SCHEDULERS:
        raise ValueError(f"task.diffusion.scheduler must be one of {SCHEDULERS}, got {o['scheduler']!r}")
    if not isinstance(o["x0_clamp"], bool):
        raise ValueError(f"task.diffusion.x0_clamp must be true or false, got {o['x0_clamp']!r}")
    return o


def _audio_degradation(name: str, spec: Any) -> nn.Module:
    from restore.degrade.audio import AudioBandwidthDegradation, AudioDenoiseDegradation

    cls = AudioDenoiseDegradation if name == "audio_denoise" else AudioBandwidthDegradation
    if spec in (None, "bicubic", name):
        return cls()
    if isinstance(spec, dict):
        kwargs = dict(spec)
        if kwargs.pop("name", name) != name:
            raise ValueError(f"task {name!r} takes degradation arguments of {name!r}, got {spec!r}")
        return cls(**kwargs)
    raise ValueError(f"task.degradation for {name!r} must be null or a dict of arguments, got {spec!r}")


def build_task(config: Any, sample_rate: int = 16000) -> Task | AudioTask | DiffusionTask:
    """A :class:`Task`, :class:`AudioTask` or :class:`DiffusionTask` from a
    :class:`restore.train.config.TaskConfig`."""
    if config.name not in TASK_NAMES:
        raise ValueError(f"task.name must be one of {TASK_NAMES}, got {config.name!r}")
    if config.name in DIFFUSION_TASKS:
        base = build_task(dataclasses.replace(config, name=DIFFUSION_PAIRS[config.name]))
        return DiffusionTask(config.name, base, diffusion_options(getattr(config, "diffusion", None)))
    if config.name in AUDIO_TASKS:
        return AudioTask(config.name, _audio_degradation(config.name, config.degradation), sample_rate)
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
