"""Tiled inference: Predictor throughput against a naive tile loop, conv efficiency, peak memory.

One run measures, for one model (default ``compact_tiny`` x4, random weights) on one device:

(a) output megapixels per second of :class:`restore.infer.Predictor` (the API's default path: on CPU
    channels_last, bf16 autocast where the CPU has native bf16 (AMX or AVX512-BF16) and float32
    elsewhere, 320-pixel tiles one at a time, exact overlap) on a 2000x1500 input, against a naive
    loop: one tile at a time, float32 in PyTorch's default (contiguous) layout, crop-and-paste
    without overlap, under ``torch.no_grad``, at the Predictor's tile, at 512 pixels and over the
    whole image;
(b) the convolution GFLOP/s the Predictor achieves (the model's conv FLOPs per output pixel, counted
    with ``torch.utils.flop_counter.FlopCounterMode``, times output pixels per second) as a fraction
    of a bare ``torch.nn.functional.conv2d`` of the model's dominant conv shape in the Predictor's
    compute dtype (channels_last, the Predictor's tile and batch or half that side, whichever is
    faster, same threads); the bare float32 conv is shown beside it, and the same fraction for
    ``restore.upscale`` on an 8-bit photo; on CPU, where one call's time goes (convolutions,
    activations, other ops, outside ops: :func:`time_shares`), which is what that fraction is made of;
(c) peak memory of the Predictor with the same tile (``--mem-tile`` when (a) needed no tiles) on 1,
    4 and 16 megapixel inputs: on CPU the growth of the peak resident set (Linux VmHWM, reset through
    /proc/self/clear_refs; ``ru_maxrss`` where that is missing) of a fresh spawned process per size,
    from just before the input is made; on CUDA ``torch.cuda.max_memory_allocated`` (inputs and
    output on the CPU, so the GPU holds only the model and a batch of tiles). Tiling keeps the
    working memory flat; the output itself grows with the image (shown beside it).

    python benchmarks/inference.py                       # CPU, full sizes, writes docs/benchmarks.md
    python benchmarks/inference.py --device cuda
    python benchmarks/inference.py --size 400x300 --mem-sizes 0.1 0.2 --repeats 1 --no-write   # quick
    python benchmarks/inference.py --precision fp32 --models compact_tiny --no-write   # float32 path
    python benchmarks/inference.py --allocator command --compile --models compact_tiny   # upscale --compile
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable
from multiprocessing import get_context
from pathlib import Path
from statistics import median

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import restore  # noqa: E402
import restore.models as models  # noqa: E402
from benchmarks.report import cpu_kind, machine, median_ms, peak_rss_meter, write_section  # noqa: E402
from restore.infer import Predictor  # noqa: E402
from restore.infer.allocator import return_freed_memory  # noqa: E402


def build(name: str, device: str) -> nn.Module:
    torch.manual_seed(0)
    return models.build(name).eval().to(device)


def random_image(width: int, height: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))


def naive_tiles(model: nn.Module, x: torch.Tensor, tile: int, scale: int, device: str) -> torch.Tensor:
    """One tile at a time, default layout, no overlap: each crop's output pasted in place."""
    n, _, h, w = x.shape
    out = None
    with torch.no_grad():
        for top in range(0, h, tile):
            for left in range(0, w, tile):
                y = model(x[..., top : top + tile, left : left + tile].to(device)).float().cpu()
                if out is None:
                    out = torch.empty(n, y.shape[1], h * scale, w * scale)
                y0, x0 = top * scale, left * scale
                out[..., y0 : y0 + y.shape[-2], x0 : x0 + y.shape[-1]] = y
    assert out is not None
    return out


