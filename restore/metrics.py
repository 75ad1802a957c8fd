"""Quality metrics: PSNR and SSIM by the standard super-resolution protocol, LPIPS, and audio metrics.

Images are ``(N, C, H, W)`` in ``[0, data_range]`` (``[0, 1]`` by default); every metric returns
one value per image, shape ``(N,)`` (``reduction="mean"``: the batch mean, a scalar).

The standard SR protocol (BasicSR's ``calculate_psnr`` / ``calculate_ssim`` with
``test_y_channel=True``, and the MATLAB code behind the published tables) is :func:`sr_metrics`:

- both images as 8-bit values (``quantize=True``: ``x * 255`` rounded half away from zero and
  saturated, as MATLAB's ``im2uint8``), computed on the 0..255 scale;
- the luma Y of ITU-R BT.601 as MATLAB's ``rgb2ycbcr`` (:func:`rgb_to_y`, not rounded), or the gray
  values themselves for a 1-channel image (a grayscale file such as Set14's ``bridge`` is scored on
  its own values, as MATLAB and BasicSR do: converting it to Y would compress its range by 219/255
  and add 1.32 dB);
- ``crop_border = scale`` pixels removed at each border;
- PSNR from the per-image MSE in float64; SSIM with the 11x11 gaussian window (sigma 1.5) where it
  fits ('valid'), ``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``, float64, and the mean of the
  per-channel values for RGB. This equals ``skimage.metrics.structural_similarity(gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=255)``.

:func:`psnr` and :func:`ssim` follow the protocol's 8-bit rounding by default (``quantize=True``:
a restored image is scored as the 8-bit file it would be saved as; pass ``quantize=False`` to score
the float values, e.g. against torchmetrics), with the Y channel and border crop as options. All
metrics run with autocast disabled, PSNR and SSIM in float64 (float32 on devices without float64),
LPIPS in float32. :data:`METRICS` lists them with ``higher_is_better`` and ``needs_weights``.

Audio (:func:`si_sdr`, :func:`pesq`, :func:`stoi`, :func:`lsd`): ``pred`` and ``target`` as
``(N, 1, T)``, ``(N, T)`` or ``(T,)`` tensors or numpy arrays, each called as ``fn(pred, target,
sample_rate)`` and returning ``(N,)`` float64. PESQ and STOI use the optional ``pesq`` and ``pystoi``
packages, imported when called.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

__all__ = [
    "METRICS",
    "MetricSpec",
    "available_metrics",
    "get_metric",
    "lpips_available",
    "lpips_metric",
    "lsd",
    "finite_mean",
    "mean_scores",
    "speech_scores",
    "pesq",
    "psnr",
    "rgb_to_y",
    "si_sdr",
    "sr_metrics",
    "ssim",
    "stoi",
]

REDUCTIONS = ("none", "mean")
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03

# ITU-R BT.601 luma as MATLAB's rgb2ycbcr: Y = 16 + 65.481 R + 128.553 G + 24.966 B (R, G, B in [0, 1])
_Y_OFFSET = 16.0
_Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """Luma of RGB images ``(N, 3, H, W)`` in [0, 1] -> ``(N, 1, H, W)`` in [16/255, 235/255].

    ITU-R BT.601 as MATLAB's ``rgb2ycbcr`` (and BasicSR's ``rgb2ycbcr(y_only=True)``):
    ``(16 + 65.481 R + 128.553 G + 24.966 B) / 255``. Not rounded.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"rgb_to_y expects RGB images (N, 3, H, W), got shape {tuple(x.shape)}")
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return (_Y_OFFSET + _Y_WEIGHTS[0] * r + _Y_WEIGHTS[1] * g + _Y_WEIGHTS[2] * b) / 255.0


