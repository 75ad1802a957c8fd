"""pix2pix's PatchGAN discriminator (Isola et al. 2017), optionally conditioned on a second image.

Keys follow ``NLayerDiscriminator`` of the pix2pix/CycleGAN release (``model.0``, ``model.2``,
``model.3``, ...: one ``nn.Sequential`` whose norm layers sit at the same indices for every
``norm``), so its published discriminators load unchanged. As in the release, the inner convs
carry a bias only with ``norm="instance"``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model
from .unet_discriminator import add_spectral_norm

NORMS = ("batch", "instance", "none")


def patchgan_receptive_field(n_layers: int) -> int:
    """Side in input pixels of the square one patch logit sees: 70 for ``n_layers=3``.

    ``n_layers`` 4x4 stride-2 convs, then two 4x4 stride-1 convs: ``1 + 3 * (2^n - 1 + 2 * 2^n)``.
    """
    return 9 * 2**n_layers - 2


def patchgan_output_size(size: int, n_layers: int) -> int:
    """Height (or width) of the logit map for an input of ``size`` pixels (30 for 256 at n_layers=3)."""
    for _ in range(n_layers):
        size = (size - 2) // 2 + 1  # 4x4, stride 2, padding 1
    return size - 2  # two 4x4 convs, stride 1, padding 1


def norm_layer(norm: str, channels: int) -> nn.Module:
    """The release's norm layers: affine batch norm, non-affine instance norm, or identity."""
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


def init_pix2pix_weights(module: nn.Module, gain: float = 0.02) -> None:
    """pix2pix's ``init_weights(init_type="normal")``: conv weights N(0, gain), batch-norm
    weights N(1, gain), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


@register_model(
    "patchgan",
    task="discriminator",
    config={"in_channels": 3, "ndf": 64, "n_layers": 3, "norm": "batch", "condition_channels": 0},
    in_channels=3,
    out_channels=1,
    receptive_field=35,
    summary="pix2pix PatchGAN (70x70 patches, 3 layers, 64 filters, batch norm): patch logits",
)
@register_model(
    "patchgan_conditional",
    task="discriminator",
    config={"in_channels": 3, "ndf": 64, "n_layers": 3, "norm": "batch", "condition_channels": 3},
    in_channels=3,
    out_channels=1,
    receptive_field=35,
    inputs=("image", "condition"),
    summary="pix2pix conditional PatchGAN: judges an image together with its 3-channel condition",
)
class NLayerDiscriminator(nn.Module):
    """pix2pix PatchGAN: a logit per overlapping 70x70 patch, optionally conditioned on an image.

    ``forward(image, condition=None)``: image (N, in_channels, H, W) and, when
    ``condition_channels > 0``, condition (N, condition_channels, h, w), resized to (H, W) with
    bilinear interpolation when its size differs (a low-resolution input for super-resolution)
    and concatenated after the image's channels. Returns logits (N, 1, h', w') (no sigmoid), with
    h' = :func:`patchgan_output_size` (30 for 256 px at ``n_layers=3``).

    Layers: a 4x4 stride-2 conv (bias, no norm), ``n_layers - 1`` 4x4 stride-2 convs and one 4x4
    stride-1 conv with ``ndf * min(2^i, 8)`` filters, each followed by ``norm`` and LeakyReLU(0.2),
    then a 4x4 conv to 1 channel. ``spectral_norm=True`` normalises every conv (usually with
    ``norm="none"``). Weights start as in pix2pix (normal, std 0.02).

    ``return_features=True`` returns ``(logits, features)``: the n_layers + 1 activations after
    each LeakyReLU, (N, ndf * min(2^i, 8), ...) for i = 0..n_layers.
    """

    def __init__(
        self,
        in_channels: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
        condition_channels: int = 0,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels!r}")
        if condition_channels < 0:
            raise ValueError(
                f"condition_channels must be >= 0 (0 = unconditional), got {condition_channels!r}"
            )
        if ndf < 1:
            raise ValueError(f"ndf must be >= 1, got {ndf!r}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers!r}")
        self.scale = 1
        self.in_channels = in_channels
        self.out_channels = 1
        self.condition_channels = condition_channels
        self.n_layers = n_layers
        self.receptive_field = patchgan_receptive_field(n_layers) // 2
        use_bias = norm == "instance"  # the release's rule (no bias before batch norm or no norm)

        layers: list[nn.Module] = [
            nn.Conv2d(in_channels + condition_channels, ndf, 4, 2, 1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=use_bias),
                norm_layer(norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)
        init_pix2pix_weights(self)
        if spectral_norm:
            for m in self.model:
                if isinstance(m, nn.Conv2d):
                    add_spectral_norm(m)

    def join_condition(self, image: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        """Check the inputs; return ``image`` or ``cat([image, resized condition], dim=1)``."""
        if image.ndim != 4 or image.shape[1] != self.in_channels:
            raise ValueError(f"image must be (N, {self.in_channels}, H, W), got shape {tuple(image.shape)}")
        smallest = 3 * 2**self.n_layers  # the smallest size with a 1x1 logit map
        if min(image.shape[-2:]) < smallest:
            raise ValueError(
                f"image must be at least {smallest}x{smallest} for n_layers={self.n_layers}, "
                f"got {tuple(image.shape[-2:])}"
            )
        if self.condition_channels == 0:
            if condition is not None:
                raise ValueError(
                    "this PatchGAN is unconditional (condition_channels=0) but got a condition; build it "
                    "with condition_channels=C (e.g. 'patchgan_conditional') or pass condition=None"
                )
            return image
        if condition is None:
            raise ValueError(
                f"this PatchGAN is conditional (condition_channels={self.condition_channels}): pass "
                f"condition, a (N, {self.condition_channels}, h, w) tensor (e.g. the degraded input)"
            )
        if condition.ndim != 4 or condition.shape[1] != self.condition_channels:
            raise ValueError(
                f"condition must be (N, {self.condition_channels}, h, w), got shape {tuple(condition.shape)}"
            )
        if condition.shape[0] != image.shape[0]:
            raise ValueError(
                f"condition batch size {condition.shape[0]} differs from image batch size {image.shape[0]}"
            )
        if condition.shape[-2:] != image.shape[-2:]:
            condition = F.interpolate(condition, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([image, condition.to(image.dtype)], dim=1)

    def forward(
        self, image: torch.Tensor, condition: torch.Tensor | None = None, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.join_condition(image, condition)
        features = []
        for layer in self.model:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                features.append(x)
        if return_features:
            return x, features
        return x
