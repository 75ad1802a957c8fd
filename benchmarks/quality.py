"""Super-resolution quality of the bundled models beside bicubic and published methods (PSNR-Y).

    python benchmarks/quality.py [--data ../shared/data] [--threads 1] [--no-write]

Evaluates MATLAB bicubic and the bundled ``sr-x4`` / ``sr-x2`` on Set5, Set14 and BSD100 at x4 and
x2 with :func:`restore.evaluate.evaluate_sr` (the standard protocol: PSNR / SSIM on the Y channel
of 8-bit outputs, border = scale, grayscale files on their gray values; the distributed
``LR_bicubic`` files as inputs). Published rows (SRCNN, FSRCNN, EDSR, SwinIR-light) are the
papers' numbers; their parameters and GFLOPs per output megapixel are counted here with
``torch.utils.flop_counter`` on the meta device (one multiply-add = 2 FLOPs; SRCNN and FSRCNN
work on the Y channel, SRCNN on the bicubic-upscaled image), the same counter as ours.

Writes ``benchmarks/results/quality.json``, the section ``quality`` of docs/benchmarks.md and of
docs/quality.md, and before/after crops of the bundled sample images (reduced x4 by MATLAB
bicubic, then bicubic | sr-x4 | original) into docs/images/ with the section ``quality-crops``
of docs/quality.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import machine, write_section  # noqa: E402
from restore import hub  # noqa: E402
from restore.evaluate import evaluate_sr  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "quality.json"
QUALITY_DOC = ROOT / "docs" / "quality.md"
IMAGES = ROOT / "docs" / "images"
SETS = ("Set5", "Set14", "BSD100")
SCALES = (2, 4)

# PSNR-Y (dB) on Set5 / Set14 / BSD100 as published (docs/quality.md gives the sources).
PUBLISHED: dict[str, dict[int, tuple[float, float, float]]] = {
    "bicubic": {2: (33.66, 30.24, 29.56), 4: (28.42, 26.00, 25.96)},
    "SRCNN": {2: (36.66, 32.45, 31.36), 4: (30.48, 27.50, 26.90)},
    "FSRCNN": {2: (37.00, 32.63, 31.53), 4: (30.72, 27.61, 26.98)},
    "EDSR": {2: (38.11, 33.92, 32.32), 4: (32.46, 28.80, 27.71)},
    "SwinIR-light": {2: (38.14, 33.86, 32.31), 4: (32.44, 28.77, 27.69)},
}
NOTES = {
    "bicubic": "MATLAB imresize",
    "SRCNN": "9-5-5, Y channel, on the bicubic-upscaled image",
    "FSRCNN": "d=56, s=12, m=4, Y channel",
    "EDSR": "32 blocks, 256 features",
    "SwinIR-light": "60 dims, 4x6 blocks, window 8",
}

# Before/after crops: (sample image, top, left) of a 96x96 region in the original, and its licence
CROPS = (("astronaut", 8, 68), ("chelsea", 28, 72), ("coffee", 48, 96))
LICENCES = {"astronaut": "public domain, NASA", "chelsea": "CC0", "coffee": "CC0"}
CROP = 96


# ---------------------------------------------------------------------------------------------
# Cost of the published architectures (counted, not taken from the papers)
# ---------------------------------------------------------------------------------------------


def srcnn() -> nn.Module:
    """SRCNN 9-5-5 (64 and 32 filters) on the Y channel of the bicubic-upscaled image."""
    return nn.Sequential(
        nn.Conv2d(1, 64, 9, padding=4), nn.ReLU(), nn.Conv2d(64, 32, 5, padding=2), nn.ReLU(),
        nn.Conv2d(32, 1, 5, padding=2),
    )


def fsrcnn(scale: int) -> nn.Module:
    """FSRCNN(d=56, s=12, m=4) on the Y channel: the network of the paper's tables."""
    layers: list[nn.Module] = [nn.Conv2d(1, 56, 5, padding=2), nn.PReLU(56)]
    layers += [nn.Conv2d(56, 12, 1), nn.PReLU(12)]
    for _ in range(4):
        layers += [nn.Conv2d(12, 12, 3, padding=1), nn.PReLU(12)]
    layers += [nn.Conv2d(12, 56, 1), nn.PReLU(56)]
    layers.append(nn.ConvTranspose2d(56, 1, 9, stride=scale, padding=4, output_padding=scale - 1))
    return nn.Sequential(*layers)


