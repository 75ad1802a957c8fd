"""Tiny built-in sample images (public domain / CC0, from scikit-image's bundled data).

Recipes, tests and demos use them so they need no external data. Sources and licences are listed in
``sample_images/LICENSE.md`` beside the files.

    from restore.data import sample_image, sample_names
    sample_names()                  # ['astronaut', 'chelsea', 'coffee', 'hubble', 'rocket']
    img = sample_image("chelsea")   # float32 (3, 168, 256) in [0, 1]
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["sample_image", "sample_images_dir", "sample_names", "sample_path"]

_DIR = Path(__file__).resolve().parent / "sample_images"
_SUFFIXES = (".png", ".jpg")


def sample_images_dir() -> Path:
    """The folder holding the sample images (and their LICENSE.md)."""
    return _DIR


def sample_names() -> list[str]:
    """Names of the bundled sample images, sorted."""
    return sorted(p.stem for p in _DIR.iterdir() if p.suffix.lower() in _SUFFIXES)


def sample_path(name: str = "astronaut") -> Path:
    """Path of the sample image ``name``."""
    for suffix in _SUFFIXES:
        path = _DIR / f"{name}{suffix}"
        if path.is_file():
            return path
    raise ValueError(f"unknown sample image {name!r}; available: {sample_names()}")


def sample_image(name: str = "astronaut") -> torch.Tensor:
    """Sample image ``name`` as float32 ``(3, H, W)`` in [0, 1] (every side <= 256)."""
    from ..io.image import read_image

    return read_image(sample_path(name))
