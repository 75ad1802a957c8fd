"""SR3-style conditional diffusion UNet (Saharia et al. 2021) built on ``diffusers.UNet2DModel``.

The network denoises ``x_t`` (3 channels, in [-1, 1]) given a condition concatenated along the
channels: the bicubic-upsampled low-resolution image for super-resolution (``cond_channels=3``),
the masked image and the mask for mask-conditional inpainting (``cond_channels=4``), or nothing
for an unconditional DDPM used by RePaint (``cond_channels=0``). It always runs at the output
resolution. Training and sampling live in :mod:`restore.diffusion`; the state dict is the diffusers
UNet's own keys under ``unet.``, so a diffusers ``UNet2DModel`` can be wrapped with
:meth:`SR3UNet.from_diffusers` and its weights moved either way.

Residual diffusion (``residual=True``, as SRDiff, Li et al. 2022): the process diffuses
``residual_scale * (image - base)`` instead of the image, where ``base`` is a cheap estimate of the
answer: the bicubic upsample for SR, the push-pull fill (:func:`restore.models.pushpull.push_pull_fill`)
for inpainting, which then also replaces the zeroed masked image in the condition. The network only
has to add what the base lacks, which a small model trained briefly can learn; ``residual_scale``
brings the residual's spread near the images' (bicubic x4 residuals have a standard deviation of
0.09 in [-1, 1] on BSDS500 patches, images 0.39: a scale of 4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register_model

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
# The tiny UNet of the CPU-trainable models (281k parameters), conditioned by each on its own input
TINY_UNET = {
    "block_out_channels": (16, 32, 32),
    "layers_per_block": 1,
    "attention": True,
    "norm_num_groups": 8,
}
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


def sr_condition(lr: Tensor, scale: int) -> Tensor:
    """The SR condition: ``lr (N, 3, h, w)`` in [0, 1] -> bicubic ``(N, 3, h*scale, w*scale)`` in [-1, 1].

    Runs in float32 with autocast off; clamped to [-1, 1] (bicubic overshoots).
    """
    with torch.autocast(device_type=lr.device.type, enabled=False):
        x = lr.float() * 2 - 1
        if scale != 1:
            x = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
        return x.clamp(-1, 1)


def _check_mask(image: Tensor, mask: Tensor) -> None:
    if mask.shape[1] != 1 or mask.shape[-2:] != image.shape[-2:] or mask.shape[0] != image.shape[0]:
        raise ValueError(
            f"mask must be (N, 1, H, W) matching image {tuple(image.shape)}, got {tuple(mask.shape)}"
        )


def inpaint_condition(image: Tensor, mask: Tensor) -> Tensor:
    """The inpainting condition ``(N, 4, H, W)``: the image in [-1, 1] with holes set to 0, and the mask.

    ``image (N, 3, H, W)`` in [0, 1]; ``mask (N, 1, H, W)``, 1 = hole. Float32.
    """
    _check_mask(image, mask)
    with torch.autocast(device_type=image.device.type, enabled=False):
        mask = mask.float()
        return torch.cat([(image.float() * 2 - 1) * (1 - mask), mask], dim=1)


def inpaint_residual_base(image: Tensor, mask: Tensor) -> Tensor:
    """The residual inpainting base: the push-pull fill of ``image`` in [-1, 1], ``(N, 3, H, W)``. Float32."""
    from .pushpull import push_pull_fill

    with torch.autocast(device_type=image.device.type, enabled=False):
        return push_pull_fill(image.float(), mask.float()) * 2 - 1


def _block_types(levels: int, attention: bool) -> tuple[list[str], list[str]]:
    """Down/up block names: plain ResNet blocks, with attention at the lowest resolution if asked."""
    down = ["DownBlock2D"] * (levels - 1) + ["AttnDownBlock2D" if attention else "DownBlock2D"]
    up = ["AttnUpBlock2D" if attention else "UpBlock2D"] + ["UpBlock2D"] * (levels - 1)
    return down, up


def _public_config(config: Any) -> dict[str, Any]:
    """A diffusers config as a JSON-friendly dict (no ``_class_name``/``_diffusers_version`` keys)."""
    out = {}
    for key, value in dict(config).items():
        if key.startswith("_"):
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


@register_model(
    "sr3_x4_tiny",
    task="diffusion",
    config={**TINY_UNET, "cond_channels": 3, "scale": 4},
    scale=4,
    size_multiple=1,
    receptive_field=32,
    summary="SR3 diffusion x4 super-resolution UNet, 3 levels of 16-32 channels (281k params)",
)
@register_model(
    "sr3_x4",
    task="diffusion",
    config={
        "block_out_channels": (32, 64, 128),
        "layers_per_block": 2,
        "attention": True,
        "norm_num_groups": 16,
        "cond_channels": 3,
        "scale": 4,
    },
    scale=4,
    size_multiple=1,
    receptive_field=32,
    summary="SR3 diffusion x4 super-resolution UNet, 3 levels of 32-128 channels (3.9M params)",
)
@register_model(
    "diffusion_inpaint_tiny",
    task="diffusion",
    config={**TINY_UNET, "cond_channels": 4, "scale": 1},
    scale=1,
    size_multiple=4,
    receptive_field=64,
    inputs=("image", "mask"),
    summary="Mask-conditional diffusion inpainting UNet (masked image + mask), 281k params",
)
@register_model(
    "ddpm_unconditional_tiny",
    task="diffusion",
    config={**TINY_UNET, "cond_channels": 0, "scale": 1},
    scale=1,
    size_multiple=4,
    receptive_field=64,
    summary="Unconditional DDPM UNet (for RePaint inpainting), 281k params",
)
class SR3UNet(nn.Module):
    """Conditional diffusion UNet (SR3): diffusers UNet2DModel on ``x_t`` concatenated with a condition.

    Denoiser call (training and sampling)::

        out = model(x_t, timesteps=t, condition=c)  # x_t (N,3,H,W) in [-1,1], t (N,) long,
                                                    # c (N,cond_channels,H,W) or None -> (N,3,H,W)

    ``out`` is epsilon, v or x0 as ``prediction_type`` says; :meth:`condition` builds ``c`` from
    the task inputs (:func:`sr_condition`, :func:`inpaint_condition`).

    Called without ``timesteps`` -- ``model(lr)`` or ``model(image, mask)``, inputs in [0, 1] -- it
    runs ONE denoiser evaluation at the middle timestep on the noise-free ``x_t`` of the condition
    image and returns that x0 estimate in [0, 1] (not clamped), ``(N, 3, h*scale, w*scale)``. This
    is a smoke/test path (shape and precision checks), not a sampler: use
    :func:`restore.diffusion.sample_sr` and friends for images.

    ``scale`` is the SR factor the model was trained for (informational: the network runs at the
    output resolution); ``num_train_timesteps``, ``beta_schedule`` and ``prediction_type`` define
    the DDPM noise schedule (:class:`restore.diffusion.DiffusionObjective`). ``residual`` and
    ``residual_scale`` select residual diffusion (module docstring; :meth:`base`, :meth:`encode`,
    :meth:`decode` map between images and the diffused variable). ``unet_config``, when
    given, is a full ``UNet2DModel`` config used verbatim instead of the architecture arguments
    (how :meth:`from_diffusers` records an external UNet so it can be rebuilt).
    """

    def __init__(
        self,
        block_out_channels: Sequence[int] = (32, 64, 128),
        layers_per_block: int = 2,
        attention: bool = True,
        norm_num_groups: int = 16,
        cond_channels: int = 3,
        prediction_type: str = "epsilon",
        scale: int = 4,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "linear",
        unet_config: dict[str, Any] | None = None,
        residual: bool = False,
        residual_scale: float = 1.0,
    ) -> None:
        super().__init__()
        from diffusers import UNet2DModel

        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        if beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {beta_schedule!r}")
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale!r}")
        if not isinstance(num_train_timesteps, int) or num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be an integer >= 2, got {num_train_timesteps!r}")
        if unet_config is None:
            channels = tuple(int(c) for c in block_out_channels)
            if not channels or any(c <= 0 for c in channels):
                raise ValueError(f"block_out_channels must be positive integers, got {block_out_channels!r}")
            if any(c % norm_num_groups for c in channels):
                raise ValueError(
                    f"block_out_channels {channels} must be multiples of norm_num_groups={norm_num_groups}"
                )
            if layers_per_block < 1:
                raise ValueError(f"layers_per_block must be >= 1, got {layers_per_block}")
            if cond_channels < 0:
                raise ValueError(f"cond_channels must be >= 0, got {cond_channels}")
            down, up = _block_types(len(channels), attention)
            self.unet = UNet2DModel(
                in_channels=3 + cond_channels,
                out_channels=3,
                block_out_channels=channels,
                layers_per_block=layers_per_block,
                down_block_types=down,
                up_block_types=up,
                norm_num_groups=norm_num_groups,
                add_attention=attention,
            )
        else:
            self.unet = UNet2DModel.from_config(dict(unet_config))
            if self.unet.config.out_channels != 3:
                raise ValueError(f"unet_config must have out_channels=3, got {self.unet.config.out_channels}")
            cond_channels = self.unet.config.in_channels - 3
            if cond_channels < 0:
                raise ValueError(f"unet_config needs in_channels >= 3, got {self.unet.config.in_channels}")
        if not isinstance(residual, bool):
            raise ValueError(f"residual must be true or false, got {residual!r}")
        if residual and cond_channels not in (3, 4):
            raise ValueError(
                f"residual diffusion needs a conditional model (cond_channels 3 or 4), got {cond_channels}"
            )
        if not isinstance(residual_scale, (int, float)) or not residual_scale > 0:
            raise ValueError(f"residual_scale must be a positive number, got {residual_scale!r}")
        self.residual = residual
        self.residual_scale = float(residual_scale)
        levels = len(self.unet.config.block_out_channels)
        unet_multiple = 2 ** (levels - 1)
        self.cond_channels = cond_channels
        self.prediction_type = prediction_type
        self.num_train_timesteps = num_train_timesteps
        self.beta_schedule = beta_schedule
        self.scale = scale
        self.in_channels = 3  # image channels of the task input (the condition is built from it)
        self.out_channels = 3
        # Input (low-resolution) sizes must make the output a multiple of the UNet's downsampling.
        self.size_multiple = unet_multiple // math.gcd(unet_multiple, scale)
        # Attention at the lowest level sees the whole tile: a generous overlap, in input pixels.
        self.receptive_field = 64 if scale == 1 else max(16, 128 // scale)
        self._smoke_timestep = num_train_timesteps // 2
        self._smoke_alpha_cumprod: float | None = None  # computed on first use

    @classmethod
    def from_diffusers(
        cls,
        unet: nn.Module,
        *,
        prediction_type: str = "epsilon",
        num_train_timesteps: int = 1000,
        beta_schedule: str = "linear",
        scale: int = 1,
    ) -> SR3UNet:
        """Wrap an existing diffusers ``UNet2DModel`` (e.g. a pretrained unconditional DDPM).

        The UNet module itself is kept (not copied); ``cond_channels = unet.in_channels - 3``. The
        returned model carries a restore spec (``ddpm_unconditional_tiny``, ``sr3_x4_tiny`` or
        ``diffusion_inpaint_tiny`` by its condition) whose config records ``unet_config``, so
        :func:`restore.models.save` / :func:`restore.models.load` rebuild it.
        """
        from diffusers import UNet2DModel

        from .registry import attach_spec, get_spec, resolve_spec

        if not isinstance(unet, UNet2DModel):
            raise TypeError(f"unet must be a diffusers UNet2DModel, got {type(unet).__name__}")
        unet_config = _public_config(unet.config)
        model = cls(
            prediction_type=prediction_type,
            num_train_timesteps=num_train_timesteps,
            beta_schedule=beta_schedule,
            scale=scale,
            unet_config=unet_config,
        )
        model.unet = unet
        names = {0: "ddpm_unconditional_tiny", 4: "diffusion_inpaint_tiny"}
        name = names.get(model.cond_channels, "sr3_x4_tiny")
        config = {
            "prediction_type": prediction_type,
            "num_train_timesteps": num_train_timesteps,
            "beta_schedule": beta_schedule,
            "scale": scale,
            "cond_channels": model.cond_channels,
            "unet_config": unet_config,
        }
        attach_spec(model, resolve_spec(get_spec(name), model, config))
        return model

    def condition(self, image: Tensor, mask: Tensor | None = None) -> Tensor | None:
        """The condition for the task inputs in [0, 1]: SR -> :func:`sr_condition`, inpaint ->
        :func:`inpaint_condition` (residual: the push-pull fill and the mask), unconditional -> ``None``."""
        if self.cond_channels == 0:
            return None
        if self.cond_channels == 3:
            return sr_condition(image, self.scale)
        if self.cond_channels == 4:
            if mask is None:
                raise ValueError("this mask-conditional model needs a mask (N, 1, H, W), 1 = hole")
            if self.residual:
                _check_mask(image, mask)
                return torch.cat([inpaint_residual_base(image, mask), mask.float()], dim=1)
            return inpaint_condition(image, mask)
        raise ValueError(
            f"no built-in condition for cond_channels={self.cond_channels}; pass condition= yourself"
        )

    def base(self, condition: Tensor | None) -> Tensor | None:
        """The residual base ``(N, 3, H, W)`` in [-1, 1] (the first 3 channels of the condition), or
        None for a model that diffuses images."""
        if not self.residual or condition is None:
            return None
        return condition[:, :3].float()

    def encode(self, image: Tensor, base: Tensor | None) -> Tensor:
        """Image in [-1, 1] -> the diffused variable (``residual_scale * (image - base)``). Float32."""
        if base is None:
            return image.float()
        return (image.float() - base) * self.residual_scale

    def decode(self, x0: Tensor, base: Tensor | None) -> Tensor:
        """Inverse of :meth:`encode`: the diffused variable -> image in [-1, 1] (not clamped). Float32."""
        if base is None:
            return x0.float()
        return base + x0.float() / self.residual_scale

    def denoise(self, x_t: Tensor, timesteps: Tensor | int, condition: Tensor | None = None) -> Tensor:
        """The raw denoiser: ``(N, 3, H, W)`` model output (epsilon, v or x0)."""
        if self.cond_channels:
            if condition is None:
                raise ValueError(f"this model needs a condition with {self.cond_channels} channels")
            if condition.shape[1] != self.cond_channels or condition.shape[-2:] != x_t.shape[-2:]:
                raise ValueError(
                    f"condition must be (N, {self.cond_channels}, {x_t.shape[-2]}, {x_t.shape[-1]}), "
                    f"got {tuple(condition.shape)}"
                )
            x_t = torch.cat([x_t, condition.to(x_t.dtype)], dim=1)
        elif condition is not None:
            raise ValueError("this unconditional model (cond_channels=0) takes no condition")
        return self.unet(x_t, timesteps).sample

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        *,
        timesteps: Tensor | int | None = None,
        condition: Tensor | None = None,
    ) -> Tensor:
        """Denoiser with ``timesteps=``; without, the single-step smoke path (see the class docstring)."""
        if timesteps is not None:
            if mask is not None:
                raise ValueError("pass either timesteps= and condition= (denoiser) or a mask (smoke path)")
            return self.denoise(x, timesteps, condition)
        if mask is not None and mask.ndim != 4:
            raise TypeError(
                f"the second positional argument is an inpainting mask (N, 1, H, W), got shape "
                f"{tuple(mask.shape)}; call the denoiser as model(x_t, timesteps=t, condition=c)"
            )
        if condition is not None:
            raise ValueError("condition= is only used with timesteps=")
        return self._single_step(x, mask)

    def _single_step(self, image: Tensor, mask: Tensor | None) -> Tensor:
        from restore.diffusion.objective import alphas_cumprod, x0_from_output

        if self._smoke_alpha_cumprod is None:
            schedule = alphas_cumprod(self.num_train_timesteps, self.beta_schedule)
            self._smoke_alpha_cumprod = float(schedule[self._smoke_timestep])
        cond = self.condition(image, mask)
        base = self.base(cond)
        with torch.autocast(device_type=image.device.type, enabled=False):
            clean = cond[:, :3] if cond is not None else image.float() * 2 - 1
            alpha = torch.full((image.shape[0],), self._smoke_alpha_cumprod, device=image.device)
            x_t = math.sqrt(self._smoke_alpha_cumprod) * self.encode(clean, base)
        t = torch.full((image.shape[0],), self._smoke_timestep, dtype=torch.long, device=image.device)
        out = self.denoise(x_t, t, cond)
        with torch.autocast(device_type=image.device.type, enabled=False):
            x0 = x0_from_output(out.float(), x_t, alpha, self.prediction_type)
            return (self.decode(x0, base) + 1) / 2
