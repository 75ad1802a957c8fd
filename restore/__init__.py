"""restore: image and audio restoration (super-resolution, inpainting, deblurring, enhancement).

Importing ``restore`` is cheap; submodules load on first use.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("restore-toolkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "deblur", "enhance", "inpaint", "upscale"]

_API = ("upscale", "inpaint", "deblur", "enhance")


def __getattr__(name: str):
    """``restore.upscale`` & co. load the API (and torch) on first use."""
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'restore' has no attribute {name!r}")
