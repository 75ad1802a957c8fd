"""Turn what a user passes to the API into a model input, and the model output back into that kind.

    source = to_model_input(img)                 # path, PIL image, numpy array or torch tensor
    out = model(source.rgb)                      # (N, 3, H', W') float32 in [0, 1]
    result = from_model_output(out, source)      # same kind, dtype, layout, mode as ``img``
    save_like(result, "out.png", source)         # keeps bit depth, alpha and ICC profile

Decisions (the API documents these to its users):

- Kinds. A PIL image comes back as a PIL image, a numpy array as a numpy array (same dtype, same
  layout ``HW``/``HWC``, same channel count), a tensor as a tensor (same dtype, layout ``HW``/``CHW``/
  ``NCHW`` and device). A **path** comes back as a **numpy array** (``HW`` for gray files, else
  ``HWC`` with alpha last; uint8 for 8-bit files, uint16 for 16-bit files, float32 for float TIFFs):
  Pillow has no mode for 16-bit RGB, RGBA or gray+alpha, and "16-bit stays 16-bit" must hold for
  every file. :func:`save_like` writes such a result keeping bit depth, alpha and the file's ICC.
- Values. uint8 is divided by 255, uint16 by 65535 (the bit depth comes from the dtype or the file,
  never from the values). Float input must lie in [0, 1] (a slack of 1e-3 is clamped away); NaN,
  inf or values beyond the slack raise ValueError naming min and max. Output is clamped to [0, 1],
  then scaled and rounded to the integer dtype.
- Gray. Gray input is replicated to 3 channels for the model; a 3-channel model output goes back to
  gray with ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (as ``PIL.Image.convert("L")`` and
  Real-ESRGAN's ``cv2.COLOR_BGR2GRAY``).
- Alpha. 2 or 4 channels: the last is alpha, kept out of the model and restored separately. What is
  implemented here is ``alpha_mode="resize"``: :func:`resize_alpha` (bicubic, clamped; Real-ESRGAN's
  non-default path resizes it bilinearly with OpenCV). Real-ESRGAN's default runs the model on the
  alpha instead (``alpha_mode="model"``, sharper edges, twice the work): the caller runs
  ``model(source.alpha.expand(-1, 3, -1, -1))``, turns the result to one channel with
  :func:`rgb_to_gray` and passes it as ``alpha=`` to :func:`from_model_output`.
- PIL modes: 1 -> L (a restored bilevel image has gray levels), L, LA, RGB, RGBA, I;16 (any byte
  order), I (values 0..65535), F stay; La -> LA; RGBa -> RGBA; P -> RGBA if it has transparency,
  else RGB; PA -> RGBA; RGBX, YCbCr, CMYK, LAB, HSV -> RGB (Pillow's plain conversion).
- Metadata. EXIF orientation is applied on input (the output is upright and carries no EXIF). The
  ICC profile is carried over (PIL results: ``info["icc_profile"]``; files: :func:`save_like`), unless
  it describes a colour space other than RGB or gray (e.g. CMYK), which the pixels no longer are in:
  then it is dropped with a warning.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from .image import (
    _FORMATS,
    DEFAULT_PNG_COMPRESSION,
    ImageReadError,
    _is_multichannel_16bit,
    read_image_with_alpha,
    write_array,
    write_image,
)
from .quantise import NON_FINITE, QuantisedImage, all_finite, quantise, rgb_to_gray

__all__ = [
    "ImageInput",
    "from_model_output",
    "output_image",
    "resize_alpha",
    "rgb_to_gray",
    "save_like",
    "to_model_input",
]

FLOAT_SLACK = 1e-3  # float input may overshoot [0, 1] by this much (rounding in the user's maths)
_PIL_16BIT = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2", "I;16N": "=u2"}
_PIL_TO_RGB = ("RGBX", "YCbCr", "CMYK", "LAB", "HSV")
_NUMPY_DTYPES = "uint8, uint16, float16, float32 or float64"
_TENSOR_DTYPES = "torch.uint8, torch.uint16, torch.float16, torch.bfloat16, torch.float32 or torch.float64"
_TENSOR_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass
class ImageInput:
    """An image coerced for a model, with what is needed to give the result back in the same kind.

    ``rgb``: float32 (N, 3, H, W) in [0, 1] on the input's device (gray replicated to 3 channels;
    N = 1 except for NCHW tensors). ``alpha``: float32 (N, 1, H, W) or None. ``kind``: "path",
    "pil", "numpy" or "tensor". ``bit_depth``: 8, 16 or 32 (float input). ``dtype``: the numpy
    dtype (path, PIL, numpy) or torch dtype (tensor) of the pixels. ``layout``: "HW"/"HWC" (numpy,
    and the numpy result of a path), "HW"/"CHW"/"NCHW" (tensor), None (PIL). ``batch``: True for an
    NCHW tensor (the result keeps its N axis).
    """

    rgb: torch.Tensor
    alpha: torch.Tensor | None
    kind: str
    gray: bool
    bit_depth: int
    dtype: Any
    layout: str | None = None
    icc_profile: bytes | None = None
    pil_mode: str | None = None
    path: Path | None = None
    batch: bool = False
    device: torch.device | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the input."""
        return int(self.rgb.shape[-2]), int(self.rgb.shape[-1])


