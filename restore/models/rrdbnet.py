"""RRDBNet: the ESRGAN / Real-ESRGAN generator (Wang et al. 2018, 2021).

State-dict keys are exactly those of the BasicSR / Real-ESRGAN release (``conv_first``,
``body.N.rdb1.conv1``..., ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``), so
``RealESRGAN_x4plus.pth``, ``RealESRGAN_x2plus.pth`` and BasicSR's ESRGAN weights load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import check_scale, scaled_kaiming_init
from .registry import register_model


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs with a 0.2-scaled residual. (N,F,H,W) -> (N,F,H,W)."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        scaled_kaiming_init([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks and a 0.2-scaled residual."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


@register_model(
    "rrdbnet",
    task="sr",
    config={"scale": 4, "num_feat": 64, "num_block": 23, "num_grow_ch": 32},
    scale=4,
    receptive_field=32,
    cpu_bf16=True,
    summary="ESRGAN / Real-ESRGAN generator (23 RRDB blocks, 16.7M parameters at x4)",
)
@register_model(
    "rrdbnet_small",
    task="sr",
    config={"scale": 4, "num_feat": 32, "num_block": 3, "num_grow_ch": 32},
    scale=4,
    receptive_field=24,
    cpu_bf16=True,
    summary="RRDBNet with 3 blocks of 32 features (growth 32 as the release, so spandrel reads it)",
)
class RRDBNet(nn.Module):
    """ESRGAN / Real-ESRGAN generator built from residual-in-residual dense blocks.

    (N,C,H,W) in [0,1] -> (N,C,sH,sW). The trunk always upsamples by 4; for ``scale`` 2 and 1 the
    input is first pixel-unshuffled by 2 or 4 (as Real-ESRGAN x2plus), so those variants need
    inputs whose sides are multiples of 2 or 4.
    """

    def __init__(
        self,
        scale: int = 4,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        self.scale = check_scale(scale, (1, 2, 4))
        self.in_channels = num_in_ch
        self.out_channels = num_out_ch
        self.unshuffle = {4: 1, 2: 2, 1: 4}[self.scale]
        self.size_multiple = self.unshuffle
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            if x.shape[-2] % self.unshuffle or x.shape[-1] % self.unshuffle:
                raise ValueError(
                    f"RRDBNet x{self.scale} needs height and width divisible by {self.unshuffle}, "
                    f"got {tuple(x.shape[-2:])}"
                )
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))
