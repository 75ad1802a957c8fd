"""SRResNet: the SRGAN generator (Ledig et al. 2017) in BasicSR's modified form (MSRResNet).

As in BasicSR and the ESRGAN paper, batch norm is removed (it causes artefacts and hurts
generalisation); keys follow BasicSR's ``MSRResNet`` (``conv_first``, ``body.N.conv1/conv2``,
``upconv1``, ``upconv2``, ``conv_hr``, ``conv_last``) so its published weights load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResidualBlockNoBN, check_scale, scaled_kaiming_init
from .registry import register_model


@register_model(
    "srresnet",
    task="sr",
    config={"scale": 4, "num_feat": 64, "num_block": 16},
    scale=4,
    receptive_field=36,
    exact_tiling=True,
    cpu_bf16=True,
    summary="SRGAN's SRResNet without batch norm (BasicSR MSRResNet; 1.5M parameters at x4)",
)
class SRResNet(nn.Module):
    """SRGAN generator: residual blocks, sub-pixel upsampling and a bilinear global skip.

    (N,C,H,W) in [0,1] -> (N,C,sH,sW); the network predicts the residual over bilinear upsampling.
    """

    def __init__(
        self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16
    ) -> None:
        super().__init__()
        self.scale = check_scale(scale, (2, 3, 4))
        self.in_channels = num_in_ch
        self.out_channels = num_out_ch
        self.receptive_field = 2 * num_block + 4
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(ResidualBlockNoBN(num_feat) for _ in range(num_block)))
        if self.scale == 4:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(2)
        else:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * self.scale**2, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(self.scale)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        scaled_kaiming_init([self.conv_first, self.body, self.upconv1, self.conv_hr, self.conv_last], 0.1)
        if self.scale == 4:
            scaled_kaiming_init([self.upconv2], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(self.lrelu(self.conv_first(x)))
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.scale == 4:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return out + base