# ---------------------------------------------------------------------------------------------
# Shared preparation: checks, 8-bit scale, Y channel, border crop
# ---------------------------------------------------------------------------------------------


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise ValueError(
            f"pred and target must be tensors, got {type(pred).__name__} and {type(target).__name__}"
        )
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {tuple(pred.shape)}")


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _compute_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def _to_255(
    pred: torch.Tensor,
    target: torch.Tensor,
    crop_border: int,
    y_channel: bool,
    data_range: float,
    quantize: bool,
    min_side: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images on the 0..255 scale in float64: optionally 8-bit, Y, border-cropped."""
    _check_pair(pred, target)
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise ValueError(f"crop_border must be an int >= 0, got {crop_border!r}")
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float)) or not data_range > 0:
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    if y_channel and pred.shape[1] not in (1, 3):
        raise ValueError(
            f"y_channel=True needs RGB (3 channels) or grayscale (1 channel) images, "
            f"got {pred.shape[1]} channels"
        )
    height, width = pred.shape[-2:]
    if min(height, width) - 2 * crop_border < min_side:
        raise ValueError(
            f"crop_border={crop_border} leaves {height - 2 * crop_border}x{width - 2 * crop_border} "
            f"pixels of {height}x{width} images; at least {min_side}x{min_side} are needed"
        )
    dtype = _compute_dtype(pred.device)
    out = []
    for x in (pred, target):
        if crop_border:  # per-pixel steps below: cropping first gives the same values, cheaper
            x = x[..., crop_border:-crop_border, crop_border:-crop_border]
        x = x.to(dtype) * (255.0 / data_range)
        if quantize:
            x = torch.floor(x + 0.5).clamp_(0, 255)  # MATLAB im2uint8: round half away, saturate
        if y_channel and x.shape[1] == 3:  # rgb_to_y on the 0..255 scale
            weights = [w / 255.0 for w in _Y_WEIGHTS]
            x = (x[:, 0:1] * weights[0]).add_(x[:, 1:2], alpha=weights[1]).add_(x[:, 2:3], alpha=weights[2])
            x = x.add_(_Y_OFFSET)
        out.append(x)
    return out[0], out[1]


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    return values if reduction == "none" else values.mean()


# ---------------------------------------------------------------------------------------------
# PSNR
# ---------------------------------------------------------------------------------------------


def _psnr_255(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR per image of prepared images on the 0..255 scale: ``(N, C, H, W)`` -> ``(N,)``."""
    mse = (x - y).square().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0**2 / mse)


