"""EDSR: enhanced deep residual network for super-resolution (Lim et al. 2017).

Keys follow BasicSR's ``EDSR`` (``conv_first``, ``body.N.conv1/conv2``, ``conv_after_body``,
``upsample.0``..., ``conv_last``) so its published EDSR weights load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import PixelShuffleUpsample, ResidualBlockNoBN, check_scale
from .registry import register_model

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


@register_model(
    "edsr",
    task="sr",
    config={"scale": 4, "num_feat": 64, "num_block": 16, "res_scale": 1.0},
    scale=4,
    receptive_field=36,
    exact_tiling=True,
    cpu_bf16=True,
    summary="EDSR baseline (16 blocks, 64 features; 1.5M parameters at x4)",
)
@register_model(
    "edsr_full",
    task="sr",
    config={"scale": 4, "num_feat": 256, "num_block": 32, "res_scale": 0.1},
    scale=4,
    receptive_field=68,
    exact_tiling=True,
    cpu_bf16=True,
    summary="EDSR full (32 blocks, 256 features, residual scale 0.1; 43M parameters at x4)",
)
@register_model(
    "edsr_tiny",
    task="sr",
    config={"scale": 4, "num_feat": 32, "num_block": 8, "res_scale": 1.0},
    scale=4,
    receptive_field=20,
    exact_tiling=True,
    cpu_bf16=True,
    summary="EDSR with 8 blocks of 32 features (233k parameters at x4): a fast CPU network",
)
class EDSR(nn.Module):
    """Enhanced deep residual network for super-resolution (no batch norm, residual scaling).

    (N,C,H,W) in [0,1] -> (N,C,sH,sW). The DIV2K mean is subtracted on the [0,255] scale as in the
    original (``img_range=255``), so published weights give their published results.
    """

    def __init__(
        self,
        scale: int = 4,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 16,
        res_scale: float = 1.0,
        img_range: float = 255.0,
        rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__()
        self.scale = check_scale(scale, (2, 3, 4, 8))
        self.in_channels = num_in_ch
        self.out_channels = num_out_ch
        # head + 2 per block + conv_after_body at 1x, then the upsampler's convs and conv_last at
        # finer scales (1 + 1/2 + 1/4 + ... < 2 input pixels): checked by a gradient test.
        self.receptive_field = 2 * num_block + 4
        self.img_range = img_range
        mean = torch.tensor(rgb_mean if num_in_ch == 3 else (0.5,) * num_in_ch).view(1, -1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(ResidualBlockNoBN(num_feat, res_scale) for _ in range(num_block)))
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = PixelShuffleUpsample(self.scale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        x = self.conv_first(x)
        x = x + self.conv_after_body(self.body(x))
        x = self.conv_last(self.upsample(x))
        return x / self.img_range + mean
