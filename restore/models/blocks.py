"""Building blocks shared by several architectures (names follow BasicSR so keys match its weights)."""

from __future__ import annotations

import math

import torch
from torch import nn


class ResidualBlockNoBN(nn.Module):
    """conv-ReLU-conv residual block without batch norm (EDSR, MSRResNet).

    ``x + res_scale * conv2(relu(conv1(x)))``; keys ``conv1``, ``conv2``. (N,F,H,W) -> (N,F,H,W).
    """

    def __init__(self, num_feat: int = 64, res_scale: float = 1.0) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one pass for the scaled residual sum (no separate multiply pass, none at all when 1.0)
        return torch.add(x, self.conv2(self.relu(self.conv1(x))), alpha=self.res_scale)


class PixelShuffleUpsample(nn.Sequential):
    """Sub-pixel upsampling by ``scale`` in 2, 3, 4, 8 (conv + PixelShuffle per factor 2, or one for 3).

    Keys ``0, 2, ...`` (conv at even indices) as BasicSR's ``Upsample``. (N,F,H,W) -> (N,F,sH,sW).
    """

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        if scale in (2, 4, 8):
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"scale must be 2, 3, 4 or 8, got {scale!r}")
        super().__init__(*layers)


def scaled_kaiming_init(modules: list[nn.Module], scale: float = 0.1) -> None:
    """Kaiming-normal init scaled down (BasicSR's ``default_init_weights``) for residual nets."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight)
                m.weight.data *= scale
                if m.bias is not None:
                    m.bias.data.zero_()


def check_scale(scale: int, allowed: tuple[int, ...]) -> int:
    """``scale`` as an int when it is one of ``allowed``; otherwise a ValueError naming both."""
    if scale not in allowed:
        raise ValueError(f"scale must be one of {allowed}, got {scale!r}")
    return int(scale)