def psnr(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    crop_border: int = 0,
    y_channel: bool = False,
    data_range: float = 1.0,
    quantize: bool = True,
    reduction: str = "none",
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image: ``(N, C, H, W)`` pair -> ``(N,)`` float64.

    ``10 log10(data_range^2 / MSE)`` with the MSE over all channels and pixels of each image,
    after removing ``crop_border`` pixels at each border. ``y_channel``: on the BT.601 luma of RGB
    images (:func:`rgb_to_y`; a 1-channel image is used as it is). ``quantize`` (default): clamp
    both images to ``[0, data_range]`` and round them to its 256 8-bit levels first, as the SR
    protocol scores saved 8-bit outputs (:func:`sr_metrics`); ``False`` scores the values as given.
    Identical images give ``inf``. ``reduction="mean"``: the batch mean (a scalar).
    """
    _check_reduction(reduction)
    with torch.autocast(device_type=pred.device.type, enabled=False):
        x, y = _to_255(pred, target, crop_border, y_channel, data_range, quantize, min_side=1)
        value = _psnr_255(x, y)
    return _reduce(value, reduction)


# ---------------------------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------------------------


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - size // 2
    g = torch.exp(-0.5 * (coords / sigma) ** 2)
    return g / g.sum()


def _valid_blur(x: torch.Tensor) -> torch.Tensor:
    """Separable 11x11 gaussian filter where the window fits: ``(N, C, H, W)`` -> ``(N, C, H-10, W-10)``.

    Weighted sums of 11 shifted views per axis, accumulated in place: exact in float64, and on CPU
    ~2x faster than banded matrix products and ~10x faster than a float64 depthwise ``conv2d``.
    """
    window = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA, x.dtype, x.device).tolist()
    height, width = x.shape[-2] - SSIM_WINDOW + 1, x.shape[-1] - SSIM_WINDOW + 1
    rows = x[..., :height, :] * window[0]
    for i, w in enumerate(window[1:], start=1):
        rows.add_(x[..., i : i + height, :], alpha=w)
    out = rows[..., :width] * window[0]
    for j, w in enumerate(window[1:], start=1):
        out.add_(rows[..., j : j + width], alpha=w)
    return out


def _ssim_per_channel(x: torch.Tensor, y: torch.Tensor, peak: float) -> torch.Tensor:
    """Mean SSIM map ('valid' gaussian filtering) per image and channel: ``(N, C, H, W)`` -> ``(N, C)``."""
    c = x.shape[1]
    stats = _valid_blur(torch.cat([x, y, x * x, y * y, x * y], dim=1))
    mu_x, mu_y, xx, yy, xy = stats.split(c, dim=1)
    sigma_xx, sigma_yy, sigma_xy = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y
    c1, c2 = (SSIM_K1 * peak) ** 2, (SSIM_K2 * peak) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (sigma_xx + sigma_yy + c2)
    )
    return ssim_map.mean(dim=(-2, -1))


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    crop_border: int = 0,
    y_channel: bool = False,
    data_range: float = 1.0,
    quantize: bool = True,
    reduction: str = "none",
) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per image: ``(N, C, H, W)`` pair -> ``(N,)`` float64.

    Gaussian window 11x11, sigma 1.5, statistics only where the window fits ('valid', as MATLAB's
    ``ssim_index``, BasicSR and scikit-image, whose 'reflect'-filtered map it crops by 5 pixels),
    ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, computed on the 0..255 scale (``L = 255``) in float64.
    Several channels: the mean of the per-channel SSIM. ``crop_border``, ``y_channel``,
    ``quantize``, ``data_range`` and ``reduction`` as in :func:`psnr`. The cropped images must be at
    least 11x11.
    """
    _check_reduction(reduction)
    with torch.autocast(device_type=pred.device.type, enabled=False):
        x, y = _to_255(pred, target, crop_border, y_channel, data_range, quantize, min_side=SSIM_WINDOW)
        value = _ssim_per_channel(x, y, 255.0).mean(dim=1)
    return _reduce(value, reduction)


def sr_metrics(
    pred: torch.Tensor, target: torch.Tensor, scale: int, *, reduction: str = "none"
) -> dict[str, torch.Tensor]:
    """The standard SR protocol: ``{"psnr_y": (N,), "ssim_y": (N,)}`` for images in [0, 1].

    Both images rounded to 8 bits, Y channel (gray images as they are), ``crop_border = scale``:
    BasicSR's ``calculate_psnr`` / ``calculate_ssim`` with ``test_y_channel=True``, and the
    protocol of the published Set5/Set14 tables (bicubic x4 Set5: 28.42 dB / 0.8104).
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    _check_reduction(reduction)
    with torch.autocast(device_type=pred.device.type, enabled=False):
        x, y = _to_255(pred, target, scale, True, 1.0, True, min_side=SSIM_WINDOW)
        values = {"psnr_y": _psnr_255(x, y), "ssim_y": _ssim_per_channel(x, y, 255.0).mean(dim=1)}
    return {name: _reduce(value, reduction) for name, value in values.items()}


# ---------------------------------------------------------------------------------------------
# LPIPS (the losses package's entry; never downloads)
# ---------------------------------------------------------------------------------------------

_LPIPS_CACHE: dict[tuple[str, str], torch.nn.Module] = {}


def _lpips_module(net: str, weights: str | os.PathLike | Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """``losses.create("lpips", ...)`` with ``reduction="none"``; named weights are built once."""
    import losses

    key = None if isinstance(weights, Mapping) else (net, os.fspath(weights))
    if key is not None and key in _LPIPS_CACHE:
        return _LPIPS_CACHE[key]
    module = losses.create("lpips", net=net, weights=weights, reduction="none").eval()
    if key is not None:
        _LPIPS_CACHE[key] = module
    return module


def lpips_metric(
    pred: torch.Tensor,
    target: torch.Tensor,
    net: str = "alex",
    weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = None,
    *,
    reduction: str = "none",
) -> torch.Tensor:
    """LPIPS (Zhang et al. 2018, v0.1) per image: RGB ``(N, 3, H, W)`` in [0, 1] -> ``(N,)`` float32.

    The ``losses`` package's ``lpips`` entry (the lpips package's linear layers). ``weights`` is for
    the backbone: ``None`` / ``"imagenet"`` reads torchvision's ImageNet file from torch.hub's cache,
    or a local ``.pth``/``.safetensors`` path, a state dict, ``"random"`` (tests). Nothing is
    downloaded: missing ImageNet weights raise ``losses.perceptual.WeightsNotFoundError``, whose
    message says where to put the file (check first with :func:`lpips_available`). Lower is better.
    """
    _check_reduction(reduction)
    _check_pair(pred, target)
    module = _lpips_module(net, "imagenet" if weights is None else weights).to(pred.device)
    with torch.autocast(device_type=pred.device.type, enabled=False), torch.no_grad():
        value = module(pred.float(), target.float())
    return _reduce(value, reduction)


def lpips_available(net: str = "alex", weights: str | os.PathLike | None = None) -> bool:
    """Whether :func:`lpips_metric` can run offline with these weights; never raises, never downloads."""
    try:
        from losses.perceptual import LPIPS_NETS, lpips_package_lin_path, torchvision_weights_path

        name = "vgg" if net == "vgg16" else net
        if name not in LPIPS_NETS or not lpips_package_lin_path(name).is_file():
            return False
        if weights is None or weights == "imagenet":
            return torchvision_weights_path(LPIPS_NETS[name][0]).is_file()
        if weights == "random":
            return True
        return os.path.isfile(os.path.expanduser(os.fspath(weights)))
    except Exception:  # an availability probe answers False on any failure (e.g. lpips missing)
        return False


# ---------------------------------------------------------------------------------------------
# Audio: SI-SDR, PESQ, STOI, LSD
# ---------------------------------------------------------------------------------------------

AUDIO_METRICS_INSTALL = "pip install pesq pystoi (or: pip install restore-toolkit[audio-metrics])"
PESQ_MODES = ("wb", "nb")
PESQ_RATES = {"wb": 16000, "nb": 8000}
PESQ_MIN_SECONDS = 0.25  # the pesq package's BufferTooShortError: "at least 1/4 of a second"
LSD_EPS = 1e-8


def _audio_batch(x: object, name: str) -> torch.Tensor:
    """A tensor or numpy array ``(N, 1, T)``, ``(N, T)`` or ``(T,)`` -> ``(N, T)`` tensor (dtype kept)."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        import numpy as np

        if not isinstance(x, np.ndarray):
            raise ValueError(f"{name} must be a torch.Tensor or a numpy array, got {type(x).__name__}")
        t = torch.from_numpy(np.ascontiguousarray(x))
    if t.is_complex() or not (t.is_floating_point() or t.dtype in (torch.int16, torch.int32, torch.int64)):
        raise ValueError(f"{name} must hold real audio samples, got dtype {t.dtype}")
    if t.ndim == 1:
        t = t[None]
    elif t.ndim == 3:
        if t.shape[1] != 1:
            raise ValueError(
                f"{name} must be mono audio (N, 1, T), (N, T) or (T,), got shape {tuple(t.shape)} "
                "(score each channel as a batch item)"
            )
        t = t[:, 0]
    elif t.ndim != 2:
        raise ValueError(f"{name} must be audio (N, 1, T), (N, T) or (T,), got shape {tuple(t.shape)}")
    return t


