"""SRVGGNetCompact: Real-ESRGAN's compact VGG-style network (realesr-general / animevideo v3).

A plain stack of 3x3 convs with PReLU at low resolution, one PixelShuffle at the end and a
nearest-neighbour global skip: few FLOPs per output pixel and no memory-bound blocks, which makes it
the fast choice on CPUs. Keys ``body.N`` as the release, so its published weights load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import check_scale
from .registry import register_model
from .subpixel import SubpixelOutput, interleaved_order, shuffle_add_nearest


@register_model(
    "compact",
    task="sr",
    config={"scale": 4, "num_feat": 64, "num_conv": 16},
    scale=4,
    receptive_field=18,
    exact_tiling=True,
    cpu_bf16=True,
    summary="Real-ESRGAN SRVGGNetCompact, 16 convs of 64 features (animevideo-v3 size)",
)
@register_model(
    "compact_general",
    task="sr",
    config={"scale": 4, "num_feat": 64, "num_conv": 32},
    scale=4,
    receptive_field=34,
    exact_tiling=True,
    cpu_bf16=True,
    summary="Real-ESRGAN SRVGGNetCompact, 32 convs of 64 features (realesr-general-x4v3 size)",
)
@register_model(
    "compact_tiny",
    task="sr",
    config={"scale": 4, "num_feat": 32, "num_conv": 8},
    scale=4,
    receptive_field=10,
    exact_tiling=True,
    cpu_bf16=True,
    summary="SRVGGNetCompact with 8 convs of 32 features: the cheapest CPU network",
)
class SRVGGNetCompact(nn.Module):
    """Compact VGG-style super-resolution network (convs + PReLU, one PixelShuffle, nearest skip).

    (N,C,H,W) in [0,1] -> (N,C,sH,sW).
    """

    def __init__(
        self,
        scale: int = 4,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        if act_type not in ("prelu", "relu", "leakyrelu"):
            raise ValueError(f"act_type must be 'prelu', 'relu' or 'leakyrelu', got {act_type!r}")
        self.scale = check_scale(scale, (1, 2, 3, 4, 8))
        self.in_channels = num_in_ch
        self.out_channels = num_out_ch
        self.receptive_field = num_conv + 2
        layers: list[nn.Module] = [
            nn.Conv2d(num_in_ch, num_feat, 3, 1, 1),
            self._activation(act_type, num_feat),
        ]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), self._activation(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * self.scale**2, 3, 1, 1))
        self.body = nn.ModuleList(layers)

    @staticmethod
    def _activation(act_type: str, num_feat: int) -> nn.Module:
        if act_type == "prelu":
            return nn.PReLU(num_parameters=num_feat)
        if act_type == "relu":
            return nn.ReLU(inplace=True)
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def features(self, x: torch.Tensor, interleaved: bool = False) -> torch.Tensor:
        """(N,C,H,W) -> the last conv's output (N, C*s*s, H, W), before the shuffle and the skip;
        ``interleaved``: its channels in the order (i, j, c) (the last conv's rows reordered, see
        :func:`~restore.models.subpixel.interleaved_order`) instead of PixelShuffle's (c, i, j)."""
        out = x
        for layer in self.body[:-1]:
            out = layer(out)
        last = self.body[-1]
        if not interleaved:
            return last(out)
        order = interleaved_order(self.out_channels, self.scale).to(last.weight.device)
        return F.conv2d(
            out, last.weight[order], last.bias[order], last.stride, last.padding, last.dilation, last.groups
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # shuffle(features) + nearest(x) in one pass on s*s fewer pixels (restore.models.subpixel):
        # contiguous output whatever the input layout, and the float32 skip keeps a bf16 body's
        # output float32.
        return shuffle_add_nearest(self.features(x), x, self.scale)

    def forward_subpixel(self, x: torch.Tensor, interleaved: bool = False) -> SubpixelOutput:
        """``forward`` without materialising the output, for tiled inference to write in place;
        ``interleaved`` as in :meth:`features` (faster to write into a channels_last image)."""
        return SubpixelOutput(self.features(x, interleaved), x, self.scale, interleaved)
