"""Predictor: run a restore model on images of any size with the right device, precision and tiles.

Precision policy (``precision=None``):

- CPU with native bf16 dot products (:func:`cpu_bf16_instructions`: AMX bf16 tiles, Intel Sapphire
  Rapids and later; or AVX512-BF16, AMD Zen 4 and later, Intel Cooper Lake): bf16 autocast with
  channels_last for models that declare ``spec.cpu_bf16`` (the convolutional SR networks
  ``compact*``, ``edsr*``, ``rrdbnet*``, ``srresnet``). oneDNN runs their bf16 convolutions at
  about 6x (AMX) or 2-4x (AVX512-BF16) float32's speed; those networks run 1.7-3.9x (AMX) and
  1.7-2.2x (AVX512-BF16, 2-core AMD EPYC) faster, and the bundled sr-x4 / sr-x2 score within 0.001 dB
  PSNR-Y of float32 on Set5, Set14 and BSD100 (docs/benchmarks.md, "CPU precision"). Transformers
  (SwinIR: 0.95-0.98x), inpainting and deblurring networks (0.85-1.25x: LayerNorm, softmax, FFTs
  and gates stay float32) and diffusion UNets keep float32;
- other CPUs: float32 with channels_last model and inputs (0.9-2x the speed of contiguous float32,
  while bf16 emulated without those instructions runs at 0.47-1.08x, i.e. slower);
- CUDA: bf16 autocast when the model supports it and the GPU has bf16, else fp16 when the model
  supports it, else float32; channels_last when the model has 2-D convolutions.

Half precision is applied with ``torch.autocast`` (weights stay float32), so the parts of a model
that disable autocast (FFTs, statistics) keep running in float32. Asking for a half type the model
does not declare warns and runs float32.

Tile size (``tile=None``): the whole image in one pass when it fits a memory budget, otherwise the
largest square tile that does. Budget: on CUDA 60% of the free memory (``torch.cuda.mem_get_info``
plus what PyTorch has cached but not used); on the CPU half of ``MemAvailable`` capped at
:data:`CPU_BUDGET_CAP`. Bytes per input pixel are measured once on a small probe tile: on CUDA the
peak of ``torch.cuda.max_memory_allocated``; on the CPU the largest input + output of one leaf module,
doubled. An out-of-memory error halves the tile (see :func:`tiled_forward_with_fallback`) and the
tile that worked becomes the limit for later calls.

On the CPU, super-resolution models (convolutions only) are also tiled for the caches: an image
larger than :data:`CPU_ONE_PASS_TILES` (1.5) :data:`CPU_CACHE_TILE` tiles goes through such tiles one
at a time, 1.7x faster than one pass on a 1024x1024 or 1280x720 photo; the overlap keeps the result
equal to the whole-image one. A model whose receptive field is a true bound (``spec.exact_tiling``)
overlaps its tiles by exactly twice that radius and each tile's exact centre is pasted (no blending
ramp or accumulation).
Inpainting and deblurring networks (LaMa's Fourier convolutions, NAFNet's global channel attention)
see the whole image whenever it fits in memory.

``compile=True``: the model (or, for the sub-pixel path, its ``forward_subpixel``) runs through
``torch.compile`` with Inductor's freezing (:data:`COMPILE_OPTIONS`); the first call of each tile
shape compiles. The bundled compact network then runs 1.1x faster on the CPU, EDSR 2x slower
(docs/inference.md). The weights are frozen into the compiled graph: changes to them after the
first call are not seen. Where compilation fails (no C++ compiler) it warns once and runs eagerly.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import nn

from restore.models.registry import ModelSpec, spec_of
from restore.models.subpixel import SubpixelOutput

from .tiling import (
    WriteFn,
    default_overlap,
    is_out_of_memory,
    min_tile_size,
    round_down,
    round_up,
    tiled_forward_with_fallback,
)

PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}
NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
CPU_BUDGET_CAP = 2 * 2**30
CUDA_BUDGET_FRACTION = 0.6
CPU_BUDGET_FRACTION = 0.5
DEFAULT_TILE_BATCH = 4
CPU_TILE_BATCH = 1
# On the CPU, a forward on tiles of about 400 pixels is faster than one pass over an image of more
# than one and a half such tiles, overlap included: the activations stay in cache and their buffers
# are reused. restore.upscale on uint8 photos, compact_tiny x4, output MP/s, median of 7 alternating
# rounds (2-core AMD EPYC, AVX512-BF16): 2000x1500 23.5 / 24.6 / 25.8 / 25.5 / 24.8 at tiles
# 256 / 320 / 400 / 480 / 560; 1920x1080 23.4 / 24.5 / 25.8 / 25.6 / 25.2; 1280x720 24.2 / 24.8 /
# 26.2 / 26.4 / 26.4, against 14.4 in one pass (1024x1024: 13.9 in one pass, 24.0 in tiles of 320).
# 480x360 to 640x480: one pass and tiles of 400 within 5%. Predictor at 320 / 400: edsr_tiny 4.27 /
# 4.57 on 1280x720, rrdbnet_small 1.09 / 1.14 on 800x600.
CPU_CACHE_TILE = 400
CPU_ONE_PASS_TILES = 1.5  # on the CPU, one pass only for images of at most this many cache tiles
CACHE_TILED_TASKS = ("sr",)  # convolution-only families; inpainting/deblurring nets use global context
PROBE_SIZE = 64
# torch.compile(compile=True) with Inductor's freezing: the weights become constants, so on the CPU
# each conv runs oneDNN with its weights packed once and each PReLU is one in-place loop.
COMPILE_OPTIONS = {"freezing": True}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> ``cuda`` when available, else ``cpu``; strings are checked by torch."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available here; use device='cpu'")
    return resolved


def _bf16_available(device: torch.device) -> bool:
    return device.type != "cuda" or torch.cuda.is_bf16_supported()


@functools.cache
def cpu_bf16_instructions() -> str | None:
    """The native bf16 dot-product instructions oneDNN can use on this CPU: ``"amx_bf16"`` (AMX
    tiles that this process may use), ``"avx512_bf16"``, or None (bf16 would be emulated).

    AMX needs the CPU flag and the kernel's permission for the tile state (``torch.cpu._init_amx``).
    None when this PyTorch cannot tell or has no oneDNN.
    """
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is None or not torch.backends.mkldnn.is_available():
        return None
    init_amx = getattr(torch.cpu, "_init_amx", None)
    try:
        flags = capabilities()
        if flags.get("amx_bf16", False) and init_amx is not None and init_amx():
            return "amx_bf16"
    except (RuntimeError, AttributeError):
        return None
    return "avx512_bf16" if flags.get("avx512_bf16", False) else None


def default_precision(spec: ModelSpec, device: torch.device) -> torch.dtype:
    """The policy of the module docstring: on the CPU bf16 for models that declare ``cpu_bf16`` where
    the CPU has native bf16 instructions, else float32; on CUDA bf16, else fp16, else float32, by
    what the model supports."""
    if device.type != "cuda":
        fast_bf16 = spec.cpu_bf16 and spec.supports_bf16 and cpu_bf16_instructions() is not None
        return torch.bfloat16 if fast_bf16 else torch.float32
    if spec.supports_bf16 and _bf16_available(device):
        return torch.bfloat16
    if spec.supports_fp16:
        return torch.float16
    return torch.float32


def resolve_precision(
    precision: str | torch.dtype | None, spec: ModelSpec, device: torch.device
) -> torch.dtype:
    """The compute dtype for ``precision`` ("fp32", "bf16", "fp16", their long names, a dtype, or
    None for the default policy); an unsupported half type warns and gives float32."""
    if precision is None:
        return default_precision(spec, device)
    if isinstance(precision, torch.dtype):
        dtype = precision
        if dtype not in NAMES:
            raise ValueError(f"precision must be float32, bfloat16 or float16, got {precision!r}")
    elif isinstance(precision, str) and precision.lower() in PRECISIONS:
        dtype = PRECISIONS[precision.lower()]
    else:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)} or None, got {precision!r}")
    supported = {torch.float32: True, torch.bfloat16: spec.supports_bf16, torch.float16: spec.supports_fp16}
    if not supported[dtype]:
        warnings.warn(
            f"model {spec.name!r} does not support {NAMES[dtype]} precision; running in fp32", stacklevel=3
        )
        return torch.float32
    if dtype == torch.bfloat16 and not _bf16_available(device):
        warnings.warn(
            f"model {spec.name!r}: this GPU has no bf16 support; running in fp32 instead of bf16",
            stacklevel=3,
        )
        return torch.float32
    return dtype


def compute_autocast(device: torch.device, dtype: torch.dtype):
    """Autocast to ``dtype`` on ``device``, or nothing for float32 (weights stay float32 either way)."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def available_ram() -> int:
    """Bytes of RAM available to new allocations: ``MemAvailable`` of /proc/meminfo, else sysconf."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return CPU_BUDGET_CAP


def subpixel_stands_for_forward(model: nn.Module) -> bool:
    """Whether ``model.forward_subpixel`` computes what calling ``model`` would: the class that
    defines it also defines the ``forward`` in use (not changed by a subclass or on the instance), and
    no forward hooks are registered (they would be skipped)."""
    owner = next((c for c in type(model).__mro__ if "forward_subpixel" in vars(c)), None)
    if owner is None or "forward" in vars(model) or "forward_subpixel" in vars(model):
        return False
    if type(model).forward is not owner.forward:
        return False
    return not (model._forward_hooks or model._forward_pre_hooks)


class Predictor:
    """Runs a restore model on whole images: device, precision, channels_last, tiles and OOM fallback.

    ``Predictor(model, device=None, precision=None, tile=None, tile_batch=None)`` wraps a model made
    by ``restore.models.build`` or ``restore.models.load`` (it needs ``model.spec``); the model is put
    in eval mode and moved to ``device`` once. ``predictor(image)`` or ``predictor(image, mask)``:
    float tensors (N,C,H,W) in [0,1] on any device -> float32 (N,C_out,H*scale,W*scale) on the
    input's device, not clamped; ``predictor(image, write=fn)`` passes the output to ``fn`` block by
    block instead (the API writes 8-bit images this way). ``tile``: side in input pixels (rounded to
    the model's size multiple) or None to choose from free memory; ``tile_batch``: tiles per forward
    (default 4 on CUDA, 1 on the CPU); ``compile``: run the model through ``torch.compile`` (module
    docstring).
    """

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device | None = None,
        precision: str | torch.dtype | None = None,
        tile: int | None = None,
        tile_batch: int | None = None,
        compile: bool = False,
    ) -> None:
        self.spec = spec_of(model)
        if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 1):
            raise ValueError(f"tile must be a positive int or None, got {tile!r}")
        if not isinstance(compile, bool):
            raise ValueError(f"compile must be True or False, got {compile!r}")
        if tile_batch is not None and (
            isinstance(tile_batch, bool) or not isinstance(tile_batch, int) or tile_batch < 1
        ):
            raise ValueError(f"tile_batch must be a positive int or None, got {tile_batch!r}")
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.spec, self.device)
        self.precision = NAMES[self.dtype]
        has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
        self.channels_last = self.device.type == "cpu" or has_conv
        model = model.eval().to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.overlap = default_overlap(
            self.spec.receptive_field, self.spec.size_multiple, exact=self.spec.exact_tiling
        )
        self.tile = None if tile is None else round_down(tile, self.spec.size_multiple)
        if self.tile is not None and self.tile <= self.overlap:  # tiled_forward would refuse it
            smallest = min_tile_size(self.overlap, self.spec.size_multiple)
            warnings.warn(
                f"tile {tile} is too small for model {self.spec.name!r}: its tiles overlap by "
                f"{self.overlap} pixels; using tile {smallest}",
                stacklevel=2,
            )
            self.tile = smallest
        default_batch = CPU_TILE_BATCH if self.device.type == "cpu" else DEFAULT_TILE_BATCH
        self.tile_batch = tile_batch or default_batch
        self.compile = compile
        self._compiled: dict[str, Callable] = {}  # "forward" / "forward_subpixel" -> torch.compile'd
        self._probing = False  # the memory probe runs eagerly: its small shape is not worth compiling
        self.last_tile: int | None = None  # tile of the latest call (None: one pass)
        self._tile_limit: int | None = None  # largest tile known to fit after an out-of-memory error
        self._bytes_per_pixel: float | None = None

    def __repr__(self) -> str:
        return (
            f"Predictor({self.spec.name}, device={self.device}, precision={self.precision}, "
            f"channels_last={self.channels_last}, tile={self.tile}, tile_batch={self.tile_batch}, "
            f"compile={self.compile})"
        )

    def _autocast(self):
        return compute_autocast(self.device, self.dtype)

    def forward_tiles(self, *tiles: torch.Tensor, interleaved: bool = False) -> torch.Tensor | SubpixelOutput:
        """One model forward on a batch of tiles: to the device and layout, autocast, float32 out on
        the device of ``tiles[0]``.

        On the CPU a model with ``forward_subpixel`` (Real-ESRGAN's compact network) returns its
        :class:`~restore.models.subpixel.SubpixelOutput` instead, so that the tiling writes each tile
        centre's shuffle and skip straight into the output image (it materialises it otherwise);
        ``interleaved``: with its features in the order of an (H, W, C) image (for ``write``, whose
        strips are channels_last).
        """
        home = tiles[0].device
        moved = []
        for t in tiles:
            t = t.to(self.device, non_blocking=True)
            if self.channels_last:
                t = t.contiguous(memory_format=torch.channels_last)
            moved.append(t)
        on_cpu = self.device.type == "cpu" and home.type == "cpu"
        with torch.inference_mode(), self._autocast():
            if on_cpu and subpixel_stands_for_forward(self.model):
                return self._run("forward_subpixel", *moved, interleaved=interleaved)
            out = self._run("forward", *moved)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"model {self.spec.name!r} returned {type(out).__name__}, expected a tensor")
        return out.float().to(home)

    def _run(self, method: str, *args: torch.Tensor, **kwargs: object) -> object:
        """``self.model.<method>(*args, **kwargs)``, through ``torch.compile`` when ``compile`` is set.

        A compilation that fails (no C++ compiler for the CPU, no Triton for CUDA) warns once and the
        Predictor runs the model eagerly from then on.
        """
        eager = self.model if method == "forward" else getattr(self.model, method)
        if not self.compile or self._probing:
            return eager(*args, **kwargs)
        if method not in self._compiled:
            self._compiled[method] = torch.compile(eager, options=COMPILE_OPTIONS)
        try:
            return self._compiled[method](*args, **kwargs)
        except torch._dynamo.exc.BackendCompilerFailed as err:
            inner = getattr(err, "inner_exception", None) or err
            detail = str(inner).strip()
            reason = f"{type(inner).__name__}: {detail.splitlines()[0] if detail else ''}"
            warnings.warn(
                f"model {self.spec.name!r}: torch.compile failed ({reason}); running it without compile",
                stacklevel=4,
            )
            self.compile = False
            self._compiled.clear()
            return eager(*args, **kwargs)

    def _validate(self, inputs: tuple[torch.Tensor, ...]) -> None:
        names = self.spec.inputs
        if len(inputs) != len(names):
            raise ValueError(
                f"model {self.spec.name!r} takes {len(names)} input(s) ({', '.join(names)}), "
                f"got {len(inputs)}"
            )
        for name, x in zip(names, inputs, strict=True):
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
            if x.ndim != 4:
                raise ValueError(f"{name} must be a 4-D tensor (N,C,H,W), got shape {tuple(x.shape)}")
            if not x.is_floating_point():
                raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {x.dtype}")
            if x.numel() == 0:
                raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
        image = inputs[0]
        if image.shape[1] != self.spec.in_channels:
            raise ValueError(
                f"model {self.spec.name!r} expects {self.spec.in_channels} input channels, "
                f"got {image.shape[1]} (image shape {tuple(image.shape)})"
            )
        for name, x in zip(names, inputs, strict=True):
            if name == "mask" and x.shape[1] != 1:
                raise ValueError(f"mask must have 1 channel, got shape {tuple(x.shape)}")

    def __call__(self, *inputs: torch.Tensor, write: WriteFn | None = None) -> torch.Tensor | None:
        """float (N,C,H,W) image (and mask) -> float32 (N,C_out,H*scale,W*scale), or None after
        passing the output to ``write(block, top, left)`` a block at a time (see
        :func:`~restore.infer.tiling.tiled_forward`; e.g.
        :meth:`restore.io.quantise.QuantisedImage.write`)."""
        self._validate(inputs)
        tile = self.choose_tile(inputs)
        with torch.no_grad():
            out, used = tiled_forward_with_fallback(
                functools.partial(self.forward_tiles, interleaved=write is not None),
                inputs,
                scale=self.spec.scale,
                tile=tile,
                overlap=self.overlap,
                receptive_field=self.spec.receptive_field,
                size_multiple=self.spec.size_multiple,
                tile_batch=self.tile_batch,
                write=write,
            )
        if used != tile:  # an out-of-memory fallback: do not try larger tiles again
            self._tile_limit = used
        self.last_tile = used
        return out

    def choose_tile(self, inputs: tuple[torch.Tensor, ...]) -> int | None:
        """The tile for these inputs: the explicit tile, else None (one pass) when the whole batch
        fits the memory budget, else the largest fitting tile (never below the useful minimum)."""
        multiple = self.spec.size_multiple
        n, _, h, w = inputs[0].shape
        side = max(round_up(h, multiple), round_up(w, multiple))
        tile = self.tile
        if tile is None:
            budget = self.memory_budget()
            per_pixel = self.bytes_per_pixel()
            area = n * round_up(h, multiple) * round_up(w, multiple)
            cache_tile = self.cache_tile()
            if area * per_pixel <= budget and (
                cache_tile is None or area <= CPU_ONE_PASS_TILES * n * cache_tile**2
            ):
                tile = side
            else:
                tile = math.isqrt(int(min(budget / (per_pixel * max(self.tile_batch, n)), side**2)))
                if cache_tile is not None:
                    tile = min(tile, cache_tile)
                tile = max(round_down(tile, multiple), min_tile_size(self.overlap, multiple))
        if self._tile_limit is not None:
            tile = min(tile, self._tile_limit)
        return None if tile >= side else tile

    def cache_tile(self) -> int | None:
        """:data:`CPU_CACHE_TILE` (at least 4 overlaps) on the CPU, or None (CUDA, or a model family
        whose output depends on the whole image)."""
        if self.device.type != "cpu" or self.spec.task not in CACHE_TILED_TASKS:
            return None
        return max(round_down(CPU_CACHE_TILE, self.spec.size_multiple), 4 * self.overlap)

    def memory_budget(self) -> float:
        """Bytes the activations of one forward may use (module docstring)."""
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            cached = torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
            return CUDA_BUDGET_FRACTION * (free + cached)
        return min(CPU_BUDGET_FRACTION * available_ram(), CPU_BUDGET_CAP)

    def bytes_per_pixel(self) -> float:
        """Activation bytes per input pixel, measured once on a probe tile (module docstring)."""
        if self._bytes_per_pixel is None:
            side = round_up(max(PROBE_SIZE, 2 * self.spec.size_multiple), self.spec.size_multiple)
            probe = [torch.zeros(1, self.spec.in_channels, side, side, device=self.device)]
            probe += [torch.zeros(1, 1, side, side, device=self.device) for _ in self.spec.inputs[1:]]
            self._probing = True
            try:
                cuda = self.device.type == "cuda"
                measured = self._cuda_probe(probe) if cuda else self._module_probe(probe)
            except (RuntimeError, torch.OutOfMemoryError) as err:
                if not is_out_of_memory(err):
                    raise
                measured = math.inf  # not even the probe fits: start from the smallest tile
            finally:
                self._probing = False
            self._bytes_per_pixel = max(measured / side**2, 1.0)
        return self._bytes_per_pixel

    def _cuda_probe(self, probe: list[torch.Tensor]) -> float:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        self.forward_tiles(*probe)
        torch.cuda.synchronize(self.device)
        return float(torch.cuda.max_memory_allocated(self.device) - base)

    def _module_probe(self, probe: list[torch.Tensor]) -> float:
        """Twice the largest (inputs + output) bytes of one leaf module during a probe forward."""
        largest = 0

        def hook(module: nn.Module, args: tuple, output: object) -> None:
            nonlocal largest
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            tensors += [output] if isinstance(output, torch.Tensor) else []
            largest = max(largest, sum(t.numel() * t.element_size() for t in tensors))

        leaves = [m for m in self.model.modules() if not list(m.children())]
        handles = [m.register_forward_hook(hook) for m in leaves]
        try:
            self.forward_tiles(*probe)
        finally:
            for handle in handles:
                handle.remove()
        return 2.0 * largest
