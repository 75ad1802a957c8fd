"""The loss registry shared by every restore task and both modalities.

    import losses
    losses.available(modality="image")      # names
    print(losses.describe("ms_ssim"))       # metadata, arguments, docstring
    loss_fn = losses.build({"l1": 1.0, "ms_ssim": 0.2})
    total, terms = loss_fn(pred, target)

Entries live in one module per family (``losses.pixel``, ``losses.structural``, ...), each a
function and an ``nn.Module`` in the style of kornia. Importing ``losses`` is cheap: the entry
modules load on the first registry query.
"""

from .lossset import LossSet, LossTerm, build, load_config
from .registry import (
    LossSpec,
    RegisteredLoss,
    available,
    create,
    describe,
    get,
    register,
    specs,
)

__all__ = [
    "LossSet",
    "LossSpec",
    "LossTerm",
    "RegisteredLoss",
    "available",
    "build",
    "create",
    "describe",
    "get",
    "load_config",
    "register",
    "specs",
]
