"""NAFNet: nonlinear-activation-free network for image restoration (Chen et al. 2022).

A U-Net of NAFBlocks: LayerNorm2d, 1x1 conv, 3x3 depthwise conv, SimpleGate (split channels in
two halves and multiply), simplified channel attention (SCA: global average pool + 1x1 conv),
1x1 conv, a learned residual scale ``beta``, then a gated feed-forward part with scale ``gamma``.
Keys follow the original (``intro``, ``encoders``, ``downs``, ``middle_blks``, ``ups``,
``decoders``, ``ending``), so spandrel detects our state dicts as "NAFNet" and the published
GoPro/SIDD weights load unchanged.

Mixed precision: LayerNorm2d computes its statistics in float32 with autocast off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model


def simple_gate(x: torch.Tensor) -> torch.Tensor:
    """SimpleGate: (N,2C,H,W) -> (N,C,H,W), first half of the channels times the second half."""
    x1, x2 = x.chunk(2, dim=1)
    return x1 * x2


class SimpleGate(nn.Module):
    """Module form of :func:`simple_gate`: (N,2C,H,W) -> (N,C,H,W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return simple_gate(x)


def layer_norm_2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Normalise over the channel dim of (N,C,H,W) per pixel, then scale and shift by (C,) params.

    Mean and (biased) variance are computed in float32 with autocast off; the result has x's dtype.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        x32 = x.float()
        mu = x32.mean(1, keepdim=True)
        var = (x32 - mu).pow(2).mean(1, keepdim=True)
        y = (x32 - mu) / (var + eps).sqrt()
        y = weight.float().view(1, -1, 1, 1) * y + bias.float().view(1, -1, 1, 1)
    return y.to(x.dtype)


class LayerNorm2d(nn.Module):
    """Channel LayerNorm for (N,C,H,W) feature maps (keys ``weight``, ``bias``; eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm_2d(x, self.weight, self.bias, self.eps)


class SCA(nn.Sequential):
    """Simplified channel attention: ``x * conv1x1(mean of x over H,W)``. (N,C,H,W) -> (N,C,H,W).

    A Sequential (pool, conv) so the keys are the original's ``sca.1.weight`` / ``sca.1.bias``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * super().forward(x)


class NAFBlock(nn.Module):
    """NAFNet block: norm, conv1x1, depthwise 3x3, SimpleGate, SCA, conv1x1; then a gated FFN.

    (N,C,H,W) -> (N,C,H,W). ``beta`` and ``gamma`` (1,C,1,1) scale the two residual branches and
    start at zero, so a fresh block is the identity.
    """

    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2, drop_out_rate: float = 0.0) -> None:
        super().__init__()
        dw_channel = c * dw_expand
        ffn_channel = c * ffn_expand
        self.conv1 = nn.Conv2d(c, dw_channel, 1)
        self.conv2 = nn.Conv2d(dw_channel, dw_channel, 3, padding=1, groups=dw_channel)
        self.conv3 = nn.Conv2d(dw_channel // 2, c, 1)
        self.sca = SCA(dw_channel // 2)
        self.sg = SimpleGate()
        self.conv4 = nn.Conv2d(c, ffn_channel, 1)
        self.conv5 = nn.Conv2d(ffn_channel // 2, c, 1)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.dropout1 = nn.Dropout(drop_out_rate) if drop_out_rate > 0 else nn.Identity()
        self.dropout2 = nn.Dropout(drop_out_rate) if drop_out_rate > 0 else nn.Identity()
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.sg(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(self.sca(x))
        y = inp + self.dropout1(x) * self.beta
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return y + self.dropout2(x) * self.gamma


def nafnet_receptive_field(enc_blk_nums: list[int], middle_blk_num: int, dec_blk_nums: list[int]) -> int:
    """Radius in input pixels reached by NAFNet's convolutions (SCA's global pooling not counted).

    Each block's depthwise 3x3 adds one pixel at its level's stride, each 2x2 stride-2 ``down``
    adds one, 1x1 + PixelShuffle ``ups`` add none; ``intro`` and ``ending`` add one each.
    """
    radius, stride = 1, 1
    for num in enc_blk_nums:
        radius += num * stride + stride
        stride *= 2
    radius += middle_blk_num * stride
    for num in dec_blk_nums:
        stride //= 2
        radius += num * stride
    return radius + 1


@register_model(
    "nafnet",
    task="deblur",
    config={"width": 32, "enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1, "dec_blk_nums": [1, 1, 1, 1]},
    receptive_field=279,
    supports_fp16=False,
    summary="NAFNet-width32 as trained on GoPro (36 blocks; 17.1M parameters)",
)
@register_model(
    "nafnet_small",
    task="deblur",
    config={"width": 16, "enc_blk_nums": [1, 1, 1, 2], "middle_blk_num": 1, "dec_blk_nums": [1, 1, 1, 1]},
    receptive_field=71,
    supports_fp16=False,
    summary="NAFNet width 16 with 10 blocks (1.3M parameters): trainable on a CPU",
)
class NAFNet(nn.Module):
    """NAFNet U-Net for deblurring and denoising: NAFBlocks, stride-2 downs, PixelShuffle ups.

    (N,C,H,W) -> (N,C,H,W), predicting a residual added to the input (not clamped, as the
    original). Any H and W: the input is zero-padded on the bottom/right to a multiple of
    ``2**len(enc_blk_nums)`` and the output cropped back, as the original does, so ``size_multiple``
    is 1. ``receptive_field`` is the convolutions' reach (:func:`nafnet_receptive_field`); SCA's
    global average pooling adds a weak whole-image dependence on top.
    """

    def __init__(
        self,
        img_channel: int = 3,
        width: int = 16,
        middle_blk_num: int = 1,
        enc_blk_nums: list[int] | tuple[int, ...] = (1, 1, 1, 28),
        dec_blk_nums: list[int] | tuple[int, ...] = (1, 1, 1, 1),
        dw_expand: int = 2,
        ffn_expand: int = 2,
        drop_out_rate: float = 0.0,
    ) -> None:
        super().__init__()
        enc_blk_nums, dec_blk_nums = list(enc_blk_nums), list(dec_blk_nums)
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError(
                f"enc_blk_nums and dec_blk_nums must have the same length, got {enc_blk_nums!r} and "
                f"{dec_blk_nums!r}"
            )
        if any(n < 0 for n in [*enc_blk_nums, *dec_blk_nums, middle_blk_num]):
            raise ValueError(
                f"block counts must be >= 0, got enc_blk_nums={enc_blk_nums!r}, "
                f"middle_blk_num={middle_blk_num!r}, dec_blk_nums={dec_blk_nums!r}"
            )
        self.scale = 1
        self.in_channels = img_channel
        self.out_channels = img_channel
        self.size_multiple = 1
        self.receptive_field = nafnet_receptive_field(enc_blk_nums, middle_blk_num, dec_blk_nums)
        self.padder_size = 2 ** len(enc_blk_nums)

        def blocks(c: int, num: int) -> nn.Sequential:
            return nn.Sequential(*(NAFBlock(c, dw_expand, ffn_expand, drop_out_rate) for _ in range(num)))

        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        chan = width
        for num in enc_blk_nums:
            self.encoders.append(blocks(chan, num))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, stride=2))
            chan *= 2
        self.middle_blks = blocks(chan, middle_blk_num)
        for num in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, 2 * chan, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(blocks(chan, num))

    def pad_to_multiple(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad (N,C,H,W) on the bottom and right to multiples of ``padder_size``."""
        h, w = x.shape[-2:]
        pad_h = -h % self.padder_size
        pad_w = -w % self.padder_size
        return F.pad(x, (0, pad_w, 0, pad_h))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        if inp.ndim != 4 or inp.shape[1] != self.in_channels:
            raise ValueError(f"input must be (N,{self.in_channels},H,W), got shape {tuple(inp.shape)}")
        h, w = inp.shape[-2:]
        inp = self.pad_to_multiple(inp)
        x = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips), strict=True):
            x = decoder(up(x) + skip)
        x = self.ending(x) + inp
        return x[:, :, :h, :w]
