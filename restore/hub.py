"""Named models: bundled weights, local weights files and downloads pinned by sha256.

``restore.upscale(img, model=...)`` (and ``inpaint``, ``deblur``...) take ``model`` as

- ``None``: the bundled default for the task and scale (works offline: the files ship in
  ``restore/weights/``);
- a bundled name (``"sr-x4"``; :func:`bundled` lists them);
- a local ``.safetensors`` / ``.pth`` / ``.pt`` / ``.ckpt`` / ``.bin`` file (ours or, via spandrel,
  published ESRGAN / Real-ESRGAN / SwinIR / NAFNet / LaMa... weights);
- a URL pinned by its sha256: ``"https://host/x4.pth#sha256=<64 hex>"``, a ``(url, sha256)`` pair,
  or ``url`` with ``sha256=...``. It is downloaded once into the cache (``$RESTORE_CACHE``, else
  ``~/.cache/restore/models``) and verified; later calls use the cached file without the network.

:func:`resolve` turns any of these into a file path, :func:`load_model` into a module with ``.spec``
whose task and scale were checked against what the caller asked for.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union
from urllib.parse import unquote, urlsplit

from losses.registry import did_you_mean

if TYPE_CHECKING:
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

# Where bundled weights live (package data). Read at call time, so tests can point it elsewhere.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

WEIGHTS_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")
URL_SCHEMES = ("https", "http", "file")
DOWNLOAD_TIMEOUT = 60.0  # seconds without data before a download is abandoned
CHUNK_SIZE = 1 << 20
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")

# Which model tasks may serve an asked task. Scale-1 image-to-image models are interchangeable at
# the tensor level, and neither spandrel ("restore") nor an architecture (NAFNet: GoPro deblurring
# or SIDD denoising weights) tells deblurring weights from denoising ones.
IMAGE_TO_IMAGE = ("deblur", "denoise", "restore")
ACCEPTED_TASKS: dict[str, tuple[str, ...]] = {
    "deblur": IMAGE_TO_IMAGE,
    "denoise": IMAGE_TO_IMAGE,
    "restore": IMAGE_TO_IMAGE,
    # audio models are all "audio" in the registry; the hub tells enhancement tasks apart by name
    "audio_denoise": ("audio",),
    "audio_bandwidth": ("audio",),
    # a diffusion model serves the task its condition makes it for (restore.infer.DiffusionSampler):
    # cond_channels 3 super-resolves, 4 (mask-conditional) and 0 (unconditional, RePaint) inpaint
    "sr": ("sr", "diffusion"),
    "inpaint": ("inpaint", "diffusion"),
}
DIFFUSION_COND_CHANNELS: dict[str, tuple[int, ...]] = {"sr": (3,), "inpaint": (4, 0)}
AUDIO_HUB_TASKS = ("audio_denoise", "audio_bandwidth")

ModelArg = Union[str, "os.PathLike[str]", tuple[str, str], None]


class ModelDownloadError(OSError):
    """A model URL could not be fetched or verified (the message says where to put the file by hand)."""


@dataclass(frozen=True)
class BundledModel:
    """A model whose weights ship inside the package (``restore/weights/<file>``)."""

    name: str
    task: str
    scale: int
    file: str | None
    description: str
    architecture: str | None = None  # a weight-free registered model, built instead of loaded

    @property
    def path(self) -> Path:
        """Where the installed package keeps the weights (the model card's name for weight-free ones)."""
        return WEIGHTS_DIR / (self.file or f"{self.name}.safetensors")

    @property
    def card(self) -> Path:
        """The model card beside the weights (``<file stem>.md``: data, steps, metrics)."""
        return self.path.with_suffix(".md")

    @property
    def available(self) -> bool:
        """True when the weights file is present in this installation (always, for weight-free models)."""
        return self.architecture is not None or self.path.is_file()

    def row(self) -> dict[str, Any]:
        """The entry as a flat dict (``restore models`` listing)."""
        return {
            "name": self.name,
            "task": self.task,
            "scale": self.scale,
            "file": self.file,
            "available": self.available,
            "description": self.description,
        }


# The first entry of a task (and scale) is that task's default.
BUNDLED: tuple[BundledModel, ...] = (
    BundledModel("sr-x4", "sr", 4, "sr_x4.safetensors", "x4 super-resolution of photographs"),
    BundledModel("sr-x2", "sr", 2, "sr_x2.safetensors", "x2 super-resolution of photographs"),
    BundledModel("deblur", "deblur", 1, "deblur.safetensors", "motion and defocus deblurring"),
    BundledModel(
        "inpaint",
        "inpaint",
        1,
        "inpaint.safetensors",
        "LaMa-style network refining a push-pull fill (beats OpenCV Telea inside the holes)",
    ),
    BundledModel(
        "inpaint-pushpull",
        "inpaint",
        1,
        None,
        "classical push-pull inpainting, no weights",
        architecture="pushpull_inpaint",
    ),
    # Diffusion models (sampled: DDIM, 20 steps, seed 0 unless steps=/seed=/scheduler= say otherwise)
    BundledModel(
        "diffusion-x4",
        "sr",
        4,
        "diffusion_x4.safetensors",
        "tiny SR3 residual diffusion x4 super-resolution (a demonstration: below sr-x4 and bicubic in PSNR)",
    ),
    BundledModel(
        "diffusion",
        "inpaint",
        1,
        "diffusion_inpaint.safetensors",
        "tiny mask-conditional residual diffusion inpainting over the push-pull fill",
    ),
    BundledModel(
        "speech-bandwidth",
        "audio_bandwidth",
        1,
        "speech_bandwidth.safetensors",
        "speech bandwidth extension to 16 kHz (AERO-style, from 4-12 kHz sampling)",
    ),
    # Classical speech enhancers (no weights): the denoising default until a trained model beats them
    # on real noise (DESIGN: the bundled denoiser must beat the DSP baselines, or the default is the
    # better of the two).
    BundledModel(
        "speech-logmmse",
        "audio_denoise",
        1,
        None,
        "log-MMSE speech enhancement (Ephraim-Malah 1985), no weights",
        architecture="logmmse",
    ),
    BundledModel(
        "speech-denoise",
        "audio_denoise",
        1,
        "speech_denoise.safetensors",
        "speech denoising network: a complex mask refining a Wiener filter (best SI-SDR, not the default: "
        "log-MMSE has the higher PESQ on real noise)",
    ),
    BundledModel(
        "speech-wiener",
        "audio_denoise",
        1,
        None,
        "decision-directed Wiener filter, no weights",
        architecture="wiener",
    ),
    BundledModel(
        "speech-spectral-subtraction",
        "audio_denoise",
        1,
        None,
        "power spectral subtraction (Berouti), no weights",
        architecture="spectral_subtraction",
    ),
)


def bundled(task: str | None = None) -> list[BundledModel]:
    """The bundled models (optionally of one task); ``entry.available`` says whether the file is installed."""
    return [m for m in BUNDLED if task is None or m.task == task]


def bundled_names() -> list[str]:
    return [m.name for m in BUNDLED]


def get_bundled(name: str) -> BundledModel | None:
    """The bundled entry called ``name``, or None."""
    return next((m for m in BUNDLED if m.name == name), None)


def default_model(task: str, scale: int | None = None) -> str:
    """Name of the bundled default for ``task`` (and ``scale``; None takes the task's first entry)."""
    _check_task(task)
    for entry in BUNDLED:
        if entry.task == task and (scale is None or entry.scale == scale):
            return entry.name
    at = "" if scale is None else f" at scale {scale}"
    names = ", ".join(m.name for m in BUNDLED if m.task == task) or "none for this task"
    raise ValueError(
        f"no bundled model for task {task!r}{at}; bundled: {names}; "
        "pass model=... a path to .safetensors/.pth or a URL#sha256=..."
    )


def default_cache_dir() -> Path:
    """The download cache: ``$RESTORE_CACHE``, else ``$XDG_CACHE_HOME/restore/models`` (``~/.cache``)."""
    if os.environ.get("RESTORE_CACHE"):
        return Path(os.environ["RESTORE_CACHE"]).expanduser()
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root).expanduser() / "restore" / "models"


