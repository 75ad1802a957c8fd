"""Super-resolution evaluation on benchmark folders (Set5, Set14, BSD100...) by the standard protocol.

    from restore.evaluate import evaluate_sr
    result = evaluate_sr("../shared/data/images/Set5", 4, "bicubic")   # or "sr-x4", a path, a module
    print(result.to_markdown())          # per-image rows and the mean
    result.means["psnr_y"]               # 28.43

Folder layout (as the SR benchmarks are distributed, DIV2K-style)::

    root/HR/<name>.png                    the original, full size
    root/LR_bicubic/X<scale>/<name>.png   MATLAB imresize(modcrop(HR, scale), 1/scale, 'bicubic')

Protocol (the published tables'; :func:`restore.metrics.sr_metrics`, the numbers the trainer reports):
the HR is cropped from its top-left corner to ``LR size * scale``; the output is clamped to [0, 1]
and scored as the 8-bit file it would be saved as; PSNR and SSIM on the luma Y of ITU-R BT.601 as
MATLAB's ``rgb2ycbcr``, with ``scale`` pixels removed at each border. A grayscale HR file (Set14's
``bridge``) is scored on its gray values, as MATLAB does for a one-channel image: the upscaler gets
the gray LR replicated to RGB, and its output is scored as the gray file ``restore upscale`` would
write for a gray input (BT.601 luma ``0.299 R + 0.587 G + 0.114 B``, then 8 bits). Scoring such an
image as RGB instead would compress its range to Y = 16 + 219/255 gray and add 1.32 dB to ``bridge``
(+0.094 dB on the Set14 mean). LPIPS (AlexNet, v0.1) on the same 8-bit, border-cropped RGB images,
only when its weights are on this machine (nothing is downloaded).

"bicubic" is MATLAB's ``imresize(LR, scale, 'bicubic')`` on the uint8 LR (:func:`restore.degrade.imresize`
with ``quantize=True``); it reproduces the published bicubic rows within 0.015 dB.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "DatasetLayoutError",
    "EvalResult",
    "ImageScore",
    "SRPair",
    "available_scales",
    "evaluate_sr",
    "find_sr_pairs",
    "resolve_upscaler",
]

HR_DIR = "HR"
LR_DIR = "LR_bicubic"
METRIC_NAMES = ("psnr_y", "ssim_y", "lpips")
METRIC_LABELS = {"psnr_y": "PSNR-Y (dB)", "ssim_y": "SSIM-Y", "lpips": "LPIPS"}
PROTOCOL = (
    "PSNR/SSIM on the BT.601 luma (MATLAB rgb2ycbcr) of 8-bit outputs, border = scale pixels; "
    "grayscale files on their gray values; HR cropped top-left to LR size * scale"
)

Upscaler = Callable[[torch.Tensor], torch.Tensor]


class DatasetLayoutError(ValueError):
    """A folder is not in the SR benchmark layout; the message names what is missing or wrong."""


@dataclass(frozen=True)
class SRPair:
    """One benchmark image: its name (file stem), HR file and LR file at one scale."""

    name: str
    hr: Path
    lr: Path


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------


def available_scales(dataset_dir: str | os.PathLike) -> list[int]:
    """The scales ``s`` with a folder ``LR_bicubic/X<s>`` in ``dataset_dir``, sorted."""
    lr_root = Path(dataset_dir) / LR_DIR
    if not lr_root.is_dir():
        return []
    scales = []
    for child in lr_root.iterdir():
        if child.is_dir() and child.name[:1] in "Xx" and child.name[1:].isdigit():
            scales.append(int(child.name[1:]))
    return sorted(scales)


def _by_stem(folder: Path) -> dict[str, Path]:
    from restore.io import list_images

    found: dict[str, Path] = {}
    for path in list_images(folder):
        if path.stem in found:
            raise DatasetLayoutError(
                f"two files with the stem '{path.stem}' in '{folder}': {found[path.stem].name}, {path.name}"
            )
        found[path.stem] = path
    return found


def _check_scale(scale: Any) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    return scale


def find_sr_pairs(dataset_dir: str | os.PathLike, scale: int, *, check_sizes: bool = True) -> list[SRPair]:
    """The (HR, LR) pairs of ``dataset_dir`` at ``scale``, sorted by name.

    Raises :class:`DatasetLayoutError` (a ``ValueError``) naming what is wrong: a missing ``HR/`` or
    ``LR_bicubic/X<scale>/`` folder (with the scales the folder has), an LR file without its HR
    partner or an HR file without its LR file, no images, or (``check_sizes``, from the file
    headers) an HR whose size divided by ``scale`` is not the LR's size.
    """
    from restore.io import image_size

    scale = _check_scale(scale)
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset folder not found: '{root}'")
    hr_dir, lr_root = root / HR_DIR, root / LR_DIR
    lr_dir = lr_root / f"X{scale}"
    missing = [f"{HR_DIR}/"] if not hr_dir.is_dir() else []
    if not lr_root.is_dir():
        missing.append(f"{LR_DIR}/X{scale}/")
    if missing:
        raise DatasetLayoutError(
            f"'{root}' is not an SR benchmark folder: {' and '.join(missing)} missing (expected "
            f"{HR_DIR}/<name>.png and {LR_DIR}/X<scale>/<name>.png)"
        )
    if not lr_dir.is_dir():
        scales = available_scales(root)
        have = ", ".join(f"x{s}" for s in scales) or "none"
        raise DatasetLayoutError(
            f"'{root}' has no scale x{scale}: folder '{lr_dir}' missing (scales in {LR_DIR}/: {have})"
        )
    hr_files, lr_files = _by_stem(hr_dir), _by_stem(lr_dir)
    orphans = sorted(set(lr_files) - set(hr_files))
    if orphans:
        shown = ", ".join(lr_files[n].name for n in orphans[:5]) + (" ..." if len(orphans) > 5 else "")
        raise DatasetLayoutError(
            f"{len(orphans)} LR file(s) in '{lr_dir}' without an HR partner in '{hr_dir}': {shown}"
        )
    unpaired = sorted(set(hr_files) - set(lr_files))
    if unpaired:
        shown = ", ".join(hr_files[n].name for n in unpaired[:5]) + (" ..." if len(unpaired) > 5 else "")
        raise DatasetLayoutError(
            f"{len(unpaired)} HR file(s) in '{hr_dir}' without an LR file in '{lr_dir}': {shown}"
        )
    if not hr_files:
        raise DatasetLayoutError(f"no images in '{hr_dir}' and '{lr_dir}'")
    pairs = [SRPair(name, hr_files[name], lr_files[name]) for name in sorted(hr_files)]
    if check_sizes:
        for pair in pairs:
            _check_pair_size(pair, image_size(pair.hr), image_size(pair.lr), scale)
    return pairs


def _check_pair_size(pair: SRPair, hr_hw: tuple[int, int], lr_hw: tuple[int, int], scale: int) -> None:
    if hr_hw[0] // scale != lr_hw[0] or hr_hw[1] // scale != lr_hw[1]:
        raise DatasetLayoutError(
            f"size mismatch at x{scale}: LR '{pair.lr}' is {lr_hw[0]}x{lr_hw[1]} (HxW) but HR "
            f"'{pair.hr}' is {hr_hw[0]}x{hr_hw[1]}; the HR must be {lr_hw[0] * scale}.."
            f"{lr_hw[0] * scale + scale - 1} x {lr_hw[1] * scale}..{lr_hw[1] * scale + scale - 1}"
        )


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass
class ImageScore:
    """Scores of one image: PSNR-Y (dB), SSIM-Y, LPIPS (None when not computed)."""

    name: str
    psnr_y: float
    ssim_y: float
    lpips: float | None = None
    gray: bool = False  # the HR file is grayscale: scored on its gray values
    seconds: float = 0.0  # time of the upscaler on this image

    def metrics(self) -> dict[str, float]:
        values = {"psnr_y": self.psnr_y, "ssim_y": self.ssim_y, "lpips": self.lpips}
        return {k: v for k, v in values.items() if v is not None}


@dataclass
class EvalResult:
    """Per-image scores and their means for one dataset, scale and upscaler."""

    dataset: str
    path: str
    scale: int
    method: str
    rows: list[ImageScore] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the whole evaluation (reading, upscaling, scoring)

    @property
    def metric_names(self) -> list[str]:
        """The metrics every row has (``psnr_y``, ``ssim_y``, and ``lpips`` when computed)."""
        return [m for m in METRIC_NAMES if self.rows and all(m in r.metrics() for r in self.rows)]

    @property
    def means(self) -> dict[str, float]:
        """Mean of each metric over the images (the number the tables report)."""
        return {m: math.fsum(r.metrics()[m] for r in self.rows) / len(self.rows) for m in self.metric_names}

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "path": self.path,
            "scale": self.scale,
            "method": self.method,
            "protocol": PROTOCOL,
            "images": len(self.rows),
            "seconds": self.seconds,
            "mean": self.means,
            "rows": [asdict(r) for r in self.rows],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def title(self) -> str:
        return f"{self.dataset} x{self.scale}, {self.method}: {len(self.rows)} images"

    def _cells(self, values: dict[str, float]) -> list[str]:
        formats = {"psnr_y": "{:.2f}", "ssim_y": "{:.4f}", "lpips": "{:.4f}"}
        return [formats[m].format(values[m]) for m in self.metric_names]

    def to_markdown(self, per_image: bool = True) -> str:
        """A markdown table: one row per image (``per_image``) and the mean in bold."""
        names = self.metric_names
        lines = [
            f"**{self.title()}**",
            "",
            "| image | " + " | ".join(METRIC_LABELS[m] for m in names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        if per_image:
            for row in self.rows:
                label = f"{row.name} (gray)" if row.gray else row.name
                lines.append(f"| {label} | " + " | ".join(self._cells(row.metrics())) + " |")
        lines.append("| **mean** | " + " | ".join(f"**{c}**" for c in self._cells(self.means)) + " |")
        return "\n".join(lines)

    def to_text(self, per_image: bool = True) -> str:
        """A plain-text table (the ``restore eval`` output)."""
        names = self.metric_names
        labels = [("* " if r.gray else "") + r.name for r in self.rows]
        width = max([len(label) for label in labels] + [5])
        header = f"  {'image':{width}s}" + "".join(f"  {METRIC_LABELS[m]:>11s}" for m in names)
        lines = [self.title(), header]
        if per_image:
            for label, row in zip(labels, self.rows, strict=True):
                cells = self._cells(row.metrics())
                lines.append(f"  {label:{width}s}" + "".join(f"  {c:>11s}" for c in cells))
        lines.append(f"  {'mean':{width}s}" + "".join(f"  {c:>11s}" for c in self._cells(self.means)))
        if per_image and any(r.gray for r in self.rows):
            lines.append("  (* grayscale file: scored on its gray values)")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Upscalers
# ---------------------------------------------------------------------------------------------


def _bicubic(scale: int) -> Upscaler:
    from restore.degrade import imresize

    def upscale(x: torch.Tensor) -> torch.Tensor:
        return imresize(x, scale=scale, quantize=True)  # MATLAB imresize on a uint8 image

    return upscale


def resolve_upscaler(
    upscale: Any, scale: int, *, device: str | torch.device | None = None
) -> tuple[Upscaler, str]:
    """``(callable (N,3,h,w) -> (N,3,sh,sw), label)`` for ``upscale``.

    ``"bicubic"``: MATLAB bicubic; ``None``: the bundled default model for ``scale``; a bundled
    name, a weights path, a pinned URL or an ``nn.Module``: loaded through
    :func:`restore.api.get_predictor` (``task="sr"``, ``scale`` checked); any other callable is used
    as it is.
    """
    from torch import nn

    scale = _check_scale(scale)
    if isinstance(upscale, str) and upscale.lower() == "bicubic":
        return _bicubic(scale), "bicubic"
    if upscale is None or isinstance(upscale, (str, os.PathLike, tuple, nn.Module)):
        from restore import api, hub

        predictor = api.get_predictor(upscale, task="sr", scale=scale, device=device)
        if upscale is None:
            label = hub.default_model("sr", scale)
        elif isinstance(upscale, nn.Module):
            label = predictor.spec.name
        elif isinstance(upscale, tuple):
            label = upscale[0]
        else:
            label = os.fspath(upscale)
        if label != predictor.spec.name:
            label = f"{label} ({predictor.spec.name})"
        return predictor, label
    if callable(upscale):
        return upscale, getattr(upscale, "__name__", type(upscale).__name__)
    raise TypeError(
        "upscale must be 'bicubic', None, a model name, a weights path, an nn.Module or a callable, "
        f"got {type(upscale).__name__}: {upscale!r}"
    )


# ---------------------------------------------------------------------------------------------
# LPIPS
# ---------------------------------------------------------------------------------------------


def _lpips_missing_message(net: str, weights: Any) -> str:
    try:
        from losses.perceptual import LPIPS_NETS, lpips_package_lin_path, torchvision_weights_path

        arch = LPIPS_NETS[net][0]
        files = [("the lpips package's linear layers", lpips_package_lin_path(net))]
        if weights in (None, "imagenet"):
            files.append((f"torchvision's {arch} ImageNet weights", torchvision_weights_path(arch)))
        elif weights != "random":
            files.append(("the backbone weights", Path(os.path.expanduser(os.fspath(weights)))))
        missing = [f"{what} at '{path}'" for what, path in files if not path.is_file()]
        where = "missing " + (" and ".join(missing) or f"the {net} network")
    except Exception:  # the lpips package itself is missing
        where = "needs the lpips package (pip install lpips) and torchvision's ImageNet backbone weights"
    return f"LPIPS was asked for but its weights are not on this machine (nothing is downloaded): {where}"


def _use_lpips(lpips: bool | None, net: str, weights: Any) -> bool:
    from restore.metrics import lpips_available

    if lpips is not None and not isinstance(lpips, bool):
        raise ValueError(f"lpips must be None (when available), True or False, got {lpips!r}")
    if lpips is False:
        return False
    available = lpips_available(net, weights)
    if lpips and not available:
        from losses.perceptual import WeightsNotFoundError

        raise WeightsNotFoundError(_lpips_missing_message(net, weights))
    return available


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def _to_8bit(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> the 8-bit levels a saved file holds (round half up, as restore.metrics)."""
    return torch.floor(x.clamp(0, 1) * 255 + 0.5) / 255


