"""Datasets: clean image folders (degraded later on the device), paired folders, sample images.

    from restore.data import CleanImageFolder, PairedImageFolder, sample_image
    train = CleanImageFolder("BSDS500_train", patch_size=128, scale=4)
    val = PairedImageFolder("Set5", scale=4)           # HR/ + LR_bicubic/X4/
"""

from .folder import CleanImageFolder, derive_seed
from .paired import PairedImageFolder
from .sample import sample_image, sample_images_dir, sample_names, sample_path

__all__ = [
    "CleanImageFolder",
    "PairedImageFolder",
    "derive_seed",
    "sample_image",
    "sample_images_dir",
    "sample_names",
    "sample_path",
]
