"""A dataset of clean image patches from folders; degradation runs later, batched on the device.

Every random choice for item ``index`` (crop position, flips) comes from a ``torch.Generator`` seeded
by ``(seed, epoch, index)``, so an item is the same whatever the number of DataLoader workers, the
worker it lands on, or the global RNG state. No ``worker_init_fn`` is needed: nothing here uses the
global or per-worker random state. The epoch lives in a shared-memory tensor, so
:meth:`CleanImageFolder.set_epoch` reaches persistent workers too (call it before ``iter(loader)``).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..io.image import IMAGE_SUFFIXES, ImageReadError, list_images, read_image

__all__ = ["CleanImageFolder", "derive_seed", "random_crop_box"]

Degradation = Callable[[Tensor, torch.Generator], Tensor]
_SEED_BITS = 63  # fits int64, so default_collate turns seeds into a LongTensor


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from integers/strings (stable across processes and platforms; blake2b)."""
    text = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> (64 - _SEED_BITS)


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        pair = (value, value)
    else:
        pair = tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"{name} must be a positive int or (height, width), got {value!r}")
    return pair  # type: ignore[return-value]


def random_crop_box(
    height: int, width: int, patch: tuple[int, int], generator: torch.Generator, step: int = 1
) -> tuple[int, int]:
    """Top-left ``(top, left)`` of a random ``patch`` crop, on a grid of ``step`` pixels."""
    rows = (height - patch[0]) // step + 1
    cols = (width - patch[1]) // step + 1
    top = int(torch.randint(rows, (1,), generator=generator)) * step
    left = int(torch.randint(cols, (1,), generator=generator)) * step
    return top, left


def augment_flips(generator: torch.Generator, allow_transpose: bool) -> tuple[bool, bool, bool]:
    """Draw (hflip, vflip, transpose) with probability 1/2 each (3 draws always, for a fixed stream)."""
    draws = torch.rand(3, generator=generator) < 0.5
    return bool(draws[0]), bool(draws[1]), bool(draws[2]) and allow_transpose


def apply_flips(x: Tensor, flips: tuple[bool, bool, bool]) -> Tensor:
    """Apply (hflip, vflip, transpose) to ``(C, H, W)``; together they give the 8 dihedral transforms."""
    if flips[0]:
        x = x.flip(-1)
    if flips[1]:
        x = x.flip(-2)
    if flips[2]:
        x = x.transpose(-2, -1)
    return x


class _Epoch:
    """An epoch counter in shared memory, visible to DataLoader workers (persistent ones too)."""

    def __init__(self) -> None:
        self.value = torch.zeros(1, dtype=torch.int64).share_memory_()

    def get(self) -> int:
        return int(self.value[0])

    def set(self, epoch: int) -> None:
        self.value[0] = int(epoch)


