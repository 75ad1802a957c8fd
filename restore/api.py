"""The Python API: ``restore.upscale``, ``restore.inpaint``, ``restore.deblur`` and ``restore.enhance``.

    import restore
    big = restore.upscale("photo.jpg")                     # numpy HWC uint8, 4x larger
    big = restore.upscale(pil_image, scale=2)              # PIL in, PIL out
    restore.upscale("scan.png", output="scan_x4.png")      # writes the file (bit depth, alpha, ICC kept)
    filled = restore.inpaint(img, mask)                    # mask: white / 1 / True = fill
    sharp = restore.deblur(tensor)                         # (3,H,W) / (N,3,H,W) float in [0,1]

Input: a path, a PIL image, a numpy array (HW or HWC; uint8, uint16 or float in [0, 1]) or a torch
tensor (HW, CHW or NCHW). The result has the input's kind, dtype, layout and mode (a path gives a
numpy array; pass ``output=`` to write a file instead): 16-bit stays 16-bit, gray stays gray, an
alpha channel is restored separately and kept, EXIF orientation is applied, the ICC profile is
carried over (:mod:`restore.io.convert` has the details).

``model``: None (the bundled default for the task and scale, offline), a bundled name, a local
``.safetensors``/``.pth`` file (ours, or any architecture spandrel knows), or a URL pinned by sha256
(``"https://.../x4.pth#sha256=..."``, downloaded once to a cache) — see :mod:`restore.hub`.
A diffusion model (task ``"diffusion"``, e.g. a trained ``sr3_x4`` saved with
:func:`restore.models.save`) serves ``upscale`` (conditioned on the low-resolution image) or
``inpaint`` (mask-conditional, or unconditional through RePaint) through
:class:`restore.infer.diffusion_sampler.DiffusionSampler`: ``steps`` (default 20), ``seed``
(default 0: the same output for the same input) and ``scheduler`` (``"ddim"`` default, ``"dpm"``,
``"ddpm"``) set its sampling; they are refused for other models.
``tile``: tile side in input pixels (None: chosen from free memory; out-of-memory halves it).
``device``: None picks CUDA when available. ``precision``: None picks float32 + channels_last on
the CPU and bf16/fp16 on CUDA when the model supports it (:mod:`restore.infer.predictor`).
``compile=True`` runs the model through ``torch.compile`` (Inductor, weights frozen): the first call
compiles for seconds, later calls of the bundled compact network run 10-15% faster on the CPU;
measure it for other models (``edsr*`` runs slower compiled). Falls back to eager with a warning
where compilation fails (no C++ compiler).

Audio: ``restore.enhance(audio, sample_rate, task="denoise")`` takes a path, a numpy array in
soundfile's layout ``(T,)`` / ``(T, C)`` or a tensor ``(T,)`` / ``(C, T)`` / ``(N, C, T)`` and gives
back the same kind (:mod:`restore.io.audio_convert`); long signals are processed in chunks
(:mod:`restore.infer.audio_predictor`).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "AUDIO_TASKS",
    "deblur",
    "enhance",
    "get_audio_predictor",
    "get_predictor",
    "inpaint",
    "mask_tensor",
    "restore_source",
    "upscale",
]

ALPHA_MODES = ("model", "resize")
DEFAULT_ALPHA_MODE = {"sr": "model", "deblur": "resize", "inpaint": "resize"}  # as the functions below
_CACHE_SIZE = 4
AUDIO_TASKS = {"denoise": "audio_denoise", "bandwidth": "audio_bandwidth"}  # enhance(task=) -> hub task
_predictors: OrderedDict[tuple, Any] = OrderedDict()


def get_predictor(
    model: Any = None,
    *,
    task: str,
    scale: int | None = None,
    tile: int | None = None,
    device: str | torch.device | None = None,
    precision: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    scheduler: str | None = None,
    compile: bool = False,
):
    """A :class:`restore.infer.Predictor` for ``model`` (loaded once and cached for later calls).

    ``steps``, ``seed`` and ``scheduler`` set the sampling of a diffusion model (None: 20 steps,
    seed 0, DDIM); given for any other model they raise ``ValueError``.
    """
    from restore import hub
    from restore.infer import Predictor
    from restore.infer.predictor import resolve_device

    def make():
        net = hub.load_model(model, task=task, scale=scale, device="cpu")
        net = _sampling_model(net, model, task, task_scale=scale, steps=steps, seed=seed, scheduler=scheduler)
        return Predictor(net, device=resolve_device(device), precision=precision, tile=tile, compile=compile)

    options = (task, scale, tile, str(device), precision, (steps, seed, scheduler), compile)
    return _cached(model, task, scale, options, make)


def _cached(model: Any, task: str, scale: int | None, options: tuple, make):
    """The predictor for ``model`` and ``options`` from the cache, else ``make()`` (the least recently
    used of :data:`_CACHE_SIZE` entries is dropped). Modules are keyed by identity, files by
    :func:`_model_key`."""
    if isinstance(model, torch.nn.Module):
        key: tuple = ("module", id(model), *options)
    else:
        key = (_model_key(model, task, scale), *options)
    predictor = _predictors.get(key)
    if predictor is not None:
        _predictors.move_to_end(key)
        return predictor
    predictor = _predictors[key] = make()
    while len(_predictors) > _CACHE_SIZE:
        _predictors.popitem(last=False)
    return predictor


def _sampling_model(
    net: torch.nn.Module,
    model: Any,
    task: str,
    *,
    task_scale: int | None,
    steps: int | None,
    seed: int | None,
    scheduler: str | None,
) -> torch.nn.Module:
    """A diffusion model wrapped in its sampler; any other model as is (refusing sampling options)."""
    from restore.models import spec_of

    spec = spec_of(net)
    if spec.task == "diffusion":
        from restore.infer.diffusion_sampler import DEFAULT_SEED, DEFAULT_STEPS, DiffusionSampler

        return DiffusionSampler(
            net,
            task=task,
            steps=DEFAULT_STEPS if steps is None else steps,
            scheduler=scheduler,
            seed=DEFAULT_SEED if seed is None else seed,
        )
    options = {"steps": steps, "seed": seed, "scheduler": scheduler}
    given = [name for name, value in options.items() if value is not None]
    if given:
        from restore import hub

        if isinstance(model, torch.nn.Module):
            label = type(model).__name__
        elif isinstance(model, tuple):
            label = model[0]
        else:
            label = os.fspath(model) if model is not None else hub.default_model(task, task_scale)
        raise ValueError(
            f"{', '.join(given)} set the sampling of diffusion models; model {label!r} ({spec.name}) is a "
            f"{spec.task!r} model that runs in one pass: leave {' and '.join(given)} out"
        )
    return net


def _model_key(model: Any, task: str, scale: int | None) -> Any:
    """Cache key of a model argument: a weights file by its resolved path and its identity on disk
    (inode, size, mtime), so a file rewritten in place (retrained) is loaded again."""
    from restore import hub

    if isinstance(model, tuple) or (isinstance(model, str) and hub._is_url(model)):
        return model  # pinned by sha256: the content cannot change
    try:
        if model is None or (isinstance(model, str) and hub.get_bundled(model) is not None):
            path = hub.resolve(model, task=task, scale=scale)
        elif isinstance(model, (str, os.PathLike)):
            path = Path(model).expanduser()
        else:
            return model
        stat = path.stat()
    except (OSError, ValueError):  # hub.load_model raises the explanation
        return os.fspath(model) if isinstance(model, os.PathLike) else model
    return (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _check_scale(scale: Any) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    return scale


def _restore_alpha(predictor, source, alpha_mode: str) -> torch.Tensor | None:
    """The alpha channel restored by the model (``"model"``) or None (resized by the converter)."""
    from restore.io.convert import rgb_to_gray

    if alpha_mode not in ALPHA_MODES:
        raise ValueError(f"alpha_mode must be one of {ALPHA_MODES}, got {alpha_mode!r}")
    if source.alpha is None or alpha_mode == "resize":
        return None
    restored = predictor(source.alpha.expand(-1, 3, -1, -1).contiguous())
    return rgb_to_gray(restored.clamp(0, 1))


def _finish(
    out: torch.Tensor, source, alpha: torch.Tensor | None, output: str | os.PathLike | None, quality: int
):
    from restore.io.convert import from_model_output, save_like

    result = from_model_output(out, source, alpha=alpha)  # clamps to [0, 1] itself
    if output is None:
        return result
    return save_like(result, output, source, quality=quality)


def _run(
    task: str,
    image: Any,
    *,
    scale: int | None,
    model: Any,
    tile,
    device,
    precision,
    alpha_mode: str,
    output,
    quality: int,
    mask: Any = None,
    sampling: dict[str, Any] | None = None,
    compile: bool = False,
):
    from restore.io.convert import to_model_input

    source = to_model_input(image)
    predictor = get_predictor(
        model,
        task=task,
        scale=scale,
        tile=tile,
        device=device,
        precision=precision,
        compile=compile,
        **(sampling or {}),
    )
    holes = mask_tensor(mask, source) if mask is not None else None
    out, alpha = restore_source(predictor, source, mask=holes, alpha_mode=alpha_mode)
    return _finish(out, source, alpha, output, quality)


def restore_source(predictor, source, *, mask: torch.Tensor | None = None, alpha_mode: str = "resize"):
    """Run ``predictor`` on a coerced input: ``(output, restored alpha or None)`` for
    :func:`restore.io.convert.from_model_output`.

    The output is a tensor (N,C,H',W') for tensor sources (and a predictor that is not a
    :class:`Predictor`); for path, PIL and numpy sources a
    :class:`~restore.io.quantise.QuantisedImage` that the :class:`Predictor` wrote each tile into
    as it was computed (an 8-bit result never exists in float32). ``mask`` (from
    :func:`mask_tensor`) is passed to inpainting models; the alpha channel is run through the model
    only with ``alpha_mode="model"`` (else the converter resizes it).
    """
    from restore.infer.predictor import Predictor
    from restore.io.convert import output_image

    image = output_image(source, predictor.spec.scale) if isinstance(predictor, Predictor) else None
    inputs = (source.rgb,) if mask is None else (source.rgb, mask)
    if image is None:
        out = predictor(*inputs)
    else:
        predictor(*inputs, write=image.write)
        out = image
    alpha = None if mask is not None else _restore_alpha(predictor, source, alpha_mode)
    return out, alpha


def upscale(
    image: Any,
    scale: int = 4,
    model: Any = None,
    tile: int | None = None,
    device: str | torch.device | None = None,
    precision: str | None = None,
    *,
    alpha_mode: str = "model",
    output: str | os.PathLike | None = None,
    quality: int = 95,
    steps: int | None = None,
    seed: int | None = None,
    scheduler: str | None = None,
    compile: bool = False,
):
    """Super-resolve ``image`` by ``scale`` (see the module docstring for inputs and outputs).

    ``alpha_mode``: ``"model"`` runs the model on the alpha channel too (Real-ESRGAN's default,
    sharper edges), ``"resize"`` resizes it bicubically. With ``output`` the result is written there
    (format from the suffix; ``quality`` for JPEG/WebP) and the path is returned. ``steps``,
    ``seed``, ``scheduler``: sampling of a diffusion model (module docstring; 20, 0, ``"ddim"``).
    """
    return _run(
        "sr",
        image,
        scale=_check_scale(scale),
        model=model,
        tile=tile,
        device=device,
        precision=precision,
        alpha_mode=alpha_mode,
        output=output,
        quality=quality,
        sampling={"steps": steps, "seed": seed, "scheduler": scheduler},
        compile=compile,
    )


def deblur(
    image: Any,
    model: Any = None,
    tile: int | None = None,
    device: str | torch.device | None = None,
    precision: str | None = None,
    *,
    alpha_mode: str = "resize",
    output: str | os.PathLike | None = None,
    quality: int = 95,
    compile: bool = False,
):
    """Remove motion/defocus blur from ``image`` (same size out; alpha kept as is by default)."""
    return _run(
        "deblur",
        image,
        scale=None,
        model=model,
        tile=tile,
        device=device,
        precision=precision,
        alpha_mode=alpha_mode,
        output=output,
        quality=quality,
        compile=compile,
    )


def inpaint(
    image: Any,
    mask: Any,
    model: Any = None,
    tile: int | None = None,
    device: str | torch.device | None = None,
    precision: str | None = None,
    *,
    output: str | os.PathLike | None = None,
    quality: int = 95,
    steps: int | None = None,
    seed: int | None = None,
    scheduler: str | None = None,
    compile: bool = False,
):
    """Fill the holes of ``image`` where ``mask`` is set; other pixels are kept exactly.

    ``mask``: same height and width as the image, any kind the image may be (a path, PIL, numpy,
    tensor; bool, 0/255 or 0/1 values; several channels are averaged). Values above one half mark
    pixels to fill. LaMa's receptive field is global, so by default the whole image goes through
    the model in one pass when it fits in memory. ``steps``, ``seed``, ``scheduler``: sampling of a
    diffusion model (module docstring; an unconditional one inpaints with RePaint, no scheduler).
    """
    return _run(
        "inpaint",
        image,
        scale=None,
        model=model,
        tile=tile,
        device=device,
        precision=precision,
        alpha_mode="resize",
        output=output,
        quality=quality,
        mask=mask,
        sampling={"steps": steps, "seed": seed, "scheduler": scheduler},
        compile=compile,
    )


def mask_tensor(mask: Any, source) -> torch.Tensor:
    """A user mask -> float (N, 1, H, W) in {0, 1} on the image's device, 1 = fill."""
    import numpy as np

    from restore.io.convert import to_model_input

    if isinstance(mask, np.ndarray) and mask.dtype == np.bool_:
        mask = mask.astype(np.uint8) * 255
    elif isinstance(mask, torch.Tensor) and mask.dtype == torch.bool:
        mask = mask.to(torch.uint8) * 255
    coerced = to_model_input(mask, name="mask")
    values = coerced.rgb.mean(dim=1, keepdim=True)
    if coerced.alpha is not None and not coerced.gray:
        values = values * coerced.alpha
    if tuple(values.shape[-2:]) != source.size:
        raise ValueError(
            f"mask is {values.shape[-2]}x{values.shape[-1]} (HxW) but the image is "
            f"{source.size[0]}x{source.size[1]}; they must match"
        )
    holes = (values > 0.5).float()
    if holes.shape[0] == 1 and source.rgb.shape[0] > 1:
        holes = holes.expand(source.rgb.shape[0], -1, -1, -1)
    if holes.shape[0] != source.rgb.shape[0]:
        raise ValueError(f"mask batch {holes.shape[0]} does not match the image batch {source.rgb.shape[0]}")
    return holes.to(source.rgb.device)