def score_image(
    output: torch.Tensor, hr: torch.Tensor, scale: int, *, lpips_fn: Callable | None = None
) -> dict[str, float]:
    """Protocol scores of one upscaled image ``(1, 3, H, W)`` against its HR ``(1, C, H, W)``.

    ``C = 1`` (a grayscale file): the output is reduced to its BT.601 luma first and scored on gray
    values. ``lpips_fn(pred, target)`` (RGB, 8-bit, border-cropped) adds ``"lpips"``.
    """
    from restore.io.convert import rgb_to_gray
    from restore.metrics import sr_metrics

    output = output.float().clamp(0, 1)
    pred = rgb_to_gray(output) if hr.shape[1] == 1 else output
    values = {k: float(v[0]) for k, v in sr_metrics(pred, hr, scale).items()}
    if lpips_fn is not None:
        crop = (..., slice(scale, -scale), slice(scale, -scale))
        rgb_pred = _to_8bit(pred).expand(-1, 3, -1, -1)[crop]
        rgb_target = _to_8bit(hr).expand(-1, 3, -1, -1)[crop]
        values["lpips"] = float(lpips_fn(rgb_pred, rgb_target)[0])
    return values


def evaluate_sr(
    dataset_dir: str | os.PathLike,
    scale: int,
    upscale: Any = None,
    *,
    lpips: bool | None = None,
    max_images: int | None = None,
    device: str | torch.device | None = None,
    lpips_net: str = "alex",
    lpips_weights: str | os.PathLike | None = None,
) -> EvalResult:
    """Score ``upscale`` on the SR benchmark folder ``dataset_dir`` at ``scale`` (module docstring).

    ``upscale``: ``"bicubic"``, None (the bundled model for ``scale``), a model name / path /
    module, or a callable ``(N,3,h,w) -> (N,3,sh,sw)`` in [0, 1] (:func:`resolve_upscaler`).
    ``lpips``: None computes LPIPS when its weights are on this machine, True requires them
    (``losses.perceptual.WeightsNotFoundError`` otherwise), False skips it; ``lpips_weights`` is the
    backbone (None: torchvision's ImageNet file). ``max_images``: only the first N images by name.
    A folder not in the layout raises :class:`DatasetLayoutError` before anything is run.
    """
    from restore.io import read_image
    from restore.metrics import lpips_metric

    scale = _check_scale(scale)
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int)
                                   or max_images < 1):
        raise ValueError(f"max_images must be a positive int or None, got {max_images!r}")
    start = time.perf_counter()
    pairs = find_sr_pairs(dataset_dir, scale)
    if max_images is not None:
        pairs = pairs[:max_images]
    lpips_fn = None
    if _use_lpips(lpips, lpips_net, lpips_weights):

        def lpips_fn(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return lpips_metric(pred, target, net=lpips_net, weights=lpips_weights)

    fn, label = resolve_upscaler(upscale, scale, device=device)
    root = Path(dataset_dir)
    result = EvalResult(dataset=root.resolve().name, path=str(root), scale=scale, method=label)
    for pair in pairs:
        lr = read_image(pair.lr, mode="keep")[None]
        hr = read_image(pair.hr, mode="keep")[None]
        _check_pair_size(pair, tuple(hr.shape[-2:]), tuple(lr.shape[-2:]), scale)
        h, w = lr.shape[-2] * scale, lr.shape[-1] * scale
        hr = hr[..., :h, :w]
        rgb = lr.expand(-1, 3, -1, -1) if lr.shape[1] == 1 else lr
        tick = time.perf_counter()
        with torch.inference_mode():
            output = fn(rgb.contiguous())
        seconds = time.perf_counter() - tick
        if not isinstance(output, torch.Tensor) or tuple(output.shape) != (1, 3, h, w):
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ValueError(
                f"upscaler {label!r} returned {shape} for '{pair.lr}' (input {tuple(rgb.shape)}); "
                f"expected (1, 3, {h}, {w}) at scale {scale}"
            )
        values = score_image(output.detach().cpu(), hr, scale, lpips_fn=lpips_fn)
        result.rows.append(ImageScore(pair.name, gray=hr.shape[1] == 1, seconds=seconds, **values))
    result.seconds = time.perf_counter() - start
    return result
