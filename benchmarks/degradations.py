"""Throughput of the Real-ESRGAN second-order degradation: ours (batched, on the device) against a
per-image cv2/numpy implementation of the same steps (as data-loader workers usually do it).

Both sides draw their own random parameters from the same distributions (RealESRGANConfig defaults) and
generate their kernels inside the timed call. The baseline (below) blurs with ``cv2.filter2D`` (reflect-101
border, as our reflect padding), resizes with ``cv2.resize`` (area/linear/cubic), adds numpy Gaussian or
Poisson noise and compresses with ``cv2.imencode``/``imdecode``, one image at a time.

    python benchmarks/degradations.py [--batch 16] [--size 256] [--device cpu cuda] [--no-write]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

# Run as a script from anywhere: the repository root on the path (benchmarks/ itself off it).
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from benchmarks.report import machine, median_ms, write_section  # noqa: E402
from restore.degrade.realesrgan import RealESRGANConfig, RealESRGANDegradation  # noqa: E402

# ----------------------------------------------------------------------------- per-image cv2 baseline


def _np_kernel(rng: np.random.Generator, cfg: RealESRGANConfig, stage: str) -> np.ndarray:
    """One Real-ESRGAN kernel (BasicSR's formulas), zero-padded to blur_kernel_size."""
    from scipy import special

    size = int(rng.choice(cfg.kernel_sizes))
    ax = np.arange(-(size // 2), size // 2 + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    if rng.uniform() < getattr(cfg, "sinc_prob" + stage):
        cutoff = rng.uniform(np.pi / 3, np.pi) if size < 13 else rng.uniform(np.pi / 5, np.pi)
        kernel = _np_sinc(cutoff, xx, yy, special)
    else:
        kinds, probs = getattr(cfg, "kernel_list" + stage), np.asarray(getattr(cfg, "kernel_prob" + stage))
        kind = kinds[rng.choice(len(kinds), p=probs / probs.sum())]
        low, high = getattr(cfg, "blur_sigma" + stage)
        sx = rng.uniform(low, high)
        sy, theta = sx, 0.0
        if kind.endswith("aniso"):
            sy, theta = rng.uniform(low, high), rng.uniform(-np.pi, np.pi)
        c, s = np.cos(theta), np.sin(theta)
        a, b = c * c / sx**2 + s * s / sy**2, c * s * (1 / sx**2 - 1 / sy**2)
        d = s * s / sx**2 + c * c / sy**2
        q = a * xx**2 + 2 * b * xx * yy + d * yy**2
        beta_range = getattr(cfg, ("betag_range" if "generalized" in kind else "betap_range") + stage)
        beta = rng.uniform(beta_range[0], 1) if rng.uniform() < 0.5 else rng.uniform(1, beta_range[1])
        if kind in ("iso", "aniso"):
            kernel = np.exp(-0.5 * q)
        elif "generalized" in kind:
            kernel = np.exp(-0.5 * q**beta)
        else:
            kernel = 1 / (q**beta + 1)
    kernel /= kernel.sum()
    pad = (cfg.blur_kernel_size - size) // 2
    return np.pad(kernel, pad)


def _np_sinc(cutoff: float, xx: np.ndarray, yy: np.ndarray, special) -> np.ndarray:
    r = np.sqrt(xx**2 + yy**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    kernel[r == 0] = cutoff**2 / (4 * np.pi)
    return kernel / kernel.sum()


def _np_noise(rng: np.random.Generator, img: np.ndarray, cfg: RealESRGANConfig, stage: str) -> np.ndarray:
    import cv2

    gray = rng.uniform() < getattr(cfg, "gray_noise_prob" + stage)
    if rng.uniform() < getattr(cfg, "gaussian_noise_prob" + stage):
        sigma = rng.uniform(*getattr(cfg, "noise_range" + stage)) / 255
        shape = img.shape[:2] + (1,) if gray else img.shape
        noise = rng.standard_normal(shape, dtype=np.float32) * sigma
    else:
        scale = rng.uniform(*getattr(cfg, "poisson_scale_range" + stage))
        src = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None] if gray else img
        src = np.clip((src * 255).round(), 0, 255) / 255
        vals = 2 ** np.ceil(np.log2(len(np.unique(src))))
        noise = ((rng.poisson(src * vals) / vals - src) * scale).astype(np.float32)
    return np.clip(img + noise, 0, 1)


def _np_jpeg(rng: np.random.Generator, img: np.ndarray, quality_range) -> np.ndarray:
    import cv2

    quality = int(rng.uniform(*quality_range))
    pixels = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    _, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255


def _np_resize(rng: np.random.Generator, img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    mode = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)[rng.integers(3)]
    return cv2.resize(img, (max(1, size[1]), max(1, size[0])), interpolation=mode)


def _np_scale(rng: np.random.Generator, prob, limits) -> float:
    kind = rng.choice(3, p=np.asarray(prob) / sum(prob))
    return rng.uniform(1, limits[1]) if kind == 0 else rng.uniform(limits[0], 1) if kind == 1 else 1.0


def cv2_degrade(
    img: np.ndarray, rng: np.random.Generator, cfg: RealESRGANConfig, scale: int = 4
) -> np.ndarray:
    """Real-ESRGAN's degradation of one (H, W, 3) float32 RGB image with cv2 and numpy."""
    import cv2

    h, w = img.shape[:2]
    out = cv2.filter2D(img, -1, _np_kernel(rng, cfg, ""))
    s1 = _np_scale(rng, cfg.resize_prob, cfg.resize_range)
    out = _np_resize(rng, out, (math.floor(h * s1), math.floor(w * s1)))
    out = _np_jpeg(rng, _np_noise(rng, out, cfg, ""), cfg.jpeg_range)
    if rng.uniform() < cfg.second_blur_prob:
        out = cv2.filter2D(out, -1, _np_kernel(rng, cfg, "2"))
    s2 = _np_scale(rng, cfg.resize_prob2, cfg.resize_range2)
    out = _np_resize(rng, out, (int(h / scale * s2), int(w / scale * s2)))
    out = _np_noise(rng, out, cfg, "2")
    final = (h // scale, w // scale)
    sinc = None
    if rng.uniform() < cfg.final_sinc_prob:
        size = int(rng.choice(cfg.kernel_sizes))
        ax = np.arange(-(size // 2), size // 2 + 1, dtype=np.float64)
        from scipy import special

        sinc = _np_sinc(rng.uniform(np.pi / 3, np.pi), *np.meshgrid(ax, ax), special)

    def back(x: np.ndarray) -> np.ndarray:
        x = _np_resize(rng, x, final)
        return cv2.filter2D(x, -1, sinc) if sinc is not None else x

    if rng.uniform() < 0.5:
        out = _np_jpeg(rng, back(out), cfg.jpeg_range2)
    else:
        out = back(_np_jpeg(rng, out, cfg.jpeg_range2))
    return np.clip((out * 255).round(), 0, 255) / 255


# ----------------------------------------------------------------------------- benchmark


def images(batch: int, size: int) -> torch.Tensor:
    import skimage.data

    sources = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    crops = []
    for i in range(batch):
        src = sources[i % len(sources)]
        top, left = (i * 17) % (src.shape[0] - size), (i * 29) % (src.shape[1] - size)
        crops.append(torch.from_numpy(src[top : top + size, left : left + size].copy()))
    return torch.stack(crops).permute(0, 3, 1, 2).float() / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches first (new shapes cost more)")
    parser.add_argument("--device", nargs="+", default=["cpu", "cuda"])
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--section", default="degradations", help="docs/benchmarks.md section to (re)write")
    args = parser.parse_args()

    import cv2

    cfg = RealESRGANConfig()
    module = RealESRGANDegradation(4, cfg)
    rng = np.random.default_rng(0)
    rows = []
    for batch in args.batch:
        hr = images(batch, args.size)
        hr_np = [np.ascontiguousarray(x.permute(1, 2, 0).numpy()) for x in hr]

        def baseline(hr_np: list[np.ndarray] = hr_np) -> None:
            for img in hr_np:
                cv2_degrade(img, rng, cfg)

        base_ips = batch / median_ms(baseline, "cpu", max(3, args.repeats // 4), warmup=1) * 1000
        for device in args.device:
            if device == "cuda" and not torch.cuda.is_available():
                continue
            x = hr.to(device)
            gen = torch.Generator(device).manual_seed(0)
            with torch.no_grad():
                ours_ms = median_ms(lambda x=x, gen=gen: module(x, gen), device, args.repeats, args.warmup)
            ips = batch / ours_ms * 1000
            shape = f"{batch}x3x{args.size}x{args.size}"
            rows.append(f"| {device} | {shape} | {ips:.1f} | {base_ips:.1f} | {ips / base_ips:.2f} |")
            print(rows[-1], flush=True)
    markdown = "\n".join(
        [
            f"## Degradations: Real-ESRGAN second-order pipeline ({', '.join(args.device)}, "
            f"{torch.get_num_threads()} CPU threads)",
            "",
            f"Machine: {machine()}, cv2 {cv2.__version__} with {cv2.getNumThreads()} threads. "
            f"Median of {args.repeats} batches (ours, after {args.warmup} untimed) and "
            f"{max(3, args.repeats // 4)} (baseline) of {args.size}x{args.size} crops, x4; kernels and every "
            "random draw inside the timed call; each batch draws new resize factors, so new tensor shapes, "
            "as in training. Ours: `RealESRGANDegradation` on the whole batch on the device; baseline: the "
            "same steps per image with cv2.filter2D, cv2.resize, numpy noise and cv2.imencode/imdecode JPEG, "
            "on the CPU. Ratio = our images/s over the baseline's "
            "(>= 1.0: ours at least as fast).",
            "",
            "| device (ours) | batch | ours (images/s) | cv2/numpy per image (images/s) | ratio |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    print(markdown)
    if not args.no_write:
        write_section(args.section, markdown)


if __name__ == "__main__":
    main()