def uint8_image(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] -> (H, W, 3) uint8, as an 8-bit photo arrives."""
    return x[0].mul(255).round().byte().permute(1, 2, 0).contiguous().numpy()


def naive_uint8(model: nn.Module, image: np.ndarray, tile: int, scale: int, device: str) -> np.ndarray:
    """Real-ESRGAN's inference script around :func:`naive_tiles`: uint8 HWC -> float NCHW / 255, the
    loop, then clamp, * 255, round, uint8 HWC."""
    x = torch.from_numpy(image).permute(2, 0, 1).float().div(255)[None]
    out = naive_tiles(model, x, tile, scale, device)[0].clamp_(0, 1).permute(1, 2, 0).numpy()
    return (out * 255.0).round().astype(np.uint8)


def conv_flops(model: nn.Module, device: str, side: int = 64) -> tuple[float, tuple, float]:
    """(conv FLOPs per output pixel, dominant conv (in, out, kernel, stride, groups), its FLOP share)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = models.example_inputs(model, 1, side, device)
    by_shape: dict[tuple, float] = {}

    def hook(module: nn.Conv2d, args: tuple, output: torch.Tensor) -> None:
        key = (module.in_channels, module.out_channels, module.kernel_size, module.stride, module.groups)
        kh, kw = module.kernel_size
        flops = 2 * output.numel() * module.in_channels // module.groups * kh * kw
        by_shape[key] = by_shape.get(key, 0.0) + flops

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(*x)
    for handle in handles:
        handle.remove()
    total = sum(v for op, v in counter.get_flop_counts()["Global"].items() if "convolution" in str(op))
    dominant = max(by_shape, key=by_shape.get)
    return total / (out.shape[-2] * out.shape[-1]), dominant, by_shape[dominant] / total


