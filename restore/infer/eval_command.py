"""``restore eval DATASET_DIR [DATASET_DIR ...] --scale 4 [--model NAME|PATH|bicubic]``.

Scores a super-resolution model (or bicubic) on benchmark folders in the Set5 layout (``HR/`` and
``LR_bicubic/X<scale>/``) by the standard protocol of :mod:`restore.evaluate`: PSNR and SSIM on the
Y channel of 8-bit outputs, ``scale`` pixels cropped at each border, grayscale files on their gray
values; LPIPS too when its weights are on this machine. Prints per-image rows and each dataset's
mean; exits 2, before running anything, when a folder is not in the layout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_eval_command", "run_eval_command"]


def add_eval_command(sub: argparse._SubParsersAction) -> None:
    """Add the ``eval`` sub-command to the ``restore`` parser."""
    text = "score super-resolution on benchmark folders (PSNR-Y / SSIM-Y, optionally LPIPS)"
    p = sub.add_parser(
        "eval", help=text, description=f"{text[0].upper()}{text[1:]}. " + __doc__.split("\n\n")[1]
    )
    p.add_argument(
        "datasets", nargs="+", metavar="DATASET_DIR", help="folders with HR/ and LR_bicubic/X<scale>/"
    )
    p.add_argument("--scale", type=int, default=4, help="upscaling factor (default: %(default)s)")
    p.add_argument(
        "--model",
        help="'bicubic', a bundled name, a .safetensors/.pth file or URL#sha256=... "
        "(default: the bundled model for the scale)",
    )
    lpips = p.add_mutually_exclusive_group()
    lpips.add_argument(
        "--lpips",
        dest="lpips",
        action="store_const",
        const=True,
        default=None,
        help="require LPIPS (exit 2 when its weights are not on this machine; default: when available)",
    )
    lpips.add_argument("--no-lpips", dest="lpips", action="store_const", const=False, help="skip LPIPS")
    p.add_argument("--json", metavar="FILE", help="also write all scores to this JSON file")
    p.add_argument("--markdown", action="store_true", help="print markdown tables")
    p.add_argument("--max-images", type=int, metavar="N", help="only the first N images of each folder")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.set_defaults(func=run_eval_command)


def run_eval_command(args: argparse.Namespace) -> int:
    """Evaluate every dataset folder; returns the exit status (2: bad folder, model or option)."""
    from losses.perceptual import WeightsNotFoundError
    from restore import evaluate

    if args.max_images is not None and args.max_images < 1:
        print(f"restore eval: --max-images must be at least 1, got {args.max_images}", file=sys.stderr)
        return 2
    try:
        for folder in args.datasets:  # every folder checked before the (slow) model runs
            evaluate.find_sr_pairs(folder, args.scale)
        upscaler, label = evaluate.resolve_upscaler(args.model, args.scale, device=args.device)
        results = []
        for folder in args.datasets:
            result = evaluate.evaluate_sr(
                folder,
                args.scale,
                _Labelled(upscaler, label),
                lpips=args.lpips,
                max_images=args.max_images,
            )
            results.append(result)
            print(result.to_markdown() if args.markdown else result.to_text(), end="\n\n", flush=True)
    except (OSError, ValueError, KeyError, WeightsNotFoundError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"restore eval: {message}", file=sys.stderr)
        return 2
    if len(results) > 1:
        print(_summary(results, args.markdown))
    if args.json:
        from restore.infer.batch import atomic_write_path

        target = Path(args.json)
        target.parent.mkdir(parents=True, exist_ok=True)
        payload = {"scale": args.scale, "method": label, "results": [r.to_dict() for r in results]}
        with atomic_write_path(target) as temp:
            temp.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


class _Labelled:
    """An already resolved upscaler that keeps its label (so each folder does not reload the model)."""

    def __init__(self, fn, label: str) -> None:
        self.fn, self.__name__ = fn, label

    def __call__(self, x):
        return self.fn(x)


def _summary(results: list, markdown: bool) -> str:
    """One line per dataset with its means."""
    names = [m for m in results[0].metric_names if all(m in r.metric_names for r in results)]
    labels = {"psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y", "lpips": "LPIPS"}
    formats = {"psnr_y": "{:.2f}", "ssim_y": "{:.4f}", "lpips": "{:.4f}"}
    if markdown:
        lines = ["| dataset | images | " + " | ".join(labels[m] for m in names) + " |"]
        lines.append("|---|---:|" + "---:|" * len(names))
        for r in results:
            cells = [formats[m].format(r.means[m]) for m in names]
            lines.append(f"| {r.dataset} x{r.scale} | {len(r.rows)} | " + " | ".join(cells) + " |")
        return "\n".join(lines)
    width = max(len(f"{r.dataset} x{r.scale}") for r in results)
    lines = [f"{'mean of':{width}s}  images" + "".join(f"  {labels[m]:>8s}" for m in names)]
    for r in results:
        cells = "".join(f"  {formats[m].format(r.means[m]):>8s}" for m in names)
        lines.append(f"{r.dataset + ' x' + str(r.scale):{width}s}  {len(r.rows):6d}" + cells)
    return "\n".join(lines)
