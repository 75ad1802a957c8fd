"""restore: image and audio restoration (super-resolution, inpainting, deblurring, enhancement).

Importing ``restore`` is cheap; submodules load on first use.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("restore-toolkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
