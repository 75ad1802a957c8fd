"""Validation during training: a fixed set of pairs, metrics by the standard protocol, sample grids.

Super-resolution is scored as papers do: PSNR and SSIM on the Y channel (ITU-R BT.601) with
``scale`` pixels cropped at each border, on 8-bit-quantised outputs (``restore.metrics``); deblurring
and inpainting on RGB without a crop. LPIPS is added when its weights are available locally.
Diffusion tasks follow the image task whose pairs they use (``diffusion_sr`` as ``sr``; the
inpainting and unconditional ones as ``inpaint``) and score the sampler's output (fixed seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .tasks import Task, pair_kind

__all__ = ["ValidationPair", "build_validation_set", "evaluate", "sample_grid"]


@dataclass
class ValidationPair:
    """One validation image: ``input`` (1, 3, h, w), ``target`` (1, 3, H, W), optional ``mask``."""

    name: str
    input: Tensor
    target: Tensor
    mask: Tensor | None = None


def _centre_crop(image: Tensor, max_side: int, multiple: int) -> Tensor:
    """Centre crop ``(C, H, W)`` to at most ``max_side`` and to a multiple of ``multiple``."""
    height, width = image.shape[-2:]
    new_h = min(height, max_side) // multiple * multiple
    new_w = min(width, max_side) // multiple * multiple
    if new_h < multiple or new_w < multiple:
        raise ValueError(f"image of {height}x{width} is too small for a multiple of {multiple}")
    top, left = (height - new_h) // 2, (width - new_w) // 2
    return image[..., top : top + new_h, left : left + new_w]


def build_validation_set(config: Any, task: Task, size_multiple: int = 1) -> list[ValidationPair]:
    """Pairs for validation from ``config`` (a :class:`restore.train.config.ValidationConfig`).

    ``config.data``: None (the bundled sample images), a folder of clean images (degraded here with
    a fixed seed per image), or for super-resolution a folder in the Set5 layout
    (``HR/`` + ``LR_bicubic/X<scale>/``), used as is.
    """
    from restore.data import PairedImageFolder, sample_images_dir
    from restore.io import list_images, read_image

    root = Path(config.data) if config.data is not None else sample_images_dir()
    if not root.is_dir():
        raise FileNotFoundError(f"validation folder not found: '{root}'")
    pairs: list[ValidationPair] = []
    if pair_kind(task) == "sr" and (root / "HR").is_dir():
        dataset = PairedImageFolder(root, scale=task.scale)
        for index in range(min(len(dataset), config.max_images)):
            item = dataset[index]
            pairs.append(ValidationPair(item["name"], item["input"][None], item["target"][None]))
        return pairs
    multiple = task.scale * size_multiple
    for path in list_images(root, recursive=True)[: config.max_images]:
        clean = _centre_crop(read_image(path), config.max_side, multiple)[None]
        pair = task.make_pair({"target": clean, "seed": torch.tensor([len(pairs)])}, torch.device("cpu"))
        pairs.append(ValidationPair(path.stem, pair["input"], pair["target"], pair.get("mask")))
    return pairs


def _metric_names(task: Task) -> tuple[str, str]:
    return ("psnr_y", "ssim_y") if pair_kind(task) == "sr" else ("psnr", "ssim")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    pairs: list[ValidationPair],
    task: Task,
    device: torch.device,
    *,
    autocast: Any = None,
    use_lpips: bool = True,
) -> tuple[dict[str, float], list[Tensor]]:
    """Mean metrics over ``pairs`` and the predictions (CPU, float32, clamped to [0, 1])."""
    from restore import metrics

    lpips_fn = None
    if use_lpips and metrics.lpips_available():
        lpips_fn = metrics.lpips_metric
    psnr_name, ssim_name = _metric_names(task)
    y_channel = pair_kind(task) == "sr"  # diffusion_sr is scored as sr, diffusion_inpaint as inpaint
    crop = task.scale if y_channel else 0
    scores: dict[str, list[float]] = {psnr_name: [], ssim_name: []}
    if lpips_fn is not None:
        scores["lpips"] = []
    predictions = []
    was_training = model.training
    model.eval()
    try:
        for pair in pairs:
            batch = {"input": pair.input.to(device), "target": pair.target.to(device)}
            if pair.mask is not None:
                batch["mask"] = pair.mask.to(device)
            if autocast is not None:
                with autocast():
                    pred = task.forward(model, batch)
            else:
                pred = task.forward(model, batch)
            pred = pred.float().clamp(0, 1).cpu()
            target = pair.target.float()
            predictions.append(pred)
            scores[psnr_name].append(
                float(metrics.psnr(pred, target, crop_border=crop, y_channel=y_channel)[0])
            )
            scores[ssim_name].append(
                float(metrics.ssim(pred, target, crop_border=crop, y_channel=y_channel)[0])
            )
            if lpips_fn is not None:
                scores["lpips"].append(float(lpips_fn(pred, target)[0]))
    finally:
        model.train(was_training)
    means = {name: metrics.finite_mean(values) for name, values in scores.items()}
    return means, predictions


def sample_grid(
    pairs: list[ValidationPair], predictions: list[Tensor], count: int, side: int = 128
) -> Tensor:
    """Rows of ``input | output | target`` centre crops (``side`` px), as one image ``(3, H, W)``."""
    from torchvision.utils import make_grid

    tiles = []
    for pair, pred in list(zip(pairs, predictions, strict=False))[:count]:
        target = pair.target.float()
        tiles += [_centre_tile(x, target.shape[-2:], side)[0] for x in (pair.input.float(), pred, target)]
    return make_grid(torch.stack(tiles).clamp(0, 1), nrow=3, padding=2, pad_value=1.0)


def _centre_tile(x: Tensor, size: tuple[int, int], side: int) -> Tensor:
    """``x`` resized (nearest) to ``size``, centre-cropped to at most ``side``, then resized to ``side``."""
    import torch.nn.functional as F

    height, width = size
    if tuple(x.shape[-2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="nearest")
    crop = min(side, height, width)
    top, left = (height - crop) // 2, (width - crop) // 2
    x = x[..., top : top + crop, left : left + crop]
    return F.interpolate(x, size=(side, side), mode="nearest") if crop != side else x
