"""A diffusion model as an image-to-image module: ``DiffusionSampler(model, task="sr")(lr)``.

:class:`restore.infer.Predictor` runs models that map inputs to an output in one call. A diffusion
denoiser needs a sampling loop; this wrapper runs it (:mod:`restore.diffusion.sampling`) with a
fixed number of ``steps``, a ``scheduler`` and a ``seed``, and carries a spec of the task it serves
(``sr`` at the model's scale, or ``inpaint`` with inputs image and mask), so the Predictor tiles it
and the API and CLI treat it as any other model.

Determinism: every call draws its starting noise from a CPU generator seeded with ``seed``, so the
same input gives bit-identical output on the CPU (and the same noise on every device). Each tile of
a tiled run is seeded the same way: tiles are deterministic but not equal to a whole-image run, and
the overlap only blends neighbouring tiles (a sampler's output is never exact at tile borders: the
starting noise differs, and attention sees the whole tile). For SR the spec therefore declares a
blending radius of :data:`SR_BLEND_RADIUS` input pixels as its receptive field, which keeps the
minimal tile small (49 input pixels): attention costs grow with the square of the tile area.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from restore.models.registry import ModelSpec, spec_of

__all__ = ["DEFAULT_SEED", "DEFAULT_STEPS", "SR_BLEND_RADIUS", "DiffusionSampler", "sampler_task"]

DEFAULT_STEPS = 20
DEFAULT_SEED = 0
SR_BLEND_RADIUS = 8  # input pixels: the tiles' blending radius of SR sampling (module docstring)
TASKS = ("sr", "inpaint")


def sampler_task(model: nn.Module) -> str:
    """The task a diffusion model serves: ``"sr"`` (conditioned on a low-resolution image) or
    ``"inpaint"`` (mask-conditional, or unconditional through RePaint)."""
    cond = _cond_channels(model)
    if cond == 3:
        return "sr"
    if cond in (0, 4):
        return "inpaint"
    raise ValueError(f"no sampler for a diffusion model with cond_channels={cond}")


def _cond_channels(model: nn.Module) -> int | None:
    cond = getattr(model, "cond_channels", None)
    if cond is None:
        cond = spec_of(model).config.get("cond_channels")
    return cond


class DiffusionSampler(nn.Module):
    """Runs a diffusion model's sampler as one forward: ``forward(lr)`` or ``forward(image, mask)``.

    ``model``: an :class:`restore.models.sr3.SR3UNet` (with ``.spec``, task ``"diffusion"``):
    ``cond_channels=3`` serves ``task="sr"`` (:func:`restore.diffusion.sample_sr`), ``4`` and ``0``
    serve ``task="inpaint"`` (:func:`restore.diffusion.sample_inpaint_conditional`, and
    :func:`restore.diffusion.repaint` for the unconditional model). ``steps``: sampler steps
    (network evaluations; RePaint runs more when ``steps`` exceeds its jump length 10).
    ``scheduler``: ``"ddim"`` (default, deterministic), ``"dpm"`` (DPM-Solver++) or ``"ddpm"``;
    RePaint has its own and takes none. ``seed``: the starting noise (see the module docstring).
    Inputs and output are in [0, 1]: ``lr (N, 3, h, w) -> (N, 3, h*s, w*s)``, or
    ``image (N, 3, H, W), mask (N, 1, H, W) (1 = hole) -> (N, 3, H, W)`` with known pixels kept.
    """

    def __init__(
        self,
        model: nn.Module,
        task: str | None = None,
        steps: int = DEFAULT_STEPS,
        scheduler: str | None = None,
        seed: int = DEFAULT_SEED,
    ) -> None:
        super().__init__()
        from restore.diffusion import SCHEDULERS, DiffusionObjective

        spec = spec_of(model)
        if spec.task != "diffusion":
            raise ValueError(f"DiffusionSampler needs a diffusion model, got {spec.name!r} ({spec.task!r})")
        served = sampler_task(model)
        task = served if task is None else task
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if task != served:
            raise ValueError(
                f"diffusion model {spec.name!r} (cond_channels={_cond_channels(model)}) serves {served!r}, "
                f"not {task!r}"
            )
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.repaint = _cond_channels(model) == 0
        if self.repaint and scheduler is not None:
            raise ValueError(
                f"model {spec.name!r} is unconditional and inpaints with RePaint, which has its own "
                f"scheduler; scheduler={scheduler!r} does not apply"
            )
        scheduler = "ddim" if scheduler is None else scheduler
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
        self.model = model.eval()
        self.task = task
        self.steps = steps
        self.scheduler = scheduler
        self.seed = seed
        self.objective = DiffusionObjective.from_model(model)
        self.spec = self._spec(spec, task)
        self.config = dict(self.spec.config)

    def _spec(self, spec: ModelSpec, task: str) -> ModelSpec:
        """The model's spec as the served task: ``sr`` at its scale, or ``inpaint`` taking a mask."""
        if task == "sr":
            radius = min(spec.receptive_field, SR_BLEND_RADIUS)
            return dataclasses.replace(spec, task="sr", inputs=("image",), receptive_field=radius)
        return dataclasses.replace(spec, task="inpaint", scale=1, inputs=("image", "mask"))

    def extra_repr(self) -> str:
        scheduler = "repaint" if self.repaint else self.scheduler
        return f"task={self.task!r}, steps={self.steps}, scheduler={scheduler!r}, seed={self.seed}"

    def forward(self, image: Tensor, mask: Tensor | None = None) -> Tensor:
        from restore.diffusion import repaint, sample_inpaint_conditional, sample_sr

        generator = torch.Generator("cpu").manual_seed(self.seed)
        common = {"generator": generator, "objective": self.objective}
        if self.task == "sr":
            if mask is not None:
                raise ValueError("an SR diffusion model takes no mask")
            return sample_sr(self.model, image, self.steps, self.scheduler, **common)
        if mask is None:
            raise ValueError("inpainting needs a mask (N, 1, H, W), 1 = hole")
        mask = mask.to(image.dtype)
        if self.repaint:
            return repaint(self.model, image, mask, self.steps, **common)
        return sample_inpaint_conditional(self.model, image, mask, self.steps, self.scheduler, **common)
