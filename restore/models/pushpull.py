"""Push-pull inpainting: a weight-free classical filler (mask-weighted pyramid, then smoothing).

Known pixels are averaged down a pyramid with their mask as weight ("push"); holes are then filled
from the coarsest level up, each level blended into the next finer one where it has no known
pixels ("pull"), and a few Jacobi iterations of the Laplace equation smooth the filled region. No
weights: it serves as the offline default of ``restore.inpaint`` until a trained model beats it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model


def push_pull_fill(image: torch.Tensor, mask: torch.Tensor, smooth_steps: int = 64) -> torch.Tensor:
    """Fill ``image`` (N, C, H, W) where ``mask`` (N, 1, H, W) is 1; known pixels are returned as is."""
    known = (1.0 - mask).float()
    x = image.float() * known
    levels = [(x, known)]
    while min(levels[-1][0].shape[-2:]) > 1:
        value, weight = levels[-1]
        value = F.avg_pool2d(value, 2, ceil_mode=True)
        weight = F.avg_pool2d(weight, 2, ceil_mode=True)
        levels.append((value, weight))
    filled = levels[-1][0] / levels[-1][1].clamp_min(1e-8)
    for value, weight in reversed(levels[:-1]):
        up = F.interpolate(filled, size=value.shape[-2:], mode="bilinear", align_corners=False)
        own = value / weight.clamp_min(1e-8)
        alpha = weight.clamp(0.0, 1.0)
        filled = alpha * own + (1.0 - alpha) * up
    hole = mask.float()
    kernel = torch.tensor([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]], device=image.device)
    kernel = kernel.expand(filled.shape[1], 1, 3, 3)
    for _ in range(smooth_steps):
        neighbours = F.conv2d(F.pad(filled, (1, 1, 1, 1), mode="replicate"), kernel, groups=filled.shape[1])
        filled = hole * neighbours + (1.0 - hole) * filled
    return (hole * filled + (1.0 - hole) * image.float()).to(image.dtype)


@register_model(
    "pushpull_inpaint",
    task="inpaint",
    config={"smooth_steps": 64},
    scale=1,
    supports_fp16=True,
    supports_bf16=True,
    size_multiple=1,
    receptive_field=128,
    inputs=("image", "mask"),
    summary="weight-free push-pull pyramid inpainting with Laplace smoothing (the offline default)",
)
class PushPullInpaint(nn.Module):
    """Weight-free inpainting: ``forward(image (N,C,H,W) in [0,1], mask (N,1,H,W), 1 = hole)``.

    A classical filler with no parameters (see :func:`push_pull_fill`); known pixels are kept.
    """

    def __init__(self, smooth_steps: int = 64) -> None:
        super().__init__()
        if smooth_steps < 0:
            raise ValueError(f"smooth_steps must be >= 0, got {smooth_steps}")
        self.smooth_steps = int(smooth_steps)
        self.scale, self.in_channels, self.out_channels = 1, 3, 3
        self.register_buffer("_device_anchor", torch.zeros(()), persistent=True)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=image.device.type, enabled=False):
            return push_pull_fill(image, mask, self.smooth_steps)