# ----------------------------------------------------------------------------- input


def to_model_input(image: Any, *, name: str = "image") -> ImageInput:
    """Coerce a path, PIL image, numpy array (HW/HWC) or tensor (HW/CHW/NCHW) into an :class:`ImageInput`.

    ``name`` is used in error messages (e.g. ``"mask"``). Raises TypeError for an unsupported type
    or dtype, ValueError for a bad shape, an empty image or float values outside [0, 1], and
    :class:`~restore.io.image.ImageReadError` for a path that cannot be read.
    """
    if isinstance(image, (str, os.PathLike)):
        return _from_path(image, name)
    if isinstance(image, Image.Image):
        return _from_pil(image, name)
    if isinstance(image, np.ndarray):
        return _from_numpy(image, name)
    if isinstance(image, torch.Tensor):
        return _from_tensor(image, name)
    kind = type(image)
    kind_name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    raise TypeError(
        f"{name} must be a path (str or os.PathLike), a PIL.Image.Image, a numpy array (HW or HWC) "
        f"or a torch.Tensor (HW, CHW or NCHW); got {kind_name}"
    )


def _from_path(image: str | os.PathLike, name: str) -> ImageInput:
    if isinstance(image, str) and "://" in image:
        raise ImageReadError(image, "URLs are not downloaded; save the file and pass its path")
    path = Path(image)
    color, alpha = read_image_with_alpha(path, mode="keep")
    with Image.open(path) as im:
        mode = im.mode
        icc = im.info.get("icc_profile") or None
        if mode == "F":
            bit_depth = 32
        elif mode in _PIL_16BIT or mode == "I" or _is_multichannel_16bit(path, im):
            bit_depth = 16
        else:
            bit_depth = 8
    x = color if alpha is None else torch.cat([color, alpha])
    if bit_depth == 32:
        x = _check_float(x, name, "float32")
    dtype = {8: np.dtype(np.uint8), 16: np.dtype(np.uint16), 32: np.dtype(np.float32)}[bit_depth]
    rgb, alpha, gray = _split(x[None])
    return ImageInput(
        rgb=rgb,
        alpha=alpha,
        kind="path",
        gray=gray,
        bit_depth=bit_depth,
        dtype=dtype,
        layout="HW" if x.shape[0] == 1 else "HWC",
        icc_profile=_usable_icc(icc, gray, name),
        pil_mode=mode,
        path=path,
        device=torch.device("cpu"),
    )


