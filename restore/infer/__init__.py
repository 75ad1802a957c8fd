"""Inference: tiled forwards with blended overlaps and a :class:`Predictor` that picks device,
precision and tile size.

    from restore.infer import Predictor
    predictor = Predictor(restore.models.build("compact_tiny"))   # cuda if available, else cpu
    out = predictor(image)                                         # (N,3,H,W) -> (N,3,4H,4W) float32
"""

from .predictor import Predictor, default_precision, resolve_precision
from .tiling import (
    blend_profile,
    blend_window,
    default_overlap,
    is_out_of_memory,
    tile_boxes,
    tiled_forward,
    tiled_forward_with_fallback,
)

__all__ = [
    "Predictor",
    "blend_profile",
    "blend_window",
    "default_overlap",
    "default_precision",
    "is_out_of_memory",
    "resolve_precision",
    "tile_boxes",
    "tiled_forward",
    "tiled_forward_with_fallback",
]
