"""File input/output: images (bit depth, alpha, EXIF orientation, atomic writes).

    from restore.io import read_image, write_image
    img = read_image("photo.png")        # float32 (3, H, W) in [0, 1]
    write_image("out.png", img)
"""

from .image import (
    IMAGE_SUFFIXES,
    ImageReadError,
    image_size,
    list_images,
    read_icc_profile,
    read_image,
    read_image_with_alpha,
    write_image,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageReadError",
    "image_size",
    "list_images",
    "read_icc_profile",
    "read_image",
    "read_image_with_alpha",
    "write_image",
]
