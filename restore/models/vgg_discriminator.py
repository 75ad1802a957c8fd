"""The VGG-style discriminator of SRGAN/ESRGAN (Ledig et al. 2017, Wang et al. 2018).

Keys follow BasicSR's ``VGGStyleDiscriminator`` (``conv0_0``, ``conv0_1``, ``bn0_1``, ``conv1_0``,
``bn1_0``, ``conv1_1``, ``bn1_1``, ..., ``linear1``, ``linear2``), so its published ESRGAN
discriminator weights load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model

INPUT_SIZES = (128, 256)


@register_model(
    "vgg_discriminator",
    task="discriminator",
    config={"num_in_ch": 3, "num_feat": 64, "input_size": 128},
    in_channels=3,
    out_channels=1,
    size_multiple=128,
    receptive_field=128,
    summary="SRGAN/ESRGAN VGG-style discriminator on fixed 128 or 256 px crops: one logit per image",
)
class VGGStyleDiscriminator(nn.Module):
    """VGG-style discriminator of SRGAN/ESRGAN: one real/fake logit per fixed-size crop.

    (N,C,S,S) with S = ``input_size`` (128 or 256) -> logits (N,1) (no sigmoid). Stages of a 3x3
    conv and a 4x4 stride-2 conv, each with batch norm (except the first conv) and LeakyReLU(0.2),
    with ``num_feat * (1, 2, 4, 8, 8[, 8])`` channels down to 4x4, then ``linear1`` (to 100) and
    ``linear2`` (to 1). Only ``conv0_0`` and the linear layers carry a bias.

    ``return_features=True`` returns ``(logits, features)``: the output of each stage (after its
    stride-2 conv, batch norm and activation), 5 for S=128 and 6 for S=256, of shapes
    (N, num_feat * min(2^i, 8), S / 2^(i+1), S / 2^(i+1)).
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size not in INPUT_SIZES:
            raise ValueError(
                f"input_size must be one of {INPUT_SIZES} (the discriminator's linear head needs a fixed "
                f"4x4 map after 5 or 6 halvings), got {input_size!r}"
            )
        if num_in_ch < 1:
            raise ValueError(f"num_in_ch must be >= 1, got {num_in_ch!r}")
        if num_feat < 1:
            raise ValueError(f"num_feat must be >= 1, got {num_feat!r}")
        self.scale = 1
        self.in_channels = num_in_ch
        self.out_channels = 1
        self.input_size = input_size
        self.size_multiple = input_size
        self.receptive_field = input_size
        self.num_stages = 5 if input_size == 128 else 6

        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat, affine=True)
        channels = num_feat
        for i in range(1, self.num_stages):
            out = num_feat * min(2**i, 8)
            self.add_module(f"conv{i}_0", nn.Conv2d(channels, out, 3, 1, 1, bias=False))
            self.add_module(f"bn{i}_0", nn.BatchNorm2d(out, affine=True))
            self.add_module(f"conv{i}_1", nn.Conv2d(out, out, 4, 2, 1, bias=False))
            self.add_module(f"bn{i}_1", nn.BatchNorm2d(out, affine=True))
            channels = out
        self.linear1 = nn.Linear(channels * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is (N, in_channels, input_size, input_size)."""
        expected = (self.in_channels, self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"x must be (N, {self.in_channels}, {self.input_size}, {self.input_size}): this "
                f"discriminator has a fixed input_size={self.input_size} (crop or resize first, or build "
                f"it with another input_size in {INPUT_SIZES}), got shape {tuple(x.shape)}"
            )

    def stage(self, i: int, feat: torch.Tensor) -> torch.Tensor:
        """Stage ``i``: (3x3 conv, bn for i > 0,) 4x4 stride-2 conv, bn, each with LeakyReLU."""
        if i == 0:
            feat = self.lrelu(self.conv0_0(feat))
        else:
            feat = self.lrelu(getattr(self, f"bn{i}_0")(getattr(self, f"conv{i}_0")(feat)))
        return self.lrelu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(feat)))

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        self.check_input(x)
        features = []
        feat = x
        for i in range(self.num_stages):
            feat = self.stage(i, feat)
            features.append(feat)
        feat = self.lrelu(self.linear1(feat.flatten(1)))
        logits = self.linear2(feat)
        if return_features:
            return logits, features
        return logits