def _from_pil(im: Image.Image, name: str) -> ImageInput:
    mode = im.mode
    icc = im.info.get("icc_profile") or None
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # unreadable EXIF block: keep the pixels as stored, as read_image does
        pass
    scale = 255.0
    bit_depth = 8
    if mode in _PIL_16BIT:
        array, scale, bit_depth = np.asarray(im), 65535.0, 16
    elif mode == "I":
        array, scale, bit_depth = np.asarray(im), 65535.0, 16
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise ValueError(
                f"{name}: PIL mode 'I' is read as 16-bit samples 0..65535; "
                f"got min {array.min()}, max {array.max()}"
            )
    elif mode == "F":
        array, scale, bit_depth = np.asarray(im), 1.0, 32
    elif mode in ("L", "LA", "RGB", "RGBA"):
        array = np.asarray(im)
    elif mode == "1":
        array = np.asarray(im.convert("L"))
    elif mode in ("La", "RGBa"):
        array = np.asarray(im.convert(mode.upper()))
    elif mode in ("P", "PA"):
        array = np.asarray(im.convert("RGBA" if _palette_has_alpha(im) else "RGB"))
    elif mode in _PIL_TO_RGB:
        array = np.asarray(im.convert("RGB"))
    else:
        raise ValueError(
            f"{name} has unsupported PIL mode {mode!r}; supported: 1, L, LA, P, PA, RGB, RGBA, "
            f"I;16, I;16B, I, F (and La, RGBa, RGBX, YCbCr, CMYK, LAB, HSV, converted to RGB(A))"
        )
    if 0 in array.shape[:2]:
        raise ValueError(f"empty image: {name} has PIL size {im.size}, with no pixels")
    x = _array_to_chw(array, scale)
    if bit_depth == 32:
        x = _check_float(x, name, "float32")
    rgb, alpha, gray = _split(x[None])
    return ImageInput(
        rgb=rgb,
        alpha=alpha,
        kind="pil",
        gray=gray,
        bit_depth=bit_depth,
        dtype=array.dtype,
        icc_profile=_usable_icc(icc, gray, name),
        pil_mode=mode,
        device=torch.device("cpu"),
    )


def _palette_has_alpha(im: Image.Image) -> bool:
    palette_mode = im.palette.mode if im.palette is not None else ""
    return im.mode == "PA" or "transparency" in im.info or palette_mode == "RGBA"


def _from_numpy(array: np.ndarray, name: str) -> ImageInput:
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "u" and size in (1, 2):
        bit_depth, scale = 8 * size, float(2 ** (8 * size) - 1)
    elif kind == "f" and size in (2, 4, 8):
        bit_depth, scale = 32, 1.0
    else:
        raise TypeError(f"{name} has unsupported dtype {array.dtype}; numpy images must be {_NUMPY_DTYPES}")
    shape = tuple(array.shape)
    if array.ndim == 2:
        layout = "HW"
    elif array.ndim == 3 and 1 <= shape[2] <= 4:
        layout = "HWC"
    else:
        hint = ""
        if array.ndim == 3 and 1 <= shape[0] <= 4:
            hint = "; if it is channels-first (CHW), pass array.transpose(1, 2, 0)"
        raise ValueError(
            f"{name} must be a numpy array of shape (H, W) or (H, W, C) with C in 1..4; "
            f"got shape {shape}{hint}"
        )
    if 0 in shape[:2]:
        raise ValueError(f"empty image: {name} has shape {shape}, with no pixels")
    x = _array_to_chw(array, scale)
    if bit_depth == 32:
        x = _check_float(x, name, str(array.dtype))
    rgb, alpha, gray = _split(x[None])
    return ImageInput(
        rgb=rgb,
        alpha=alpha,
        kind="numpy",
        gray=gray,
        bit_depth=bit_depth,
        dtype=array.dtype,
        layout=layout,
        device=torch.device("cpu"),
    )