def _audio_pair(pred: object, target: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Both signals as ``(N, T)`` tensors of one shape; mismatched shapes raise naming both."""
    x, y = _audio_batch(pred, "pred"), _audio_batch(target, "target")
    if x.shape != y.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if x.shape[-1] < 1:
        raise ValueError(f"pred and target are empty (shape {tuple(pred.shape)})")
    return x, y


def _check_sample_rate(sample_rate: object) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1:
        raise ValueError(f"sample_rate must be a positive int (Hz), got {sample_rate!r}")
    return sample_rate


def _import_optional(module: str, metric: str):
    """Import ``pesq`` / ``pystoi``; a missing one raises ``ImportError`` saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"the {metric} metric needs the optional package {module!r}: {AUDIO_METRICS_INSTALL}"
        ) from err


def _numpy_rows(x: torch.Tensor) -> list:
    """Rows of ``(N, T)`` as float64 numpy arrays; non-finite samples raise ``ValueError``."""
    x = x.to("cpu", torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError("audio contains NaN or infinite samples")
    return list(x.numpy())


def si_sdr(
    pred: torch.Tensor, target: torch.Tensor, sample_rate: int | None = None, *, reduction: str = "none"
) -> torch.Tensor:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019): ``(N,)`` float64.

    Both signals made zero-mean, then ``alpha = (<pred, target> + eps) / (||target||^2 + eps)``,
    ``SI-SDR = 10 log10((||alpha target||^2 + eps) / (||alpha target - pred||^2 + eps))`` with
    ``eps`` = float64 machine epsilon: torchmetrics' ``scale_invariant_signal_distortion_ratio``
    with ``zero_mean=True``. Inputs ``(N, 1, T)``, ``(N, T)`` or ``(T,)``, tensors or numpy arrays.
    ``sample_rate`` is accepted (and unused) so every audio metric takes ``(pred, target, sample_rate)``.
    Higher is better.
    """
    _check_reduction(reduction)
    x, y = _audio_pair(pred, target)
    with torch.autocast(device_type=x.device.type, enabled=False):
        dtype = _compute_dtype(x.device)
        eps = torch.finfo(dtype).eps
        x, y = x.to(dtype), y.to(dtype)
        x = x - x.mean(dim=-1, keepdim=True)
        y = y - y.mean(dim=-1, keepdim=True)
        alpha = ((x * y).sum(dim=-1, keepdim=True) + eps) / (y.square().sum(dim=-1, keepdim=True) + eps)
        scaled = alpha * y
        value = 10 * torch.log10((scaled.square().sum(-1) + eps) / ((scaled - x).square().sum(-1) + eps))
    return _reduce(value, reduction)


def pesq(
    pred: torch.Tensor,
    target: torch.Tensor,
    sample_rate: int,
    mode: str = "wb",
    *,
    reduction: str = "none",
) -> torch.Tensor:
    """PESQ MOS-LQO (ITU-T P.862.2 wide-band ``"wb"``, P.862 narrow-band ``"nb"``): ``(N,)`` float64.

    The ``pesq`` package (optional: ``pip install pesq pystoi``) on each item, ``target`` as the
    reference. PESQ runs at 16 kHz (wb) or 8 kHz (nb; 16 kHz input is also scored as it is, like
    the package and torchmetrics do): other rates are resampled first with
    ``torchaudio.functional.resample``. Silent input ("no speech detected") and input shorter than
    0.25 s raise ``ValueError`` saying which (the item index and length in seconds), to be caught and
    reported by the caller. Range about -0.5..4.5 (nb) / 1..4.64 (wb); higher is better.
    """
    _check_reduction(reduction)
    if mode not in PESQ_MODES:
        raise ValueError(f"mode must be one of {PESQ_MODES}, got {mode!r}")
    sample_rate = _check_sample_rate(sample_rate)
    backend = _import_optional("pesq", "PESQ")
    x, y = _audio_pair(pred, target)
    seconds = x.shape[-1] / sample_rate
    rate = sample_rate if mode == "nb" and sample_rate in (8000, 16000) else PESQ_RATES[mode]
    if rate != sample_rate:
        import torchaudio

        x, y = (torchaudio.functional.resample(t.to(torch.float64), sample_rate, rate) for t in (x, y))
    values = []
    for i, (deg, ref) in enumerate(zip(_numpy_rows(x), _numpy_rows(y), strict=True)):
        where = f"item {i} ({seconds:.3f} s at {sample_rate} Hz)"
        if not ref.any() and not deg.any():  # the package would divide by a zero peak
            raise ValueError(f"PESQ: no speech detected in {where}: both signals are silent")
        try:
            values.append(backend.pesq(rate, ref, deg, mode))
        except backend.NoUtterancesError as err:
            raise ValueError(f"PESQ: no speech detected in {where}: silent or too quiet input") from err
        except backend.BufferTooShortError as err:
            raise ValueError(
                f"PESQ: input too short in {where}: PESQ needs at least {PESQ_MIN_SECONDS} s"
            ) from err
        except backend.PesqError as err:
            raise ValueError(f"PESQ failed on {where}: {err}") from err
    device = pred.device if isinstance(pred, torch.Tensor) else torch.device("cpu")
    return _reduce(torch.tensor(values, dtype=torch.float64, device=device), reduction)


def stoi(
    pred: torch.Tensor,
    target: torch.Tensor,
    sample_rate: int,
    extended: bool = False,
    *,
    reduction: str = "none",
) -> torch.Tensor:
    """STOI (Taal et al. 2011), or extended STOI (Jensen & Taal 2016): ``(N,)`` float64 in about [0, 1].

    The ``pystoi`` package (optional: ``pip install pesq pystoi``) on each item, ``target`` as the
    clean reference; it resamples to 10 kHz itself. Where pystoi would warn and return 1e-5 (fewer
    than 30 frames, about 0.4 s, of speech left after removing silent frames), this raises
    ``ValueError`` instead, with the item and its length. Higher is better.
    """
    _check_reduction(reduction)
    sample_rate = _check_sample_rate(sample_rate)
    backend = _import_optional("pystoi", "STOI")
    x, y = _audio_pair(pred, target)
    seconds = x.shape[-1] / sample_rate
    values = []
    for i, (deg, ref) in enumerate(zip(_numpy_rows(x), _numpy_rows(y), strict=True)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = backend.stoi(ref, deg, sample_rate, extended=bool(extended))
        if any("Not enough STFT frames" in str(w.message) for w in caught):
            raise ValueError(
                f"STOI: too little speech in item {i} ({seconds:.3f} s at {sample_rate} Hz): it needs 30 "
                "frames (about 0.4 s) left after removing silent frames"
            )
        values.append(float(value))
    device = pred.device if isinstance(pred, torch.Tensor) else torch.device("cpu")
    return _reduce(torch.tensor(values, dtype=torch.float64, device=device), reduction)


def lsd(
    pred: torch.Tensor,
    target: torch.Tensor,
    sample_rate: int | None = None,
    n_fft: int = 2048,
    hop: int = 512,
    *,
    reduction: str = "none",
) -> torch.Tensor:
    """Log-spectral distance (bandwidth extension: NU-Wave, AERO): ``(N,)`` float64, lower is better.

    With ``X``, ``Y`` the STFTs of ``pred`` and ``target`` (periodic Hann window of ``n_fft``
    samples, hop ``hop``, frames centred: ``n_fft // 2`` samples of reflect padding at each end, or
    zeros when the signal is not longer than that, as ``torch.stft(center=True)``) and
    ``P = |X|^2``, ``Q = |Y|^2`` over the ``n_fft // 2 + 1`` bins::

        D[t, f] = log10(P[t, f] + 1e-8) - log10(Q[t, f] + 1e-8)
        LSD = mean over frames t of sqrt(mean over bins f of D[t, f]^2)

    computed in float64. ``sample_rate`` is accepted (and unused) so every audio metric takes
    ``(pred, target, sample_rate)``; ``n_fft`` sets the frequency resolution whatever the rate.
    """
    _check_reduction(reduction)
    for arg, value, low in (("n_fft", n_fft, 2), ("hop", hop, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{arg} must be an int >= {low}, got {value!r}")
    if sample_rate is not None:
        _check_sample_rate(sample_rate)
    x, y = _audio_pair(pred, target)
    with torch.autocast(device_type=x.device.type, enabled=False):
        dtype = _compute_dtype(x.device)
        window = torch.hann_window(n_fft, dtype=dtype, device=x.device)
        pad_mode = "reflect" if x.shape[-1] > n_fft // 2 else "constant"
        log_power = []
        for t in (x, y):
            spec = torch.stft(
                t.to(dtype), n_fft, hop, window=window, center=True, pad_mode=pad_mode, return_complex=True
            )
            log_power.append(torch.log10(spec.abs().square() + LSD_EPS))  # (N, F, frames)
        value = (log_power[0] - log_power[1]).square().mean(dim=1).sqrt().mean(dim=-1)
    return _reduce(value, reduction)


SPEECH_SCORES = ("pesq_wb", "pesq_nb", "stoi", "si_sdr", "lsd")


def speech_scores(
    pred: object, target: object, sample_rate: int, names: tuple[str, ...] = SPEECH_SCORES
) -> tuple[dict[str, float], list[str]]:
    """The speech metrics ``names`` (of :data:`SPEECH_SCORES`) of one pair, and notes on what was skipped.

    A metric whose optional package (pesq, pystoi) is missing is left out; a PESQ or STOI that
    cannot score the clip (no speech, too short) is NaN with a note, so callers can average the
    rest (:func:`mean_scores`). The same function serves ``restore eval-audio``, validation and
    ``benchmarks/bundle.py``.
    """
    import importlib.util

    unknown = set(names) - set(SPEECH_SCORES)
    if unknown:
        raise ValueError(f"unknown speech scores {sorted(unknown)}; known: {SPEECH_SCORES}")
    scores: dict[str, float] = {}
    notes: list[str] = []
    for name in names:
        if name.startswith("pesq") and importlib.util.find_spec("pesq") is None:
            continue
        if name == "stoi" and importlib.util.find_spec("pystoi") is None:
            continue
        try:
            if name.startswith("pesq"):
                value = pesq(pred, target, sample_rate, mode=name[5:])
            elif name == "stoi":
                value = stoi(pred, target, sample_rate)
            elif name == "si_sdr":
                value = si_sdr(pred, target)
            else:
                value = lsd(pred, target, sample_rate)
            scores[name] = float(value[0])
        except ValueError as error:
            if name in ("si_sdr", "lsd"):  # bad shapes: not a property of the clip
                raise
            scores[name] = math.nan
            notes.append(f"{name}: {error}")
    return scores, notes


def finite_mean(values: list[float]) -> float:
    """The mean of the finite values (NaN when there are none)."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-metric :func:`finite_mean` over rows of scores (a metric missing from a row is skipped)."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    return {name: finite_mean([row[name] for row in rows if name in row]) for name in names}