def resolve(
    model: ModelArg = None,
    *,
    task: str,
    scale: int | None = None,
    sha256: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    allow_download: bool | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path:
    """The weights file that ``model`` names (see the module docstring for the accepted forms).

    ``allow_download=None`` downloads unless ``$RESTORE_OFFLINE`` is set to a true value; without
    downloads only an already cached file can serve a URL. Raises ``ValueError`` for names that are
    not weights, ``FileNotFoundError`` for missing files and :class:`ModelDownloadError` when a URL
    cannot be fetched or its content does not match ``sha256``.
    """
    _check_task(task)
    if allow_download is None:
        allow_download = os.environ.get("RESTORE_OFFLINE", "").lower() not in ("1", "true", "yes", "on")
    if model is None:
        model = default_model(task, scale)
    if isinstance(model, tuple):
        if len(model) != 2 or not all(isinstance(v, str) for v in model):
            raise ValueError(f"model as a tuple must be (url, sha256), got {model!r}")
        model, pair_sha = model
        sha256 = _merge_sha(model, pair_sha, sha256)
    if isinstance(model, str) and _is_url(model):
        return download(
            model, sha256=sha256, cache_dir=cache_dir, allow_download=allow_download, timeout=timeout
        )
    if sha256 is not None:
        raise ValueError(f"sha256= is only for URLs, got model={model!r}")
    if isinstance(model, str) and (entry := get_bundled(model)) is not None:
        return _bundled_path(entry, task, scale)
    if isinstance(model, (str, os.PathLike)):
        return _local_path(model)
    raise TypeError(
        f"model must be None, a bundled name, a path or a URL, got {type(model).__name__}: {model!r}"
    )


def load_model(
    model: ModelArg | nn.Module = None,
    *,
    task: str,
    scale: int | None = None,
    device: str | torch.device = "cpu",
    sha256: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    allow_download: bool | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> nn.Module:
    """The module ``model`` names, in eval mode on ``device``, with ``.spec`` checked against the request.

    A module already carrying a ``.spec`` (from :func:`restore.models.build` or ``load``) is checked
    and returned as given. A model for another task, or of another scale than ``scale`` (when given),
    raises ``ValueError``.
    """
    from torch import nn

    from restore.models import load, spec_of

    if isinstance(model, nn.Module):
        check_compatible(spec_of(model), task=task, scale=scale, label=type(model).__name__)
        return model
    entry = (
        get_bundled(model if model is not None else default_model(task, scale))
        if isinstance(model, (str, type(None)))
        else None
    )
    if entry is not None and entry.architecture is not None:
        from restore.models import build

        _check_bundled(entry, task, scale)
        return build(entry.architecture).eval().to(device)
    path = resolve(
        model,
        task=task,
        scale=scale,
        sha256=sha256,
        cache_dir=cache_dir,
        allow_download=allow_download,
        timeout=timeout,
    )
    net = load(path, device=device)
    label = model[0] if isinstance(model, tuple) else str(model or default_model(task, scale))
    check_compatible(spec_of(net), task=task, scale=scale, label=label)
    return net


def check_compatible(spec: Any, *, task: str, scale: int | None, label: str) -> None:
    """Raise ``ValueError`` when a model of ``spec`` cannot serve ``task`` at ``scale``."""
    if spec.task not in ACCEPTED_TASKS.get(task, (task,)):
        raise ValueError(
            f"model {label!r} is a {spec.task!r} model ({spec.name}), but task {task!r} was asked; "
            f"bundled {task!r} models: {', '.join(m.name for m in bundled(task)) or 'none'}"
        )
    if spec.task == "diffusion" and task != "diffusion":
        cond = spec.config.get("cond_channels")
        if cond not in DIFFUSION_COND_CHANNELS.get(task, ()):
            kinds = {3: "super-resolution", 4: "mask-conditional inpainting", 0: "unconditional (RePaint)"}
            raise ValueError(
                f"model {label!r} is a {kinds.get(cond, f'cond_channels={cond}')} diffusion model "
                f"({spec.name}), but task {task!r} was asked"
            )
    if scale is not None and spec.scale != scale:
        raise ValueError(f"model {label!r} upscales by {spec.scale}, but scale={scale} was asked")


# -- local and bundled files ------------------------------------------------------------------------


def _check_task(task: str) -> None:
    from restore.models.registry import TASKS

    tasks = TASKS + AUDIO_HUB_TASKS
    if task not in tasks:
        raise ValueError(f"task must be one of {tasks}, got {task!r}.{did_you_mean(str(task), tasks)}")


def _check_bundled(entry: BundledModel, task: str, scale: int | None) -> None:
    """A bundled entry must serve the asked task and scale."""
    if entry.task != task and entry.task not in ACCEPTED_TASKS.get(task, (task,)):
        raise ValueError(
            f"bundled model {entry.name!r} is for task {entry.task!r}, but task {task!r} was asked; "
            f"bundled {task!r} models: {', '.join(m.name for m in bundled(task)) or 'none'}"
        )
    if scale is not None and entry.scale != scale:
        raise ValueError(f"model {entry.name!r} upscales by {entry.scale}, but scale={scale} was asked")


def _bundled_path(entry: BundledModel, task: str, scale: int | None) -> Path:
    _check_bundled(entry, task, scale)
    if entry.architecture is not None:
        raise ValueError(
            f"bundled model {entry.name!r} has no weights file ({entry.architecture}); use load_model"
        )
    if not entry.available:
        raise FileNotFoundError(
            f"bundled model {entry.name!r}: its weights file {entry.path} is missing; this installation "
            "of restore is incomplete (reinstall the package), or pass model=... a path or URL#sha256=..."
        )
    return entry.path


def _local_path(model: str | os.PathLike[str]) -> Path:
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix.lower() not in WEIGHTS_SUFFIXES:
            raise ValueError(
                f"{path}: not a weights file (suffix {path.suffix!r}); expected one of "
                f"{', '.join(WEIGHTS_SUFFIXES)}"
            )
        return path
    if path.suffix.lower() in WEIGHTS_SUFFIXES or isinstance(model, os.PathLike):
        raise FileNotFoundError(f"weights file not found: {path}")
    name = str(model)
    from restore.models import available

    if name in available():
        raise ValueError(
            f"{name!r} is an architecture without weights; pass a weights file (.safetensors/.pth) or "
            f"URL#sha256=... holding trained weights for it, a bundled name ({', '.join(bundled_names())}), "
            f"or build untrained weights with restore.models.build({name!r})"
        )
    raise ValueError(
        f"unknown model {name!r}.{did_you_mean(name, bundled_names())} Expected a bundled name "
        f"({', '.join(bundled_names())}), or a path to .safetensors/.pth, or URL#sha256=<64 hex>"
    )


# -- downloads --------------------------------------------------------------------------------------


def _is_url(text: str) -> bool:
    return urlsplit(text).scheme.lower() in URL_SCHEMES and "://" in text


def _normalise_sha(value: str, url: str) -> str:
    sha = value.strip().lower()
    if not SHA256_PATTERN.fullmatch(sha):
        raise ValueError(f"sha256 for {url} must be 64 hexadecimal digits, got {value!r}")
    return sha


def _merge_sha(url: str, first: str | None, second: str | None) -> str | None:
    """The one sha256 given by the fragment, a pair or ``sha256=``; conflicting values raise."""
    given = {_normalise_sha(v, url) for v in (first, second) if v is not None}
    if len(given) > 1:
        raise ValueError(f"conflicting sha256 values for {url}: {', '.join(sorted(given))}")
    return given.pop() if given else None


def parse_url(url: str, sha256: str | None = None) -> tuple[str, str, str]:
    """``(url without fragment, sha256, file name)`` of a model URL; no sha256 raises ``ValueError``."""
    parts = urlsplit(url)
    fragment_sha = None
    for item in filter(None, parts.fragment.split("&")):
        key, _, value = item.partition("=")
        if key.lower() == "sha256":
            fragment_sha = value
    sha = _merge_sha(url, fragment_sha, sha256)
    bare = parts._replace(fragment="").geturl()
    if sha is None:
        raise ValueError(
            f"a model URL needs the sha256 of its file, so that only the file you meant is loaded: "
            f"pass {bare}#sha256=<64 hex>, (url, sha256) or sha256=..."
        )
    basename = unquote(parts.path.rsplit("/", 1)[-1])
    basename = re.sub(r"[^A-Za-z0-9._-]", "_", basename).lstrip(".")
    if Path(basename).suffix.lower() not in WEIGHTS_SUFFIXES:
        raise ValueError(
            f"{bare}: the URL's file name {basename!r} must end in one of {', '.join(WEIGHTS_SUFFIXES)} "
            "(it decides how the weights are read)"
        )
    return bare, sha, basename


def cached_path(url: str, sha256: str | None = None, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the download of ``url`` is kept: ``<cache>/<sha256[:16]>-<file name>``."""
    _, sha, basename = parse_url(url, sha256)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / f"{sha[:16]}-{basename}"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    url: str,
    *,
    sha256: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    allow_download: bool = True,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path:
    """The cached, verified file of ``url`` (downloading it once); see :func:`resolve`."""
    bare, sha, _ = parse_url(url, sha256)
    target = cached_path(bare, sha, cache_dir)
    by_hand = f"download it yourself and put it at {target} (its sha256 must be {sha})"
    if target.is_file():
        found = file_sha256(target)
        if found == sha:
            return target
        if not allow_download:
            raise ModelDownloadError(
                f"cached file {target} for {bare} has sha256 {found}, expected {sha}; downloads are off "
                f"(allow_download=False or $RESTORE_OFFLINE): {by_hand}"
            )
        logger.warning("cached %s has sha256 %s, expected %s: downloading again", target, found, sha)
    elif not allow_download:
        raise ModelDownloadError(
            f"model {bare} is not in the cache and downloads are off (allow_download=False or "
            f"$RESTORE_OFFLINE): {by_hand}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        logger.info("downloading %s to %s", bare, target)
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                for chunk in _fetch(bare, timeout):
                    digest.update(chunk)
                    out.write(chunk)
            except (OSError, http.client.HTTPException, ValueError) as err:
                raise ModelDownloadError(
                    f"could not download {bare} ({_reason(err)}); to use it offline, {by_hand}, "
                    "or pass model=... a local weights file"
                ) from err
        found = digest.hexdigest()
        if found != sha:
            raise ModelDownloadError(
                f"download of {bare} has sha256 {found}, expected {sha}; the file was discarded "
                f"(the URL may serve another version): check the URL and hash, or {by_hand}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _fetch(url: str, timeout: float) -> Iterator[bytes]:
    """The response body of ``url`` in chunks (urllib only; raises ``URLError``/``OSError``)."""
    import urllib.request

    from . import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"restore/{__version__}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        yield from iter(lambda: response.read(CHUNK_SIZE), b"")


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None)
    text = str(reason if reason is not None else err) or type(err).__name__
    return f"{type(err).__name__}: {text}"


__all__ = [
    "BUNDLED",
    "BundledModel",
    "ModelDownloadError",
    "bundled",
    "default_cache_dir",
    "cached_path",
    "default_model",
    "download",
    "file_sha256",
    "load_model",
    "resolve",
]
