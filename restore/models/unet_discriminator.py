"""Real-ESRGAN's U-Net discriminator with spectral normalisation (Wang et al. 2021).

Keys follow Real-ESRGAN's ``UNetDiscriminatorSN`` (``conv0`` ... ``conv9``; ``conv1`` to ``conv8``
spectral-normalised, stored as ``weight_orig``, ``weight_u``, ``weight_v``), so its published
discriminator weights (``RealESRGAN_x4plus_netD.pth``, under ``params``) load unchanged.

:func:`add_spectral_norm` is ``torch.nn.utils.spectral_norm`` (same keys, same power iteration)
with the power iteration and the division by sigma run in float32 with autocast off: under CUDA
autocast ``torch.mv`` would otherwise run in half precision.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm, spectral_norm

from .registry import register_model


class Float32SpectralNorm(SpectralNorm):
    """torch's spectral-norm forward pre-hook, run with autocast disabled (float32 power iteration).

    The weight becomes ``weight_orig / sigma`` with ``sigma = u^T W v`` computed in the parameter's
    dtype; the convolution itself still runs under the caller's autocast.
    """

    def __call__(self, module: nn.Module, inputs: Any) -> None:
        device_type = getattr(module, self.name + "_orig").device.type
        with torch.autocast(device_type=device_type, enabled=False):
            super().__call__(module, inputs)


def add_spectral_norm(
    module: nn.Module, n_power_iterations: int = 1, eps: float = 1e-12, warmup_iterations: int = 15
) -> nn.Module:
    """Spectral-normalise ``module.weight`` in place and return the module.

    Same state-dict keys (``weight_orig``, ``weight_u``, ``weight_v``), load hooks and
    ``torch.nn.utils.remove_spectral_norm`` support as ``torch.nn.utils.spectral_norm``; the
    hook runs in float32 (see :class:`Float32SpectralNorm`). ``warmup_iterations`` power
    iterations at construction (as ``torch.nn.utils.parametrizations.spectral_norm`` does) make
    ``u`` and ``v`` estimates of the singular vectors from the start: with torch's random ones an
    untrained module in eval mode divides by a near-zero sigma, and its outputs overflow float16.
    Loaded weights bring their own ``u`` and ``v``.
    """
    if warmup_iterations < 0:
        raise ValueError(f"warmup_iterations must be >= 0, got {warmup_iterations!r}")
    spectral_norm(module, n_power_iterations=n_power_iterations, eps=eps)
    hooks = module._forward_pre_hooks
    for key, hook in list(hooks.items()):
        if type(hook) is SpectralNorm:
            hook = Float32SpectralNorm(hook.name, hook.n_power_iterations, hook.dim, hook.eps)
            hooks[key] = hook
            with torch.no_grad():
                for _ in range(warmup_iterations):
                    setattr(module, hook.name, hook.compute_weight(module, do_power_iteration=True))
    return module


# Input pixels on each side of a pixel that can reach its logit: 32 at the worst position modulo 8
# (the gradient of one logit with respect to the input; tests/test_models_discriminators.py checks it).
RECEPTIVE_RADIUS = 32


@register_model(
    "unet_discriminator",
    task="discriminator",
    config={"num_in_ch": 3, "num_feat": 64, "skip_connection": True},
    in_channels=3,
    out_channels=1,
    size_multiple=8,
    receptive_field=RECEPTIVE_RADIUS,
    summary="Real-ESRGAN U-Net discriminator with spectral norm: per-pixel logits (4.38M parameters)",
)
class UNetDiscriminatorSN(nn.Module):
    """U-Net discriminator with spectral normalisation (Real-ESRGAN): per-pixel real/fake logits.

    (N,C,H,W) with H, W multiples of 8 -> logits (N,1,H,W) (no sigmoid). Three stride-2 4x4 convs
    down to H/8, three bilinear x2 upsamplings each followed by a 3x3 conv with a skip connection
    from the encoder, and three 3x3 convs at full resolution. ``conv0`` and ``conv9`` carry a bias
    and no spectral norm, as in the release.

    ``return_features=True`` returns ``(logits, features)`` with 9 activations: the encoder's
    ``x0..x3`` ((N,F,H,W), (N,2F,H/2,W/2), (N,4F,H/4,W/4), (N,8F,H/8,W/8)), the decoder's
    ``x4..x6`` after their skip additions ((N,4F,H/4,W/4), (N,2F,H/2,W/2), (N,F,H,W)) and the
    outputs of ``conv7`` and ``conv8`` ((N,F,H,W) each).
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        if num_in_ch < 1:
            raise ValueError(f"num_in_ch must be >= 1, got {num_in_ch!r}")
        if num_feat < 1:
            raise ValueError(f"num_feat must be >= 1, got {num_feat!r}")
        self.scale = 1
        self.in_channels = num_in_ch
        self.out_channels = 1
        self.size_multiple = 8
        self.receptive_field = RECEPTIVE_RADIUS
        self.skip_connection = skip_connection
        f = num_feat
        self.conv0 = nn.Conv2d(num_in_ch, f, 3, 1, 1)
        # downsample
        self.conv1 = add_spectral_norm(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False))
        self.conv2 = add_spectral_norm(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False))
        self.conv3 = add_spectral_norm(nn.Conv2d(f * 4, f * 8, 4, 2, 1, bias=False))
        # upsample
        self.conv4 = add_spectral_norm(nn.Conv2d(f * 8, f * 4, 3, 1, 1, bias=False))
        self.conv5 = add_spectral_norm(nn.Conv2d(f * 4, f * 2, 3, 1, 1, bias=False))
        self.conv6 = add_spectral_norm(nn.Conv2d(f * 2, f, 3, 1, 1, bias=False))
        # extra convolutions
        self.conv7 = add_spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv8 = add_spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is (N, in_channels, H, W) with H, W multiples of 8."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must be (N, {self.in_channels}, H, W), got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % 8 or w % 8 or h == 0 or w == 0:
            raise ValueError(
                f"x height and width must be positive multiples of 8 (three stride-2 levels with skip "
                f"connections), got {h}x{w}; pad or crop first"
            )

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        self.check_input(x)
        x0 = F.leaky_relu(self.conv0(x), 0.2, inplace=True)
        x1 = F.leaky_relu(self.conv1(x0), 0.2, inplace=True)
        x2 = F.leaky_relu(self.conv2(x1), 0.2, inplace=True)
        x3 = F.leaky_relu(self.conv3(x2), 0.2, inplace=True)

        up = F.interpolate(x3, scale_factor=2, mode="bilinear", align_corners=False)
        x4 = F.leaky_relu(self.conv4(up), 0.2, inplace=True)
        if self.skip_connection:
            x4 = x4 + x2
        up = F.interpolate(x4, scale_factor=2, mode="bilinear", align_corners=False)
        x5 = F.leaky_relu(self.conv5(up), 0.2, inplace=True)
        if self.skip_connection:
            x5 = x5 + x1
        up = F.interpolate(x5, scale_factor=2, mode="bilinear", align_corners=False)
        x6 = F.leaky_relu(self.conv6(up), 0.2, inplace=True)
        if self.skip_connection:
            x6 = x6 + x0

        x7 = F.leaky_relu(self.conv7(x6), 0.2, inplace=True)
        x8 = F.leaky_relu(self.conv8(x7), 0.2, inplace=True)
        logits = self.conv9(x8)
        if return_features:
            return logits, [x0, x1, x2, x3, x4, x5, x6, x7, x8]
        return logits
