"""Diffusion super-resolution: sampling time per megapixel and quality against the number of steps.

One run measures, for one SR3 model (default: the bundled ``diffusion-x4``) on one device:

(a) seconds per output megapixel of ``restore.upscale(lr, model=..., steps=S, seed=0)`` on a
    64x64 input (256x256 output, one tile) for S in ``--steps`` with DDIM and DPM-Solver++, beside the
    bundled regression model ``sr-x4`` (one forward pass) as the baseline of the same run;
(b) quality on Set5 x4 by the standard protocol (``restore.evaluate``: PSNR-Y, SSIM-Y) against S,
    plus a perceptual score: LPIPS when its weights are on this machine, else HaarPSI (weight-free,
    higher is better; ``losses`` entry ``haarpsi``) on the same 8-bit images. Bicubic and ``sr-x4``
    are the reference rows.

    python benchmarks/diffusion.py                       # writes the diffusion-cpu section
    python benchmarks/diffusion.py --steps 2 5 --max-images 1 --no-write     # quick
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import restore  # noqa: E402
from benchmarks.report import machine, write_section  # noqa: E402
from restore.evaluate import evaluate_sr, resolve_upscaler  # noqa: E402

SET5 = ROOT.parent / "shared" / "data" / "images" / "Set5"


def seconds_per_mp(upscale, repeats: int) -> float:
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    upscale(x)  # load, warm up, memory probe
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = upscale(x)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] / (out.shape[-1] * out.shape[-2] / 1e6)


def haarpsi_mean(upscale, max_images: int | None) -> float:
    """Mean HaarPSI (higher is better) of 8-bit outputs on Set5 x4 (border 4), RGB."""
    import losses
    from restore.evaluate import find_sr_pairs
    from restore.io import read_image

    metric = losses.create("haarpsi")
    scores = []
    for pair in find_sr_pairs(SET5, 4)[:max_images]:
        lr = read_image(pair.lr)[None]
        hr = read_image(pair.hr)[None][..., : lr.shape[-2] * 4, : lr.shape[-1] * 4]
        out = (upscale(lr).clamp(0, 1) * 255).round() / 255
        crop = (..., slice(4, -4), slice(4, -4))
        # the registry entry is a loss (1 - HaarPSI); report the index itself
        scores.append(1.0 - float(metric(out[crop], hr[crop])))
    return sum(scores) / len(scores)


def diffusion_upscaler(model: str, steps: int, scheduler: str, device: str, tile: int | None):
    def run(x: torch.Tensor) -> torch.Tensor:
        return restore.upscale(
            x,
            model=model,
            steps=steps,
            seed=0,
            scheduler=scheduler,
            device=device,
            tile=tile,
            alpha_mode="resize",
        )

    return run


def run(args: argparse.Namespace) -> str:
    from restore.metrics import lpips_available

    use_lpips = lpips_available()
    perceptual = "LPIPS (lower is better)" if use_lpips else "HaarPSI (higher is better)"
    baseline = lambda x: restore.upscale(x, model="sr-x4", device=args.device)  # noqa: E731
    rows = []
    base_spm = seconds_per_mp(baseline, args.repeats)
    references = [("bicubic", "bicubic", None), ("sr-x4 (regression, 1 pass)", baseline, base_spm)]
    for label, upscale, spm in references:
        result = evaluate_sr(SET5, 4, upscale, lpips=use_lpips, max_images=args.max_images)
        callable_upscale = resolve_upscaler(upscale, 4)[0]
        extra = result.means.get("lpips") if use_lpips else haarpsi_mean(callable_upscale, args.max_images)
        rows.append((label, "-", spm, result.means["psnr_y"], result.means["ssim_y"], extra))
        print(rows[-1], flush=True)
    for scheduler in args.schedulers:
        for steps in args.steps:
            upscale = diffusion_upscaler(args.model, steps, scheduler, args.device, args.tile)
            spm = seconds_per_mp(upscale, args.repeats)
            result = evaluate_sr(SET5, 4, upscale, lpips=use_lpips, max_images=args.max_images)
            extra = result.means.get("lpips") if use_lpips else haarpsi_mean(upscale, args.max_images)
            means = result.means
            rows.append((f"{args.model} {scheduler}", steps, spm, means["psnr_y"], means["ssim_y"], extra))
            print(rows[-1], flush=True)
    lines = [
        f"Machine: {machine()}. Model `{args.model}`, seed 0. Time: seconds per output megapixel of "
        f"`restore.upscale` on a 64x64 input (256x256 out), median of {args.repeats}; `sr-x4` (one forward "
        f"pass) is the baseline of the same run. Quality: Set5 x4 "
        f"({args.max_images or 5} images) by the standard protocol, and {perceptual}.",
        "",
        f"| method | steps | s / MP | x sr-x4 time | PSNR-Y | SSIM-Y | {perceptual.split(' ')[0]} |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, steps, spm, psnr, ssim, extra in rows:
        time_cell = "-" if spm is None else f"{spm:.1f}"
        ratio = "-" if spm is None else f"{spm / base_spm:.0f}x"
        lines.append(f"| {label} | {steps} | {time_cell} | {ratio} | {psnr:.2f} | {ssim:.4f} | {extra:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="diffusion-x4")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 50])
    parser.add_argument("--schedulers", nargs="+", default=["ddim", "dpm"])
    parser.add_argument("--tile", type=int, default=None)
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    table = run(args)
    print(table)
    if not args.no_write:
        title = "## Diffusion super-resolution (`benchmarks/diffusion.py`)\n\n"
        write_section(f"diffusion-{args.device}", title + table)


if __name__ == "__main__":
    main()