def get_audio_predictor(
    model: Any = None,
    *,
    task: str = "denoise",
    device: str | torch.device | None = None,
    precision: str | None = None,
    chunk_seconds: float | None = None,
):
    """An :class:`restore.infer.audio_predictor.AudioPredictor` for ``model`` (cached like images)."""
    from restore import hub
    from restore.infer.audio_predictor import AudioPredictor
    from restore.infer.predictor import resolve_device

    hub_task = _audio_task(task)

    def make():
        return AudioPredictor(
            hub.load_model(model, task=hub_task, device="cpu"),
            device=resolve_device(device),
            precision=precision,
            chunk_seconds=chunk_seconds,
            resample_output=hub_task != "audio_bandwidth",
        )

    return _cached(model, hub_task, None, (hub_task, str(device), precision, chunk_seconds), make)


def _audio_task(task: str) -> str:
    from losses.registry import did_you_mean

    if task not in AUDIO_TASKS:
        hint = did_you_mean(str(task), list(AUDIO_TASKS))
        raise ValueError(f"task must be one of {sorted(AUDIO_TASKS)}, got {task!r}.{hint}")
    return AUDIO_TASKS[task]


def enhance(
    audio: Any,
    sample_rate: int | None = None,
    task: str = "denoise",
    model: Any = None,
    device: str | torch.device | None = None,
    precision: str | None = None,
    *,
    chunk_seconds: float | None = None,
    output: str | os.PathLike | None = None,
    subtype: str | None = None,
):
    """Enhance speech: ``task="denoise"`` (noise and reverb removal) or ``"bandwidth"`` (extension).

    ``audio``: a path, a numpy array ``(T,)`` / ``(T, C)`` (soundfile's layout; float, int16 or int32)
    or a tensor ``(T,)`` / ``(C, T)`` / ``(N, C, T)``; arrays and tensors need ``sample_rate`` (Hz).
    Returns the same kind, dtype and layout; a path gives a float32 numpy array. The output rate is
    the input's for denoising, and the model's (16 kHz for the bundled one) for bandwidth extension.
    With ``output`` the result is written there (format from the suffix; ``subtype`` such as
    ``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``; by default the input file's when it has one) and the
    path is returned. Channels are enhanced independently; long signals go through in chunks of
    ``chunk_seconds`` (default 10 s) with overlap, so memory does not grow with the length.
    """
    from restore.io.audio_convert import from_audio_tensor, to_audio_tensor

    predictor = get_audio_predictor(
        model, task=task, device=device, precision=precision, chunk_seconds=chunk_seconds
    )
    source = to_audio_tensor(audio, sample_rate)
    out, rate = predictor(source.audio, source.sample_rate)
    if output is None:
        return from_audio_tensor(out, source)
    from restore.io.audio import write_audio

    write_audio(output, out.cpu(), rate, subtype=subtype or _output_subtype(source, output))
    return Path(output)


def _output_subtype(source, output: str | os.PathLike) -> str | None:
    """The input file's subtype when the output has the same format (PCM_24 stays PCM_24), else None."""
    if source.subtype is None or source.path is None:
        return None
    if Path(output).suffix.lower() != source.path.suffix.lower():
        return None
    return source.subtype