# ---------------------------------------------------------------------------------------------
# The metric table
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its function and how to read it."""

    name: str
    fn: Callable[..., torch.Tensor]
    modality: str
    higher_is_better: bool
    needs_weights: bool
    summary: str


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            "psnr", psnr, "image", higher_is_better=True, needs_weights=False,
            summary="PSNR in dB, float64, 8-bit rounding (Y channel, border crop optional)",
        ),
        MetricSpec(
            "ssim", ssim, "image", higher_is_better=True, needs_weights=False,
            summary="SSIM, gaussian 11x11 'valid' window, float64, 8-bit rounding",
        ),
        MetricSpec(
            "lpips", lpips_metric, "image", higher_is_better=False, needs_weights=True,
            summary="LPIPS v0.1 distance on a pretrained network (lpips package layers)",
        ),
        MetricSpec(
            "si_sdr", si_sdr, "audio", higher_is_better=True, needs_weights=False,
            summary="Scale-invariant SDR in dB (zero-mean), float64",
        ),
        MetricSpec(
            "pesq", pesq, "audio", higher_is_better=True, needs_weights=False,
            summary="PESQ MOS-LQO, wide-band (16 kHz) or narrow-band (8 kHz); optional pesq package",
        ),
        MetricSpec(
            "stoi", stoi, "audio", higher_is_better=True, needs_weights=False,
            summary="STOI intelligibility (or extended STOI); optional pystoi package",
        ),
        MetricSpec(
            "lsd", lsd, "audio", higher_is_better=False, needs_weights=False,
            summary="Log-spectral distance of |STFT|^2 (n_fft 2048, hop 512), float64",
        ),
    )
}


def available_metrics(modality: str | None = None) -> list[str]:
    """Sorted metric names, optionally of one modality (``"image"``, ``"audio"``)."""
    return sorted(name for name, spec in METRICS.items() if modality in (None, spec.modality))


def get_metric(name: str) -> MetricSpec:
    """The :class:`MetricSpec` of ``name``; an unknown name raises ``KeyError`` with suggestions."""
    if name not in METRICS:
        from losses.registry import did_you_mean

        raise KeyError(
            f"unknown metric {name!r}.{did_you_mean(name, list(METRICS))} Metrics: {', '.join(METRICS)}"
        )
    return METRICS[name]