def bare_conv(
    shape: tuple, batch: int, height: int, width: int, device: str, dtype: torch.dtype = torch.float32
) -> tuple[Callable, float]:
    """(a call of F.conv2d alone on (batch, in, height, width) channels_last with the dominant shape in
    ``dtype``, its FLOPs)."""
    cin, cout, kernel, stride, groups = shape
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, cin, height, width, generator=gen).to(device, dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(cout, cin // groups, *kernel, generator=gen).to(device, dtype)
    w = w.contiguous(memory_format=torch.channels_last)
    b = torch.zeros(cout, device=device, dtype=dtype)
    pad = (kernel[0] // 2, kernel[1] // 2)

    def call() -> torch.Tensor:
        with torch.inference_mode():
            return F.conv2d(x, w, b, stride, pad, 1, groups)

    y = call()
    return call, 2 * y.numel() * cin // groups * kernel[0] * kernel[1]


def bare_gflops(shape: tuple, conv_in: tuple[int, int, int], device: str, dtype: torch.dtype) -> float:
    """GFLOP/s of :func:`bare_conv` on ``conv_in`` = (batch, height, width), median of 10 calls; the
    better of that and the same batch at half the height and width, so that a tile at which the bare
    conv itself slows down (edsr_tiny's 32->128 conv: 290 GFLOP/s on a 400 tile, 443 on 320, 2-core
    AMD EPYC) does not flatter the Predictor's fraction.

    On the CPU in a fresh spawned process: where the heap holds what a whole-image naive pass freed,
    the conv's output can land where the same conv runs at half speed (compact_tiny's 32->32 conv on
    a 320 tile: 212-218 GFLOP/s after such a pass, 400-440 in a fresh process, 2-core AMD EPYC), which
    would flatter the Predictor's fraction.
    """
    batch, height, width = conv_in
    sizes = [conv_in, (batch, max(1, height // 2), max(1, width // 2))]
    if device == "cuda":
        return max(_bare_once(shape, size, device, dtype) for size in sizes)
    ctx = get_context("spawn")
    queue = ctx.Queue()
    dtype_name = str(dtype).removeprefix("torch.")
    proc = ctx.Process(target=_bare_child, args=(shape, sizes, dtype_name, torch.get_num_threads(), queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def _bare_once(shape: tuple, conv_in: tuple[int, int, int], device: str, dtype: torch.dtype) -> float:
    call, flops = bare_conv(shape, *conv_in, device, dtype)
    return flops / (median_ms(call, device, 10, warmup=2) / 1000) / 1e9


def _bare_child(shape: tuple, sizes: list, dtype_name: str, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    queue.put(max(_bare_once(shape, size, "cpu", getattr(torch, dtype_name)) for size in sizes))


def warm_up_image(compile: bool, width: int, height: int) -> torch.Tensor:
    """The input of a memory child's warm-up call (allocator, oneDNN primitives, the memory probe): a
    small one, or with ``compile`` one of the measured size, so that the compilation of its tile
    shapes happens before the meter starts instead of inside the measured call (then call
    :func:`return_freed_memory` before the meter: pages the warm-up freed would otherwise be reused
    unseen)."""
    return random_image(width, height) if compile else random_image(64, 64)


def _rss_child(name: str, megapixels: float, tile: int | None, compile: bool, threads: int, queue) -> None:
    """In a fresh process: growth of the peak resident set during one Predictor call (input included)."""
    torch.set_num_threads(threads)
    predictor = Predictor(build(name, "cpu"), device="cpu", tile=tile, compile=compile)
    width, height = _size_for(megapixels)
    predictor(warm_up_image(compile, width, height))
    return_freed_memory()
    growth = peak_rss_meter()
    x = random_image(width, height)
    out = predictor(x)
    queue.put((growth(), (x.numel() + out.numel()) * 4 / 2**20, predictor.last_tile))


def _rss_child_api(
    name: str, megapixels: float, tile: int | None, compile: bool, threads: int, queue
) -> None:
    """In a fresh process: growth of the peak resident set during one ``restore.upscale`` of a uint8
    image (input included)."""
    torch.set_num_threads(threads)
    model = build(name, "cpu")
    width, height = _size_for(megapixels)
    warm_up = uint8_image(warm_up_image(compile, width, height))
    restore.upscale(warm_up, model=model, device="cpu", tile=tile, compile=compile)
    del warm_up
    return_freed_memory()
    growth = peak_rss_meter()
    image = uint8_image(random_image(width, height))
    out = restore.upscale(image, model=model, device="cpu", tile=tile, compile=compile)
    # buffers: the uint8 input and output, and the float32 copy of the input the model reads
    queue.put((growth(), (image.nbytes * 5 + out.nbytes) / 2**20, tile))


def _size_for(megapixels: float) -> tuple[int, int]:
    """A 4:3 image of about ``megapixels`` (width, height)."""
    height = int(round((megapixels * 1e6 * 3 / 4) ** 0.5))
    return int(round(height * 4 / 3)), height


def peak_memory(
    name: str, megapixels: float, tile: int | None, device: str, api: bool = False, compile: bool = False
) -> tuple[float, float, int]:
    """(peak MB of the call, input+output MB, tile used) for a ``megapixels`` input: the Predictor on
    a float tensor, or (``api``, CPU) ``restore.upscale`` on a uint8 image."""
    if device == "cuda":
        predictor = Predictor(build(name, device), device=device, tile=tile, compile=compile)
        width, height = _size_for(megapixels)
        x = random_image(width, height)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = predictor(x)
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
        return peak, (x.numel() + out.numel()) * 4 / 2**20, predictor.last_tile
    ctx = get_context("spawn")
    queue = ctx.Queue()
    child = _rss_child_api if api else _rss_child
    proc = ctx.Process(target=child, args=(name, megapixels, tile, compile, torch.get_num_threads(), queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


NAIVE_TILES = ("same", 512, "whole")  # the Predictor's tile, a common --tile, Real-ESRGAN's default (0)


def naive_sides(tile: int, whole: int) -> dict[object, int]:
    """Tile side of each naive baseline of :data:`NAIVE_TILES`."""
    return {c: tile if c == "same" else whole if c == "whole" else int(c) for c in NAIVE_TILES}


def timed_rounds(
    runs: dict[object, Callable],
    out_mp: float,
    device: str,
    repeats: int,
    after_round: Callable[[], None] | None = None,
) -> dict[object, list[float]]:
    """Output MP/s of every run per round: a warm-up round, then ``repeats`` rounds that time the runs
    back to back (``after_round`` is called at the end of each)."""
    for run_once in runs.values():
        run_once()
    mps: dict[object, list[float]] = {key: [] for key in runs}
    for _ in range(repeats):
        for key, run_once in runs.items():
            mps[key].append(out_mp / (median_ms(run_once, device, 1, warmup=0) / 1000))
        if after_round is not None:
            after_round()
    return mps


# Op names (CPU profiler) of the elementwise activations a model runs between its convolutions; with
# compile=True they run inside Inductor's compiled graph, whose own time is its generated kernels.
ACTIVATION_OPS = ("prelu", "relu", "gelu", "silu", "sigmoid", "tanh", "CompiledFxGraph")


def time_shares(call: Callable[[], object], calls: int = 3) -> dict[str, float]:
    """Seconds per call of ``call`` (``calls`` calls under the CPU profiler), by kind: ``convolutions``
    (ops named *conv*), ``activations`` (:data:`ACTIVATION_OPS`), ``other ops`` (every other op: the
    model's own additions and upsampling, tile crops, output writing, quantisation), ``outside ops``
    (the rest of the wall time: Python, allocation, page faults outside ops), and ``wall``. Self
    times, so nested ops count once."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(calls):
            call()
        wall = time.perf_counter() - start
    shares = {"convolutions": 0.0, "activations": 0.0, "other ops": 0.0}
    for event in prof.key_averages():
        name = event.key.lower()
        kind = (
            "convolutions"
            if "conv" in name
            else "activations"
            if any(op.lower() in name for op in ACTIVATION_OPS)
            else "other ops"
        )
        shares[kind] += event.self_cpu_time_total / 1e6
    shares["outside ops"] = max(0.0, wall - sum(shares.values()))
    shares["wall"] = wall
    return {kind: seconds / calls for kind, seconds in shares.items()}


def against_naive(ours: list[float], mps: dict[object, list[float]], sides: dict[object, int]) -> dict:
    """Per naive baseline: (tile side, median MP/s, median over rounds of ours / its MP/s)."""
    return {
        c: (sides[c], median(mps[c]), median([p / n for p, n in zip(ours, mps[c], strict=True)]))
        for c in NAIVE_TILES
    }


def conv_fraction(flops_px: float, mps: list[float], bare: list[float]) -> tuple[list[float], float]:
    """(achieved conv GFLOP/s per round, median over rounds of achieved / bare GFLOP/s) for output
    MP/s ``mps`` of a model doing ``flops_px`` conv FLOPs per output pixel."""
    achieved = [flops_px * m * 1e6 / 1e9 for m in mps]
    return achieved, median([a / b for a, b in zip(achieved, bare, strict=True)])


def speed(name: str, args: argparse.Namespace, x: torch.Tensor) -> dict:
    """(a) and (b) for one model: Predictor and naive loops, conv efficiency.

    The machine's speed drifts (a shared VM), so every repeat is a round that times the Predictor,
    each naive loop and the bare conv one after the other; ratios are taken within a round and the
    median over rounds is reported.
    """
    device = args.device
    height, width = x.shape[-2:]
    predictor = Predictor(
        build(name, device), device=device, tile=args.tile, precision=args.precision, compile=args.compile
    )
    scale = predictor.spec.scale
    out_mp = width * height * scale**2 / 1e6
    start = time.perf_counter()
    out = predictor(x)
    first_s = time.perf_counter() - start
    tiled = predictor.last_tile is not None
    tile = predictor.last_tile or max(height, width)
    naive_model = build(name, device)  # same seed: same weights, default layout
    flops_px, dominant, share = conv_flops(copy.deepcopy(naive_model), device)
    conv_in = (predictor.tile_batch, tile, tile) if tiled else (1, height, width)
    same_dtype = predictor.dtype == torch.float32
    whole = max(height, width)
    sides = naive_sides(tile, whole)
    runs: dict[object, Callable] = {"predictor": lambda: predictor(x)}
    for c, side in sides.items():
        runs[c] = lambda s=side: naive_tiles(naive_model, x, s, scale, device)
    bare: list[float] = []
    bare32: list[float] = []

    def measure_bare() -> None:
        bare.append(bare_gflops(dominant, conv_in, device, predictor.dtype))
        if same_dtype:  # the Predictor's dtype is float32: the bare conv above is the float32 one
            bare32.append(bare[-1])
        else:
            bare32.append(bare_gflops(dominant, conv_in, device, torch.float32))

    mps = timed_rounds(runs, out_mp, device, args.repeats, after_round=measure_bare)
    shares = time_shares(runs["predictor"]) if device == "cpu" else None
    pred = mps["predictor"]
    achieved, fraction = conv_fraction(flops_px, pred, bare)
    naive = against_naive(pred, mps, sides)
    seams = (out - naive_tiles(naive_model, x, tile, scale, device)).abs().max().item()
    error = (out - naive_tiles(naive_model, x, whole, scale, device)).abs()  # vs float32, one pass
    error_max, error_mean = error.max().item(), error.mean().item()
    del error
    # what was executed, overlap recomputation included: input pixels of all tiles / image pixels
    from restore.infer import tile_boxes

    computed = sum(h * w for _, _, h, w in tile_boxes(height, width, tile, predictor.overlap)) if tiled else 1
    overhead = computed / (height * width) if tiled else 1.0
    print(
        f"{name}: predictor {median(pred):.2f} MP/s (tile {tile}), naive {naive}, conv "
        f"{median(achieved):.1f} of {median(bare):.1f} GFLOP/s {predictor.precision} (fraction "
        f"{fraction:.2f}; float32 bare conv {median(bare32):.1f})",
        flush=True,
    )
    return {
        "name": name,
        "predictor": predictor,
        "tile": tile,
        "tiled": tiled,
        "out_mp": out_mp,
        "mps": median(pred),
        "first_s": first_s,
        "naive": naive,
        "seams": seams,
        "error_max": error_max,
        "error_mean": error_mean,
        "flops_px": flops_px,
        "dominant": dominant,
        "share": share,
        "achieved": median(achieved),
        "executed": median(achieved) * overhead,
        "bare": median(bare),
        "bare32": median(bare32),
        "fraction": fraction,
        "overhead": overhead,
        "conv_in": conv_in,
        "shares": shares,
    }


def api_speed(name: str, args: argparse.Namespace, x: torch.Tensor, first: dict) -> dict:
    """(a) and (b) for the issue's own measure: ``restore.upscale`` on an 8-bit photo (uint8 numpy in
    and out) against the naive loops inside Real-ESRGAN's conversion (:func:`naive_uint8`), and its
    conv fraction against the bare conv of ``first`` (the Predictor's :func:`speed` result for the
    same model), measured again after each round."""
    device = args.device
    tile = first["tile"]
    model = build(name, device)
    image = uint8_image(x)
    scale = model.spec.scale

    def upscale() -> np.ndarray:
        return restore.upscale(
            image, model=model, device=device, precision=args.precision, tile=args.tile, compile=args.compile
        )

    out = upscale()
    out_mp = out.shape[0] * out.shape[1] / 1e6
    naive_model = build(name, device)
    whole = max(image.shape[:2])
    sides = naive_sides(tile, whole)
    runs: dict[object, Callable] = {"api": upscale}
    for c, side in sides.items():
        runs[c] = lambda s=side: naive_uint8(naive_model, image, s, scale, device)
    bare: list[float] = []
    conv_dtype = first["predictor"].dtype

    def measure_bare() -> None:
        bare.append(bare_gflops(first["dominant"], first["conv_in"], device, conv_dtype))

    mps = timed_rounds(runs, out_mp, device, args.repeats, after_round=measure_bare)
    shares = time_shares(upscale) if device == "cpu" else None
    api = mps["api"]
    naive = against_naive(api, mps, sides)
    achieved, fraction = conv_fraction(first["flops_px"], api, bare)
    levels = np.abs(out.astype(np.int16) - naive_uint8(naive_model, image, whole, scale, device))
    print(
        f"{name}: restore.upscale uint8 {median(api):.2f} MP/s, naive {naive}, conv {median(achieved):.1f} "
        f"of {median(bare):.1f} GFLOP/s (fraction {fraction:.2f})",
        flush=True,
    )
    return {
        "name": name,
        "mps": median(api),
        "naive": naive,
        "achieved": median(achieved),
        "bare": median(bare),
        "fraction": fraction,
        "levels_max": int(levels.max()),
        "levels_mean": float(levels.mean()),
        "out_mp": out_mp,
        "shares": shares,
    }


def time_share_lines(results: list[dict], api: dict) -> list[str]:
    """Markdown lines of :func:`time_shares` for each Predictor row and the ``restore.upscale`` row
    (none on CUDA, where op times are asynchronous)."""
    # (label, FLOPs and overlap of, time shares, output MP, bare conv GFLOP/s of its own rounds)
    rows = [(f"`{r['name']}` Predictor", r, r["shares"], r["out_mp"], r["bare"]) for r in results]
    upscale = f"`{api['name']}` in `restore.upscale` (8-bit photo)"
    rows.append((upscale, results[0], api["shares"], api["out_mp"], api["bare"]))
    if any(row[2] is None for row in rows):
        return []
    lines = [
        "Where the time goes (CPU profiler, three more calls after the rounds; self time of the ops by "
        "kind, as a share of the wall time). Activations: PReLU and other elementwise layers between "
        "the convolutions (with `compile=True`, Inductor's compiled kernels); other ops: the model's own "
        "additions and upsampling, tile crops, and the output's shuffle, skip, clamp, rounding and "
        "copies; outside ops: Python, allocation and the rest. Convolving: the executed conv FLOPs over "
        "the time inside the convolution ops, against the median bare conv of the rounds. The conv "
        "fraction above is about conv share x convolving / executed pixels per useful pixel (the "
        "profiler itself costs a few percent).",
        "",
        "| call | s per call (profiled) | convolutions | activations | other ops | outside ops "
        "| convolving GFLOP/s (of bare) | executed / useful pixels |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, r, shares, out_mp, bare in rows:
        wall = shares["wall"]
        executed = r["flops_px"] * out_mp * 1e6 * r["overhead"] / 1e9
        convolving = executed / shares["convolutions"] if shares["convolutions"] else float("nan")
        cells = " | ".join(
            f"{shares[kind] / wall:.0%}"
            for kind in ("convolutions", "activations", "other ops", "outside ops")
        )
        lines.append(
            f"| {label} | {wall:.2f} | {cells} | {convolving:.0f} ({convolving / bare:.2f}) "
            f"| {r['overhead']:.3f} |"
        )
    return [*lines, ""]


def run(args: argparse.Namespace) -> str:
    device = args.device
    width, height = (int(v) for v in args.size.lower().split("x"))
    x = random_image(width, height)
    results = [speed(name, args, x) for name in args.models]

    first = results[0]
    api = api_speed(first["name"], args, x, first)
    mem_tile = first["tile"] if first["tiled"] else args.mem_tile
    memory_rows = []
    for mp in args.mem_sizes:
        peak, buffers, used = peak_memory(first["name"], mp, mem_tile, device, compile=args.compile)
        row = [mp, peak, buffers, used]
        if device == "cpu":
            row += peak_memory(first["name"], mp, mem_tile, device, api=True, compile=args.compile)[:2]
        memory_rows.append(row)
        print(f"{mp} MP: peak {peak:.0f} MB, input+output {buffers:.0f} MB; api {row[4:]}", flush=True)

    peak_what = "torch.cuda.max_memory_allocated" if device == "cuda" else "peak RSS growth, fresh process"
    lines = [
        f"## Tiled inference ({device if device == 'cuda' else 'cpu, ' + cpu_kind()}"
        + (", allocator of the `restore` command" if args.allocator == "command" else "")
        + (", `compile=True`)" if args.compile else ")"),
        "",
        f"Machine: {machine()}. Input {width}x{height}, random weights, median of {args.repeats}. The "
        "Predictor is `restore.upscale`'s engine on its default path (on the CPU channels_last, bf16 "
        "autocast where the CPU has AMX or AVX512-BF16 and float32 elsewhere; tile from its policy, "
        "overlapping tiles pasted or blended so that the result equals the whole-image output). "
        "Baselines: a naive "
        "loop, one tile at a time, float32 in PyTorch's default contiguous layout, crop-and-paste "
        "without overlap "
        "(seams), at the Predictor's tile, at 512 pixels (a common `--tile`), and over the whole image "
        "in one pass (Real-ESRGAN's default `--tile 0`)."
        + (
            " Speed with glibc's allocator set as the `restore` command sets it (freed tile buffers "
            "reused: `restore.infer.allocator`); peak memory in fresh processes with the default one."
            if args.allocator == "command"
            else ""
        )
        + (
            " The Predictor and `restore.upscale` with `compile=True` (`torch.compile`, Inductor, weights "
            f"frozen; the first call, compilation included, took {first['first_s']:.1f} s); the naive "
            "loops and the bare conv stay eager."
            if args.compile
            else ""
        ),
        "",
        "| model | Predictor precision, tile | Predictor MP/s | naive, same tile | naive, 512 "
        "| naive, whole image |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = []
        for choice in NAIVE_TILES:
            side, mps, ratio = r["naive"][choice]
            cells.append(f"{mps:.2f} MP/s: **{ratio:.2f}x**")
        tile = f"{r['tile']} x{r['predictor'].tile_batch}" if r["tiled"] else "whole image"
        tile = f"{r['predictor'].precision}, {tile}"
        lines.append(
            f"| `{r['name']}` x{r['predictor'].spec.scale} | {tile} | {r['mps']:.2f} | "
            + " | ".join(cells)
            + " |"
        )
    cells = [f"{mps:.2f} MP/s: **{ratio:.2f}x**" for _, mps, ratio in api["naive"].values()]
    lines += [
        "",
        "The ratio in bold is Predictor MP/s over the baseline's (target >= 2x), the median over rounds "
        "that each time the Predictor and every baseline back to back (this shared machine's speed "
        "drifts by up to 2x over minutes, so only ratios within a round are compared).",
        "",
        f"The same for `restore.upscale` on an 8-bit photo ({width}x{height} uint8 numpy in, uint8 out; "
        "each tile quantised into the result as it is computed) against the naive loops inside "
        "Real-ESRGAN's conversion (uint8 -> float / 255, the loop, clamp, * 255, round, uint8):",
        "",
        "| model | restore.upscale MP/s | naive, same tile | naive, 512 | naive, whole image |",
        "|---|---|---|---|---|",
        f"| `{api['name']}` x{first['predictor'].spec.scale} | {api['mps']:.2f} | "
        + " | ".join(cells)
        + " |",
        "",
        f"8-bit levels from the float32 whole-image result: max {api['levels_max']}, mean "
        f"{api['levels_mean']:.3f}.",
        "",
        "| model | conv kFLOP per output px | useful conv GFLOP/s | executed conv GFLOP/s "
        "| bare conv2d GFLOP/s, Predictor's dtype (shape) | bare float32 conv2d GFLOP/s "
        "| fraction useful / executed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cin, cout, kernel, _, _ = r["dominant"]
        b, h, w = r["conv_in"]
        shape = (
            f"{cin}->{cout} {kernel[0]}x{kernel[1]} on {b}x{cin}x{h}x{w} or half that side, "
            f"{r['share']:.0%} of FLOPs"
        )
        lines.append(
            f"| `{r['name']}` | {r['flops_px'] / 1e3:.1f} | {r['achieved']:.1f} | {r['executed']:.1f} "
            f"| {r['bare']:.1f} {r['predictor'].precision} ({shape}) | {r['bare32']:.1f} "
            f"| **{r['fraction']:.2f}** / "
            f"{r['fraction'] * r['overhead']:.2f} |"
        )
    lines.append(
        f"| `{api['name']}` in `restore.upscale` (8-bit photo) | {first['flops_px'] / 1e3:.1f} "
        f"| {api['achieved']:.1f} | {api['achieved'] * first['overhead']:.1f} "
        f"| {api['bare']:.1f} {first['predictor'].precision} (the same) | {first['bare32']:.1f} "
        f"| **{api['fraction']:.2f}** / {api['fraction'] * first['overhead']:.2f} |"
    )
    lines += [
        "",
        "Useful = the model's convolution FLOPs (FlopCounterMode) per output pixel times output pixels per "
        "second: the work a whole-image pass needs, so overlap recomputation counts as overhead; executed "
        "counts the overlap too. The bare "
        "`conv2d` is the model's dominant convolution alone (channels_last, in the dtype the Predictor "
        "computes in) on the Predictor's tile or on half its side, whichever runs faster, repeated in "
        "cache in a fresh process (target fraction "
        ">= 0.6). The `restore.upscale` row is the same model timed on the 8-bit photo above (uint8 in "
        "and out, each tile quantised as it is computed), its bare conv measured again after each of "
        "its rounds. "
        "Difference of the Predictor's output from the float32 whole-image output: "
        + "; ".join(
            f"`{r['name']}` ({r['predictor'].precision}) max {r['error_max']:.1e}, mean {r['error_mean']:.1e}"
            for r in results
        )
        + " (on [0, 1]; one 8-bit level is 3.9e-03). "
        f"Max |Predictor - naive same tile| = {first['seams']:.2e} for `{first['name']}` "
        "(the naive loop's seams).",
        "",
        *time_share_lines(results, api),
        f"Peak memory of `{first['name']}` with tile {mem_tile} ({peak_what}): flat beyond the input and "
        "output buffers. Predictor: float32 tensor in and out"
        + (
            "; `restore.upscale`: uint8 numpy in and out, with the float32 copy of the input that the "
            "model reads (the float32 output is never allocated)."
            if device == "cpu"
            else "."
        ),
        "",
        "| input MP | tile used | Predictor peak MB | input + output MB | peak - input - output MB"
        + (
            " | restore.upscale peak MB | input (uint8, float32) + output MB | peak - input - output MB |"
            if device == "cpu"
            else " |"
        ),
        "|---|---|---|---|---|" + ("---|---|---|" if device == "cpu" else ""),
    ]
    for mp, peak, buffers, used, *api_row in memory_rows:
        line = f"| {mp:g} | {used or 'whole'} | {peak:.0f} | {buffers:.0f} | {peak - buffers:.0f} |"
        if api_row:
            api_peak, api_buffers = api_row
            line += f" {api_peak:.0f} | {api_buffers:.0f} | {api_peak - api_buffers:.0f} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--models",
        nargs="+",
        default=["compact_tiny", "edsr_tiny"],
        help="models to time; the first is also measured for memory (default: the bundled "
        "sr-x4 architecture, then a convolution-heavier one)",
    )
    parser.add_argument("--size", default="2000x1500", help="input WIDTHxHEIGHT (default 2000x1500)")
    parser.add_argument("--tile", type=int, default=None, help="tile side (default: the Predictor's choice)")
    parser.add_argument(
        "--precision", choices=("fp32", "bf16", "fp16"), help="(default: the Predictor's policy)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mem-sizes", type=float, nargs="+", default=[1, 4, 16], help="input megapixels")
    parser.add_argument(
        "--mem-tile", type=int, default=512, help="tile for (c) when (a) ran in one pass (default 512)"
    )
    parser.add_argument(
        "--allocator",
        choices=("default", "command"),
        default="default",
        help="'command': glibc set as the restore command sets it (restore.infer.allocator) for (a) and "
        "(b); section inference-cpu-KIND-command (default: the allocator as a program that imports "
        "restore has it)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="the Predictor and restore.upscale with compile=True; section inference-...-compile",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; do not touch docs/benchmarks.md")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    if args.allocator == "command":
        from restore.infer.allocator import keep_freed_buffers

        if not keep_freed_buffers():
            parser.error("--allocator command: glibc's mallopt is not available (or set by the environment)")
    section = run(args)
    print(section)
    if not args.no_write:
        kind = "cuda" if args.device == "cuda" else f"cpu-{cpu_kind()}"
        kind += "-command" if args.allocator == "command" else ""
        kind += "-compile" if args.compile else ""
        write_section(f"inference-{kind}", section)


if __name__ == "__main__":
    main()
