"""Diffusion restoration: SR3-style conditional super-resolution and inpainting with diffusers.

- :mod:`restore.diffusion.objective`: the DDPM forward process, epsilon/v/x0 targets, and the
  losses (l2/l1/scheduled pseudo-Huber, P2 and min-SNR weighting, image losses on the predicted x0);
- :mod:`restore.diffusion.sampling`: DDIM / DPM-Solver / DDPM samplers for SR and mask-conditional
  inpainting, and RePaint over an unconditional UNet.

The network is :class:`restore.models.sr3.SR3UNet` (registered as ``sr3_x4``, ``sr3_x4_tiny``,
``diffusion_inpaint_tiny``, ``ddpm_unconditional_tiny``). diffusers is imported on first use, not
by ``import restore.diffusion``.
"""

from restore.models.sr3 import SR3UNet, inpaint_condition, sr_condition

from .objective import (
    DiffusionObjective,
    denoising_loss,
    min_snr_weights,
    p2_weights,
    scheduled_huber_c,
    scheduled_pseudo_huber,
    x0_loss,
)
from .sampling import SCHEDULERS, make_scheduler, repaint, sample_inpaint_conditional, sample_sr

__all__ = [
    "SCHEDULERS",
    "DiffusionObjective",
    "SR3UNet",
    "denoising_loss",
    "inpaint_condition",
    "make_scheduler",
    "min_snr_weights",
    "p2_weights",
    "repaint",
    "sample_inpaint_conditional",
    "sample_sr",
    "scheduled_huber_c",
    "scheduled_pseudo_huber",
    "sr_condition",
    "x0_loss",
]