def _from_tensor(tensor: torch.Tensor, name: str) -> ImageInput:
    dtype = tensor.dtype
    if dtype == torch.uint8:
        bit_depth, scale = 8, 255.0
    elif dtype == torch.uint16:
        bit_depth, scale = 16, 65535.0
    elif dtype in _TENSOR_FLOATS:
        bit_depth, scale = 32, 1.0
    else:
        raise TypeError(f"{name} has unsupported dtype {dtype}; image tensors must be {_TENSOR_DTYPES}")
    shape = tuple(tensor.shape)
    if tensor.ndim == 2:
        layout, x = "HW", tensor[None, None]
    elif tensor.ndim == 3 and 1 <= shape[0] <= 4:
        layout, x = "CHW", tensor[None]
    elif tensor.ndim == 4 and 1 <= shape[1] <= 4:
        layout, x = "NCHW", tensor
    else:
        hint = ""
        if tensor.ndim == 3 and 1 <= shape[2] <= 4:
            hint = "; if it is channels-last (HWC), pass tensor.permute(2, 0, 1)"
        raise ValueError(
            f"{name} must be a tensor of shape (H, W), (C, H, W) or (N, C, H, W) with C in 1..4; "
            f"got shape {shape}{hint}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"empty batch: {name} has shape {shape}, with no images")
    if 0 in x.shape[-2:]:
        raise ValueError(f"empty image: {name} has shape {shape}, with no pixels")
    x = x.detach().to(torch.float32)
    if bit_depth == 32:
        x = _check_float(x, name, str(dtype))
    else:
        x = x / scale
    rgb, alpha, gray = _split(x)
    return ImageInput(
        rgb=rgb,
        alpha=alpha,
        kind="tensor",
        gray=gray,
        bit_depth=bit_depth,
        dtype=dtype,
        layout=layout,
        batch=layout == "NCHW",
        device=tensor.device,
    )


def _array_to_chw(array: np.ndarray, scale: float) -> torch.Tensor:
    """(H, W) or (H, W, C) array -> float32 (C, H, W) divided by ``scale`` (a fresh, writable copy).

    The pixels keep the array's (H, W, C) order in memory (``x[None]`` is channels_last): the copy
    and the division are then plain passes, 8 ms instead of 52 for transposing a 2000x1500 RGB photo
    into (C, H, W) order (2-core AMD EPYC), and the Predictor cuts its channels_last tiles from
    contiguous rows.
    """
    x = torch.from_numpy(np.array(array, dtype=np.float32, order="C", copy=True))
    x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
    return x.div_(scale) if scale != 1.0 else x


def _check_float(x: torch.Tensor, name: str, dtype: str) -> torch.Tensor:
    """Refuse NaN/inf and values outside [0, 1] (beyond :data:`FLOAT_SLACK`); clamp the slack away."""
    low, high = (float(v) for v in torch.aminmax(x))  # NaN propagates into both
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if low < -FLOAT_SLACK or high > 1.0 + FLOAT_SLACK:
        hint = " (0..255 data stored as floats? divide by 255 or pass uint8)" if high > 1.5 else ""
        raise ValueError(
            f"{name} has {dtype} values outside [0, 1]: min {low:.6g}, max {high:.6g}; "
            f"float images must lie in [0, 1]{hint}"
        )
    return x.clamp(0.0, 1.0)


def _split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """(N, C, H, W) with C in 1..4 -> (rgb (N, 3, H, W), alpha (N, 1, H, W) or None, gray); rgb is
    channels_last when ``x`` holds its channels last in memory (an array's pixels), else contiguous."""
    layout = torch.channels_last if x.shape[1] > 1 and x.stride(1) == 1 else torch.contiguous_format
    channels = x.shape[1]
    has_alpha = channels in (2, 4)
    color = x[:, : channels - 1] if has_alpha else x
    gray = color.shape[1] == 1
    rgb = color.expand(-1, 3, -1, -1) if gray else color
    alpha = x[:, channels - 1 :].contiguous() if has_alpha else None
    return rgb.contiguous(memory_format=layout), alpha, gray


def _usable_icc(profile: bytes | None, gray: bool, name: str) -> bytes | None:
    """Keep an ICC profile whose colour space (header bytes 16..20) is RGB or gray; drop others."""
    if not profile:
        return None
    profile = bytes(profile)
    space = profile[16:20].decode("latin-1").strip() if len(profile) >= 20 else ""
    if space and space not in ("RGB", "GRAY"):
        warnings.warn(
            f"{name}: dropped its ICC profile for colour space {space!r}: the pixels were converted to "
            f"{'gray' if gray else 'RGB'} without colour management",
            stacklevel=4,
        )
        return None
    return profile


# ----------------------------------------------------------------------------- output


def resize_alpha(alpha: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize an alpha channel ``(N, 1, H, W)`` to ``size = (H', W')``: bicubic, then clamped to [0, 1].

    This is ``alpha_mode="resize"``: the alpha does not go through the model (cheap, and a
    restoration model is not trained on alpha mattes). Bicubic as ``torch.nn.functional.interpolate``
    (a = -0.75, pixel centres, no antialiasing; OpenCV's ``INTER_CUBIC`` gives the same), computed in
    float32 with autocast off; the result has ``alpha``'s dtype.
    """
    if not isinstance(alpha, torch.Tensor) or alpha.ndim != 4 or alpha.shape[1] != 1:
        shape = tuple(alpha.shape) if isinstance(alpha, torch.Tensor) else type(alpha).__name__
        raise ValueError(f"alpha must be a tensor (N, 1, H, W), got {shape}")
    if not alpha.is_floating_point():
        raise ValueError(f"alpha must be a floating-point tensor in [0, 1], got dtype {alpha.dtype}")
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be (H, W) with positive sides, got {size}")
    if tuple(alpha.shape[-2:]) == size:
        return alpha.clamp(0.0, 1.0)
    with torch.autocast(device_type=alpha.device.type, enabled=False):
        out = torch.nn.functional.interpolate(
            alpha.float(), size=size, mode="bicubic", align_corners=False, antialias=False
        )
    return out.clamp_(0.0, 1.0).to(alpha.dtype)


def output_image(source: ImageInput, scale: int) -> QuantisedImage | None:
    """An empty :class:`~restore.io.quantise.QuantisedImage` for a ``scale``-x model's output on
    ``source``, for tiled inference to write into (``predictor(source.rgb, write=image.write)``) and
    :func:`from_model_output` to finish; None for a tensor source, whose result stays a tensor."""
    _check_source(source)
    if source.kind == "tensor":
        return None
    height, width = source.size
    return _image_for(source, height * scale, width * scale)


def _image_for(source: ImageInput, height: int, width: int) -> QuantisedImage:
    alpha = source.alpha is not None
    return QuantisedImage(height, width, bit_depth=source.bit_depth, gray=source.gray, alpha=alpha)


def from_model_output(
    output: torch.Tensor | QuantisedImage, source: ImageInput, *, alpha: torch.Tensor | None = None
) -> Any:
    """Model output ``(N, 3, H', W')`` (or ``(N, 1, H', W')``) in [0, 1] -> the kind ``source`` came as.

    Gray sources get BT.601 luma of a 3-channel output. Alpha: ``alpha`` (N, 1, H', W') if given
    (e.g. the model run on the alpha), else the source's alpha resized with :func:`resize_alpha`.
    Values are clamped to [0, 1], then scaled and rounded for uint8/uint16. Returns a numpy array for
    "path" and "numpy" sources, a PIL image for "pil" (``info["icc_profile"]`` set when the source had
    one) and a tensor on the source's device for "tensor"; see the module docstring for modes.
    ``output`` may also be the image of :func:`output_image` that the model output was written into.
    """
    if isinstance(output, QuantisedImage):
        image = _check_written(output, source)
    else:
        out = _check_output(output, source)
        if source.kind == "tensor":
            return _to_tensor(out, source, alpha)
        image = _image_for(source, *out.shape[-2:])
        image.write(out, 0, 0)
    if alpha is not None:
        image.write_alpha(_check_alpha(alpha, source, 1, image.size).detach())
    elif source.alpha is not None:
        image.write_alpha(resize_alpha(source.alpha.cpu(), image.size))
    hwc = image.pixels.numpy()
    if source.kind == "pil":
        return _to_pil(hwc, source)
    array = hwc[..., 0] if source.layout == "HW" else hwc
    return np.ascontiguousarray(array.astype(source.dtype, copy=False))


def _check_source(source: Any) -> None:
    if not isinstance(source, ImageInput):
        raise TypeError(f"source must be the ImageInput from to_model_input, got {type(source).__name__}")


def _check_output(output: torch.Tensor, source: ImageInput) -> torch.Tensor:
    _check_source(source)
    if not isinstance(output, torch.Tensor) or output.ndim != 4 or output.shape[1] not in (1, 3):
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(f"output must be a tensor (N, 3, H, W) or (N, 1, H, W), got {shape}")
    if not output.is_floating_point():
        raise ValueError(f"output must be a floating-point tensor in [0, 1], got dtype {output.dtype}")
    batch = source.rgb.shape[0]
    if output.shape[0] != batch:
        raise ValueError(f"output has {output.shape[0]} images but the source has {batch}")
    if 0 in output.shape[-2:]:
        raise ValueError(f"empty image: output has shape {tuple(output.shape)}, with no pixels")
    return output.detach().float()


def _check_written(image: QuantisedImage, source: ImageInput) -> QuantisedImage:
    """``image`` must have the channels and bit depth :func:`output_image` gives ``source``."""
    _check_source(source)
    channels = (1 if source.gray else 3) + (source.alpha is not None)
    if source.kind == "tensor" or (image.bit_depth, image.pixels.shape[-1]) != (source.bit_depth, channels):
        raise ValueError("the output image was not made by output_image() for this source")
    return image


def _check_alpha(alpha: Any, source: ImageInput, batch: int, size: tuple[int, int]) -> torch.Tensor:
    if source.alpha is None:
        raise ValueError("alpha was given, but the source image has no alpha channel")
    if not isinstance(alpha, torch.Tensor) or tuple(alpha.shape) != (batch, 1, *size):
        shape = tuple(alpha.shape) if isinstance(alpha, torch.Tensor) else type(alpha).__name__
        raise ValueError(f"alpha must have shape {(batch, 1, *size)} to match the output, got {shape}")
    return alpha


def _to_tensor(out: torch.Tensor, source: ImageInput, alpha: torch.Tensor | None) -> torch.Tensor:
    """The tensor result (N, C, H', W') of a tensor source, in its dtype, layout and device."""
    if not all_finite(out):
        raise ValueError(NON_FINITE)
    if source.gray and out.shape[1] == 3:
        out = rgb_to_gray(out.clamp(0.0, 1.0))  # the luma of displayable colours
    elif not source.gray and out.shape[1] == 1:
        out = out.expand(-1, 3, -1, -1)
    size = tuple(out.shape[-2:])
    if alpha is not None:
        alpha = _check_alpha(alpha, source, out.shape[0], size)
        out = torch.cat([out, alpha.detach().to(out)], dim=1)
    elif source.alpha is not None:
        out = torch.cat([out, resize_alpha(source.alpha.to(out.device), size)], dim=1)
    q = quantise(out.clamp(0.0, 1.0), source.bit_depth).to(source.dtype)
    if source.layout == "HW":
        q = q[0, 0]
    elif source.layout == "CHW":
        q = q[0]
    return q.to(source.device).contiguous()


def _to_pil(hwc: np.ndarray, source: ImageInput) -> Image.Image:
    mode = source.pil_mode
    channels = hwc.shape[-1]
    if mode in _PIL_16BIT:
        plane = hwc[..., 0].astype(_PIL_16BIT[mode])
        im = Image.frombytes(mode, (plane.shape[1], plane.shape[0]), plane.tobytes())
    elif mode == "I":
        im = Image.fromarray(np.ascontiguousarray(hwc[..., 0], dtype=np.int32))
    elif mode == "F":
        im = Image.fromarray(np.ascontiguousarray(hwc[..., 0], dtype=np.float32))
    else:  # 8-bit: L, LA, RGB, RGBA by channel count
        im = Image.fromarray(hwc[..., 0] if channels == 1 else hwc)
    if source.icc_profile is not None:
        im.info["icc_profile"] = source.icc_profile
    return im


# ----------------------------------------------------------------------------- saving


def save_like(
    result: Any,
    path: str | os.PathLike,
    source: ImageInput,
    *,
    quality: int = 95,
    png_compression: int = DEFAULT_PNG_COMPRESSION,
) -> Path:
    """Write a result of :func:`from_model_output` to ``path``, keeping bit depth, alpha and ICC profile.

    uint16 results (and PIL I;16/I) are written as 16-bit PNG (other formats raise ValueError);
    float results as 16-bit PNG, or 8 bits in formats without 16-bit support. The ICC profile is the
    PIL result's ``info["icc_profile"]``, else ``source.icc_profile``; formats that cannot carry one
    (BMP) drop it with a warning. ``quality`` is for JPEG/WebP, ``png_compression`` (zlib level 0-9)
    for PNG. uint8/uint16 arrays are written as they are, other results through a float tensor. The
    write is atomic (:func:`restore.io.image.write_image`).
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        suffixes = sorted(_FORMATS)
        raise ValueError(f"cannot tell the image format from the suffix of '{path}'; use one of {suffixes}")
    if isinstance(result, np.ndarray) and result.dtype in (np.uint8, np.uint16):
        return _save_integer_array(result, path, fmt, source, quality, png_compression)
    image = to_model_input(result, name="result")
    if image.rgb.shape[0] != 1:
        raise ValueError(f"save_like writes one image; the result holds {image.rgb.shape[0]}")
    bit_depth = image.bit_depth
    if bit_depth == 32:
        bit_depth = 16 if fmt == "PNG" else 8
    _check_result_depth(bit_depth, fmt, path)
    source_icc = source.icc_profile if source is not None else None
    icc = _writable_icc(image.icc_profile or source_icc, fmt, path, stacklevel=3)
    color = image.rgb[0, :1] if image.gray else image.rgb[0]
    alpha = image.alpha[0] if image.alpha is not None else None
    return write_image(
        path,
        color,
        bit_depth=bit_depth,
        quality=quality,
        alpha=alpha,
        icc_profile=icc,
        png_compression=png_compression,
    )


def _writable_icc(icc: bytes | None, fmt: str, path: Path, stacklevel: int) -> bytes | None:
    """The ICC profile to embed: None for BMP, which cannot carry one (warned at ``stacklevel``)."""
    if icc is not None and fmt == "BMP":
        message = f"BMP cannot carry an ICC profile; '{path}' is written without it"
        warnings.warn(message, stacklevel=stacklevel)
        return None
    return icc


def _check_result_depth(bit_depth: int, fmt: str, path: Path) -> None:
    if bit_depth == 16 and fmt != "PNG":
        raise ValueError(
            f"a 16-bit result keeps its depth only in PNG; save it as .png, or convert it to 8 bits "
            f"first (got '{path.suffix}')"
        )


def _save_integer_array(
    array: np.ndarray, path: Path, fmt: str, source: ImageInput | None, quality: int, png_compression: int
) -> Path:
    """:func:`save_like` for a uint8/uint16 (H, W[, C]) array: written as it is, without a float round
    trip (on a 48-megapixel result that round trip cost about 2.5 s of a 0.2 s JPEG write)."""
    _check_result_depth(16 if array.dtype == np.uint16 else 8, fmt, path)
    icc = _writable_icc(source.icc_profile if source is not None else None, fmt, path, stacklevel=4)
    return write_array(path, array, quality=quality, icc_profile=icc, png_compression=png_compression)