def cost(model: nn.Module, channels: int, side: int, device: str = "meta") -> dict[str, float]:
    """Parameters and GFLOPs per output megapixel (FLOPs = 2 x multiply-adds), input ``side`` px."""
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    model = model.to(device).eval()
    x = torch.zeros(1, channels, side, side, device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = model(x)
    flops_per_pixel = counter.get_total_flops() / (out.shape[-2] * out.shape[-1])
    return {"params": params, "gflops_per_mp": flops_per_pixel / 1e3}


def published_costs(scale: int) -> dict[str, dict[str, float]]:
    import restore.models as models

    return {
        "SRCNN": cost(srcnn(), 1, 64 * scale),
        "FSRCNN": cost(fsrcnn(scale), 1, 64),
        "EDSR": cost(models.build("edsr_full", scale=scale), 3, 64),
        "SwinIR-light": cost(models.build("swinir_light", scale=scale), 3, 64),
    }


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


def measure(data: Path) -> dict:
    """Bicubic and the bundled model of each scale on each set: means, per-image rows, timings."""
    runs = []
    for scale in SCALES:
        for method in ("bicubic", f"sr-x{scale}"):
            for name in SETS:
                result = evaluate_sr(data / "images" / name, scale, method, device="cpu")
                row = result.to_dict()
                row["upscale_seconds"] = sum(r.seconds for r in result.rows)
                runs.append(row)
                print(
                    f"x{scale} {method:8s} {name:7s} PSNR-Y {result.means['psnr_y']:.3f}  "
                    f"SSIM-Y {result.means['ssim_y']:.4f}  {result.seconds:.1f} s",
                    flush=True,
                )
    return {"runs": runs}


def bundled_costs() -> dict[str, dict[str, float]]:
    out = {}
    for scale in SCALES:
        name = f"sr-x{scale}"
        net = hub.load_model(name, task="sr", scale=scale)
        out[name] = {**cost(net, 3, 64, device="cpu"), "architecture": net.spec.name}
    return out


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def _fmt_params(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def _fmt_gflops(g: float) -> str:
    return f"{g:,.0f}" if g >= 100 else f"{g:.1f}"


def _mean(stored: dict, scale: int, method: str, name: str, metric: str = "psnr_y") -> float:
    for run in stored["runs"]:
        if run["scale"] == scale and run["method"].split(" ")[0] == method and run["dataset"] == name:
            return run["mean"][metric]
    raise KeyError((scale, method, name))


def tables(stored: dict) -> str:
    lines = []
    for scale in SCALES:
        ours = f"sr-x{scale}"
        ours_cost = stored["costs"]["bundled"][ours]
        lines += [
            f"**x{scale}**: PSNR-Y (dB); GFLOPs per output megapixel (one multiply-add = 2 FLOPs).",
            "",
            "| method | params | GFLOPs / MP | Set5 | Set14 | BSD100 | notes |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for method, values in PUBLISHED.items():
            c = stored["costs"]["published"][str(scale)].get(method)
            size = (_fmt_params(c["params"]), _fmt_gflops(c["gflops_per_mp"])) if c else ("-", "-")
            cells = " | ".join(f"{v:.2f}" for v in values[scale])
            lines.append(f"| {method} (published) | {size[0]} | {size[1]} | {cells} | {NOTES[method]} |")
        measured = " | ".join(f"{_mean(stored, scale, 'bicubic', s):.2f}" for s in SETS)
        lines.append(f"| bicubic (measured here) | - | - | {measured} | `restore eval --model bicubic` |")
        measured = " | ".join(f"**{_mean(stored, scale, ours, s):.2f}**" for s in SETS)
        lines.append(
            f"| **{ours}** (bundled) | {_fmt_params(ours_cost['params'])} | "
            f"{_fmt_gflops(ours_cost['gflops_per_mp'])} | {measured} | `{ours_cost['architecture']}`, "
            f"trained on CPU (restore/weights/sr_x{scale}.md) |"
        )
        lines.append("")
    lines += [
        "Measured here, PSNR-Y / SSIM-Y and the CPU time of the upscaler alone (all images of the set, "
        f"{stored['threads']} CPU thread(s), float32):",
        "",
        "| method | scale | Set5 | Set14 | BSD100 | CPU s (all 3 sets) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for scale in SCALES:
        for method in ("bicubic", f"sr-x{scale}"):
            cells = " | ".join(
                f"{_mean(stored, scale, method, s):.2f} / {_mean(stored, scale, method, s, 'ssim_y'):.4f}"
                for s in SETS
            )
            seconds = sum(
                r["upscale_seconds"] for r in stored["runs"]
                if r["scale"] == scale and r["method"].split(" ")[0] == method
            )
            lines.append(f"| {method} | x{scale} | {cells} | {seconds:.1f} |")
    lines += ["", f"Machine: {stored['machine']}. `python benchmarks/quality.py` regenerates this section."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Before / after crops of the bundled sample images (licensed for redistribution)
# ---------------------------------------------------------------------------------------------


def crops(out_dir: Path) -> str:
    """Write ``quality_<name>_x4.png`` (bicubic | sr-x4 | original, 96x96 each, shown 2x) and
    return the markdown that shows them with the whole-image PSNR-Y of both methods."""
    import torch.nn.functional as F

    from restore import api
    from restore.data import sample_images_dir
    from restore.degrade import imresize
    from restore.io import read_image, write_image
    from restore.metrics import sr_metrics

    scale = 4
    predictor = api.get_predictor("sr-x4", task="sr", scale=scale, device="cpu")
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "Each sample image reduced x4 with MATLAB bicubic, then enlarged by bicubic (left) and by "
        "`sr-x4` (middle); the original on the right. 96x96 crops shown at 2x; PSNR-Y of the whole "
        "image (border 4).",
        "",
    ]
    for name, top, left in CROPS:
        clean = read_image(sample_images_dir() / f"{name}.png")[None]
        h, w = (s // scale * scale for s in clean.shape[-2:])
        clean = clean[..., :h, :w]
        small = imresize(clean, scale=1 / scale, quantize=True)
        bicubic = imresize(small, scale=scale, quantize=True)
        with torch.inference_mode():
            restored = predictor(small).clamp(0, 1)
        scores = [float(sr_metrics(x, clean, scale)["psnr_y"][0]) for x in (bicubic, restored)]
        region = (..., slice(top, top + CROP), slice(left, left + CROP))
        gap = torch.ones(1, 3, CROP, 2)
        panel = torch.cat([bicubic[region], gap, restored[region], gap, clean[region]], dim=-1)
        panel = F.interpolate(panel, scale_factor=2, mode="nearest")
        path = out_dir / f"quality_{name}_x4.png"
        write_image(path, panel[0])
        size_kb = path.stat().st_size / 1024
        print(f"{path.relative_to(ROOT)}: {size_kb:.0f} KB; PSNR-Y {scores[0]:.2f} -> {scores[1]:.2f}")
        lines += [
            f"![{name}: bicubic, sr-x4, original](images/{path.name})",
            "",
            f"*{name}* ({LICENCES[name]}; restore/data/sample_images/LICENSE.md): bicubic "
            f"{scores[0]:.2f} dB, sr-x4 {scores[1]:.2f} dB.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not all((args.data / "images" / name / "HR").is_dir() for name in SETS):
        sys.exit(f"needs {args.data}/images/{{{','.join(SETS)}}} (HR/ and LR_bicubic/X<s>/)")
    start = time.perf_counter()
    stored = {
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "published": {k: {str(s): v for s, v in d.items()} for k, d in PUBLISHED.items()},
        "costs": {
            "published": {str(s): published_costs(s) for s in SCALES},
            "bundled": bundled_costs(),
        },
        **measure(args.data),
    }
    stored["seconds"] = time.perf_counter() - start
    table = tables(stored)
    print(table)
    if args.no_write:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(stored, indent=1) + "\n")
    write_section("quality", "## Super-resolution quality: bundled models and published methods\n\n" + table)
    write_section("quality", table, path=QUALITY_DOC)
    write_section("quality-crops", crops(IMAGES), path=QUALITY_DOC)
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
