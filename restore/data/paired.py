"""Paired folders: degraded inputs beside their clean targets, matched by file stem.

Super-resolution layout (Set5, Set14, BSD100 in ../shared/data; DIV2K-style)::

    root/HR/<name>.png                 target, full size
    root/LR_bicubic/X<scale>/<name>.png  input, HR // scale (top-left modcrop, then downscaled)

Same-size pairs (deblurring, e.g. GoPro ``blur/`` + ``sharp/``): pass ``input_dir`` and
``target_dir``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..io.image import image_size, list_images, read_image
from .folder import _Epoch, _pair, apply_flips, augment_flips, derive_seed, random_crop_box

__all__ = ["PairedImageFolder"]


class PairedImageFolder(Dataset):
    """Pairs of (input, target) images from two folders, matched by stem, with optional aligned crops.

    Items: ``{"input": (3, h, w), "target": (3, h*scale, w*scale), "name": stem}``, float32 in
    [0, 1]. The target is cropped from its top-left corner to ``input size * scale`` (the SR
    benchmark convention: LR = imresize(modcrop(HR, scale))). A target must satisfy
    ``target // scale == input`` in both sides (equal sizes when scale = 1), else a ``ValueError``
    names both files.

    Args:
        root: the dataset folder.
        scale: target size / input size (1 for deblurring/denoising pairs).
        hr_dir, lr_dir: target and input folders relative to ``root``; ``{scale}`` is filled in.
        input_dir, target_dir: explicit folders (relative to ``root`` or absolute); override
            ``lr_dir`` / ``hr_dir``.
        patch_size: target patch (int or (h, w), a multiple of ``scale``) for random aligned
            crops, seeded by (seed, epoch, index) as in :class:`CleanImageFolder`; None gives
            whole images (batch size 1).
        augment: random flips/transposition applied identically to input and target (only with
            ``patch_size``).
        seed: base seed for crops.
        check_sizes: compare every pair's sizes from the file headers at construction.
        cache: keep decoded pairs in memory (per worker process).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        scale: int = 1,
        *,
        hr_dir: str = "HR",
        lr_dir: str = "LR_bicubic/X{scale}",
        input_dir: str | os.PathLike | None = None,
        target_dir: str | os.PathLike | None = None,
        patch_size: int | tuple[int, int] | None = None,
        augment: bool = False,
        seed: int = 0,
        check_sizes: bool = True,
        cache: bool = False,
    ) -> None:
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
            raise ValueError(f"scale must be a positive int, got {scale!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder not found: '{self.root}'")
        self.scale = scale
        self.input_dir = self.root / (input_dir if input_dir is not None else lr_dir.format(scale=scale))
        self.target_dir = self.root / (target_dir if target_dir is not None else hr_dir.format(scale=scale))
        for role, folder in (("input", self.input_dir), ("target", self.target_dir)):
            if not folder.is_dir():
                raise FileNotFoundError(f"{role} folder not found: '{folder}'")
        self.patch_size = _pair(patch_size, "patch_size") if patch_size is not None else None
        if self.patch_size is not None and any(p % scale for p in self.patch_size):
            raise ValueError(f"patch_size {patch_size!r} must be a multiple of scale={scale}")
        self.augment = augment
        self.seed = int(seed)
        self.cache = cache
        self._epoch = _Epoch()
        self._pairs: dict[int, tuple[Tensor, Tensor]] = {}

        inputs = self._by_stem(self.input_dir)
        targets = self._by_stem(self.target_dir)
        for stem, path in inputs.items():
            if stem not in targets:
                raise ValueError(f"input file '{path}' has no target '{stem}.*' in '{self.target_dir}'")
        for stem, path in targets.items():
            if stem not in inputs:
                raise ValueError(f"target file '{path}' has no input '{stem}.*' in '{self.input_dir}'")
        if not inputs:
            raise ValueError(f"no images found in '{self.input_dir}'")
        self.names = sorted(inputs)
        self.pairs = [(inputs[name], targets[name]) for name in self.names]
        if check_sizes:
            for input_path, target_path in self.pairs:
                self._check_sizes(input_path, target_path, image_size(input_path), image_size(target_path))

    @staticmethod
    def _by_stem(folder: Path) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for path in list_images(folder):
            if path.stem in found:
                raise ValueError(
                    f"two files with the stem '{path.stem}' in '{folder}': "
                    f"{found[path.stem].name}, {path.name}"
                )
            found[path.stem] = path
        return found

    def _check_sizes(
        self, input_path: Path, target_path: Path, input_hw: tuple[int, int], target_hw: tuple[int, int]
    ) -> None:
        s = self.scale
        if target_hw[0] // s != input_hw[0] or target_hw[1] // s != input_hw[1]:
            h, w = input_hw[0] * s, input_hw[1] * s
            expected = f"{h}x{w}" if s == 1 else f"{h}..{h + s - 1} x {w}..{w + s - 1}"
            raise ValueError(
                f"size mismatch: input '{input_path}' is {input_hw[0]}x{input_hw[1]} (HxW) and target "
                f"'{target_path}' is {target_hw[0]}x{target_hw[1]}; with scale={s} the target must be "
                f"{expected}"
            )
        if self.patch_size is not None and (
            input_hw[0] * s < self.patch_size[0] or input_hw[1] * s < self.patch_size[1]
        ):
            raise ValueError(
                f"image '{target_path}' ({input_hw[0] * s}x{input_hw[1] * s} after cropping) is smaller "
                f"than the patch {self.patch_size[0]}x{self.patch_size[1]}"
            )

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def epoch(self) -> int:
        return self._epoch.get()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops items use (call before ``iter(loader)``)."""
        self._epoch.set(epoch)

    def _load(self, index: int) -> tuple[Tensor, Tensor]:
        if index in self._pairs:
            return self._pairs[index]
        input_path, target_path = self.pairs[index]
        lr, hr = read_image(input_path), read_image(target_path)
        self._check_sizes(input_path, target_path, tuple(lr.shape[-2:]), tuple(hr.shape[-2:]))
        s = self.scale
        hr = hr[:, : lr.shape[-2] * s, : lr.shape[-1] * s].contiguous()
        if self.cache:
            self._pairs[index] = (lr, hr)
        return lr, hr

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        lr, hr = self._load(index)
        if self.patch_size is not None:
            s = self.scale
            generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, index))
            lr_patch = (self.patch_size[0] // s, self.patch_size[1] // s)
            top, left = random_crop_box(*lr.shape[-2:], lr_patch, generator)
            lr = lr[:, top : top + lr_patch[0], left : left + lr_patch[1]]
            hr = hr[:, top * s : (top + lr_patch[0]) * s, left * s : (left + lr_patch[1]) * s]
            if self.augment:
                flips = augment_flips(generator, allow_transpose=lr_patch[0] == lr_patch[1])
                lr, hr = apply_flips(lr, flips), apply_flips(hr, flips)
        return {"input": lr.contiguous(), "target": hr.contiguous(), "name": self.names[index]}

    def __repr__(self) -> str:
        return (
            f"PairedImageFolder('{self.root}', scale={self.scale}, pairs={len(self)}, "
            f"input_dir='{self.input_dir}', target_dir='{self.target_dir}')"
        )