class CleanImageFolder(Dataset):
    """Random clean patches from folders of images, reproducible per (seed, epoch, index).

    Items are dicts: ``"target"`` float32 ``(3, p_h, p_w)`` in [0, 1], ``"path"`` (str) and
    ``"seed"`` (int): a per-item seed for the degradation, independent of the crop's random stream
    (seed a generator on the training device with it to make the pair reproducible). With
    ``degradation`` given, ``"input"`` = ``degradation(target[None], generator)[0]`` is added, the
    generator seeded with ``"seed"``.

    Args:
        root: a folder or a list of folders (searched with ``recursive``).
        patch_size: int or (height, width); a multiple of ``scale``. None returns whole images
            cropped to a multiple of ``scale`` (use batch size 1).
        scale: the super-resolution factor the patches will be degraded by (1 otherwise).
        augment: random horizontal and vertical flips and (for square patches) transposition,
            which together give all 8 rotations/reflections.
        seed: base seed.
        on_error: ``"raise"``: an unreadable or too-small image raises an error naming the file;
            ``"skip"``: a warning names the file and the reason, and the next image in sorted
            order is used instead (deterministic; bad files are remembered per process).
        repeat: the file list is repeated this many times per epoch (for small folders).
        cache: keep decoded images in memory (per worker process: use ``persistent_workers=True``).
        degradation: optional ``(clean (1, C, H, W), generator) -> degraded`` applied per item.
        recursive: search sub-folders.
    """

    def __init__(
        self,
        root: str | os.PathLike | Sequence[str | os.PathLike],
        patch_size: int | tuple[int, int] | None,
        *,
        scale: int = 1,
        augment: bool = True,
        seed: int = 0,
        on_error: str = "raise",
        repeat: int = 1,
        cache: bool = False,
        degradation: Degradation | None = None,
        recursive: bool = False,
    ) -> None:
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be a positive int, got {scale!r}")
        self.patch_size = _pair(patch_size, "patch_size") if patch_size is not None else None
        if self.patch_size is not None and any(p % scale for p in self.patch_size):
            raise ValueError(f"patch_size {patch_size!r} must be a multiple of scale={scale}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if not isinstance(repeat, int) or repeat < 1:
            raise ValueError(f"repeat must be a positive int, got {repeat!r}")
        roots = [root] if isinstance(root, (str, os.PathLike)) else list(root)
        self.roots = [Path(r) for r in roots]
        self.files: list[Path] = []
        for folder in self.roots:
            self.files.extend(list_images(folder, recursive=recursive))
        if not self.files:
            where = ", ".join(f"'{r}'" for r in self.roots)
            raise ValueError(f"no images found in {where} (suffixes {', '.join(IMAGE_SUFFIXES)})")
        self.scale = scale
        self.augment = augment
        self.seed = int(seed)
        self.on_error = on_error
        self.repeat = repeat
        self.cache = cache
        self.degradation = degradation
        self._epoch = _Epoch()
        self._images: dict[int, Tensor] = {}
        self._bad: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.files) * self.repeat

    @property
    def epoch(self) -> int:
        return self._epoch.get()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops/augmentations items use (call before ``iter(loader)``)."""
        self._epoch.set(epoch)

    def _load(self, file_index: int) -> Tensor:
        image = self._images.get(file_index)
        if image is None:
            image = read_image(self.files[file_index])
            if self.cache:
                self._images[file_index] = image
        return image

    def _check_size(self, file_index: int, image: Tensor) -> None:
        height, width = image.shape[-2:]
        need = self.patch_size or (self.scale, self.scale)
        if height < need[0] or width < need[1]:
            raise ValueError(
                f"image '{self.files[file_index]}' is {height}x{width} (HxW), smaller than the "
                f"patch {need[0]}x{need[1]}"
            )

    def _load_checked(self, index: int) -> tuple[int, Tensor]:
        """(file index, image) for item ``index``, skipping bad files when on_error='skip'."""
        count = len(self.files)
        first = index % count
        for offset in range(count):
            file_index = (first + offset) % count
            if file_index in self._bad:
                continue
            try:
                image = self._load(file_index)
                self._check_size(file_index, image)
                return file_index, image
            except (ImageReadError, ValueError) as error:
                if self.on_error == "raise":
                    raise
                self._bad[file_index] = str(error)
                warnings.warn(f"skipping '{self.files[file_index]}': {error}", RuntimeWarning, stacklevel=3)
        raise RuntimeError(f"no usable image left among {count} files in {[str(r) for r in self.roots]}")

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        item_seed = derive_seed(self.seed, self.epoch, index)
        generator = torch.Generator().manual_seed(item_seed)
        file_index, image = self._load_checked(index)
        s = self.scale
        if self.patch_size is None:
            height, width = image.shape[-2:]
            patch = image[:, : height - height % s, : width - width % s]
        else:
            top, left = random_crop_box(*image.shape[-2:], self.patch_size, generator)
            patch = image[:, top : top + self.patch_size[0], left : left + self.patch_size[1]]
        if self.augment:
            flips = augment_flips(generator, allow_transpose=patch.shape[-1] == patch.shape[-2])
            patch = apply_flips(patch, flips)
        item = {
            "target": patch.contiguous(),
            "path": str(self.files[file_index]),
            "seed": derive_seed(item_seed, "degradation"),
        }
        if self.degradation is not None:
            degrade_generator = torch.Generator().manual_seed(item["seed"])
            degraded = self.degradation(item["target"][None], degrade_generator)
            item["input"] = degraded[0] if degraded.ndim == 4 else degraded
        return item

    def __repr__(self) -> str:
        return (
            f"CleanImageFolder({[str(r) for r in self.roots]}, files={len(self.files)}, "
            f"patch_size={self.patch_size}, scale={self.scale}, repeat={self.repeat}, epoch={self.epoch})"
        )
