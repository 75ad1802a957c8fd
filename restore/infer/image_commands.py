"""``restore upscale|inpaint|deblur INPUT OUTPUT`` and ``restore demo``.

A file or a folder in, a file or a folder out. Reading and writing run in background threads while
the model works; a file that cannot be read or processed is reported and skipped, and the command
exits with 1 at the end, listing the failures. Outputs are written under a temporary name and
renamed, so an interrupted run leaves no half-written file, and ``--skip-existing`` resumes it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_image_commands", "run_demo", "run_image_command"]

FORMATS = ("same", "png", "jpg", "webp", "tif", "bmp")
TASKS = {"upscale": "sr", "deblur": "deblur", "inpaint": "inpaint"}
SAMPLING_COMMANDS = ("upscale", "inpaint")  # a diffusion model may serve these (restore.api)
SCHEDULERS = ("ddim", "dpm", "ddpm")  # restore.diffusion.SCHEDULERS (not imported at CLI start-up)
PNG_COMPRESSION = 1  # restore.io.image.DEFAULT_PNG_COMPRESSION (not imported at CLI start-up)


def add_image_commands(sub: argparse._SubParsersAction) -> None:
    """Add the upscale, deblur, inpaint and demo sub-commands to the ``restore`` parser."""
    helps = {
        "upscale": "super-resolve an image or a folder of images",
        "deblur": "deblur an image or a folder of images",
        "inpaint": "fill masked holes in an image or a folder of images",
    }
    for name, text in helps.items():
        p = sub.add_parser(
            name, help=text, description=f"{text[0].upper()}{text[1:]}. " + __doc__.split("\n\n")[1]
        )
        p.add_argument("input", help="an image file or a folder")
        p.add_argument("output", help="the output file, or a folder (created; sub-folders mirrored)")
        if name == "upscale":
            p.add_argument("--scale", type=int, default=4, help="upscaling factor (default: %(default)s)")
        if name == "inpaint":
            p.add_argument(
                "--mask",
                required=True,
                help="a mask image (applied to every input) or a folder of masks with the inputs' relative "
                "names (any image suffix); white/non-zero = fill",
            )
        p.add_argument(
            "--model", help="bundled name, .safetensors/.pth file, or URL#sha256=... (default: bundled)"
        )
        p.add_argument("--tile", type=int, help="tile side in input pixels (default: from free memory)")
        if name in SAMPLING_COMMANDS:
            p.add_argument(
                "--steps", type=int, help="diffusion models only: sampler steps (default: 20)"
            )
            p.add_argument(
                "--seed", type=int, help="diffusion models only: seed of the starting noise (default: 0)"
            )
            p.add_argument(
                "--scheduler",
                choices=SCHEDULERS,
                help="diffusion models only: the sampler (default: ddim; RePaint models take none)",
            )
        p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
        p.add_argument(
            "--precision",
            choices=("fp32", "bf16", "fp16"),
            help="(default: bf16 on GPU; on CPU bf16 for conv SR networks where it has AMX or "
            "AVX512-BF16, else fp32)",
        )
        p.add_argument(
            "--compile",
            action="store_true",
            help="run the model through torch.compile: seconds to compile, then faster for some "
            "models (the bundled compact ones); worth it for folders of many images",
        )
        p.add_argument("-r", "--recursive", action="store_true", help="process sub-folders too")
        p.add_argument("--include", action="append", default=[], metavar="GLOB", help="only matching files")
        p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip matching files")
        p.add_argument(
            "--skip-existing", action="store_true", help="skip inputs whose output exists (resume)"
        )
        p.add_argument(
            "--format", choices=FORMATS, default="same", help="output format (default: the input's)"
        )
        p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default: %(default)s)")
        p.add_argument(
            "--png-compression",
            type=int,
            choices=range(10),
            default=PNG_COMPRESSION,
            metavar="0-9",
            help="PNG zlib level: 1 is fast (OpenCV's default), 9 smallest (default: %(default)s)",
        )
        p.add_argument(
            "--max-pixels",
            type=float,
            default=None,
            help="refuse inputs larger than this many megapixels (default: 179)",
        )
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.set_defaults(func=run_image_command, command_name=name)
    p = sub.add_parser("demo", help="run the bundled default model on the bundled sample images")
    p.add_argument(
        "output", nargs="?", default="restore-demo", help="folder for the results (default: %(default)s)"
    )
    p.add_argument("--device", help="cpu, cuda... (default: cuda when available)")
    p.set_defaults(func=run_demo)


def _output_suffix(fmt: str) -> str | None:
    return None if fmt == "same" else f".{fmt}"


def _mask_lookup(mask: str):
    """A function ``job -> mask path`` for ``--mask`` (one file, or a folder mirroring the inputs)."""
    from restore.io import IMAGE_SUFFIXES

    mask_path = Path(mask)
    if mask_path.is_file():
        return lambda job: mask_path
    if not mask_path.is_dir():
        raise FileNotFoundError(f"mask not found: '{mask_path}'")

    def lookup(job) -> Path:
        relative = Path(job.relative)
        for suffix in (relative.suffix, *IMAGE_SUFFIXES):
            candidate = mask_path / relative.with_suffix(suffix)
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"no mask for '{job.source}' in '{mask_path}' (looked for {relative.stem}.*)")

    return lookup


def run_image_command(args: argparse.Namespace) -> int:
    """Run upscale/deblur/inpaint over a file or folder; returns the exit status."""
    from restore import api
    from restore.infer.batch import MAX_PIXELS, allow_pillow_pixels, check_image_pixels, plan_jobs, run_jobs
    from restore.io import IMAGE_SUFFIXES
    from restore.io.convert import to_model_input

    name = args.command_name
    task = TASKS[name]
    max_pixels = int(args.max_pixels * 1e6) if args.max_pixels is not None else MAX_PIXELS
    allow_pillow_pixels(max_pixels)
    try:
        jobs, skipped = plan_jobs(
            args.input,
            args.output,
            suffixes=IMAGE_SUFFIXES,
            recursive=args.recursive,
            include=args.include,
            exclude=args.exclude,
            output_suffix=_output_suffix(args.format),
            skip_existing=args.skip_existing,
        )
        predictor = api.get_predictor(
            args.model,
            task=task,
            scale=getattr(args, "scale", None),
            tile=args.tile,
            device=args.device,
            precision=args.precision,
            compile=args.compile,
            steps=getattr(args, "steps", None),
            seed=getattr(args, "seed", None),
            scheduler=getattr(args, "scheduler", None),
        )
        mask_for = _mask_lookup(args.mask) if name == "inpaint" else None
    except (OSError, ValueError, KeyError) as error:
        print(f"restore {name}: {error}", file=sys.stderr)
        return 2
    if not jobs and not skipped:
        print(f"restore {name}: no images found in '{args.input}'", file=sys.stderr)
        return 2

    def read(job) -> dict[str, Any]:
        check_image_pixels(job.source, max_pixels)
        item = {"source": to_model_input(job.source)}
        if mask_for is not None:
            mask_file = mask_for(job)
            check_image_pixels(mask_file, max_pixels)
            item["mask"] = api.mask_tensor(mask_file, item["source"])
        return item

    def process(item: dict[str, Any]):
        source = item["source"]
        alpha_mode = api.DEFAULT_ALPHA_MODE[task]
        return (source, *api.restore_source(predictor, source, mask=item.get("mask"), alpha_mode=alpha_mode))

    def write(job, result) -> None:
        from restore.io.convert import from_model_output, save_like

        source, out, alpha = result
        image = from_model_output(out, source, alpha=alpha)  # clamps to [0, 1] itself
        if source.bit_depth == 16 and job.target.suffix.lower() != ".png":
            image = (image.astype("float64") / 257.0).round().astype("uint8")  # 16-bit only fits PNG
        save_like(image, job.target, source, quality=args.quality, png_compression=args.png_compression)

    report = run_jobs(
        jobs,
        read=read,
        process=process,
        write=write,
        progress=not args.no_progress,
        description=name,
        skipped=skipped,
    )
    print(report.summary(), file=sys.stderr if report.failed else sys.stdout)
    return report.exit_code


def run_demo(args: argparse.Namespace) -> int:
    """Upscale the bundled sample images x4 with the bundled model; write before/after comparisons.

    Each sample is reduced 4x with MATLAB bicubic (the standard SR protocol), then restored by
    bicubic interpolation and by the model. ``<name>_compare.png`` shows input (nearest), bicubic,
    model and original side by side; the PSNR on the Y channel of both is printed.
    """
    import torch
    import torch.nn.functional as F

    from restore import api, metrics
    from restore.data import sample_images_dir
    from restore.degrade import imresize
    from restore.io import list_images, read_image, write_image

    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    scale = 4
    try:
        predictor = api.get_predictor(None, task="sr", scale=scale, device=args.device)
    except (OSError, ValueError) as error:
        print(f"restore demo: {error}", file=sys.stderr)
        return 2
    print(f"model: {predictor.spec.name} x{scale} on {predictor.device} ({predictor.precision})")
    rows = []
    for path in list_images(sample_images_dir()):
        clean = read_image(path)[None]
        h, w = (s // scale * scale for s in clean.shape[-2:])
        clean = clean[..., :h, :w]
        small = imresize(clean, scale=1 / scale).clamp(0, 1)
        bicubic = imresize(small, scale=scale).clamp(0, 1)
        restored = predictor(small).clamp(0, 1)
        nearest = F.interpolate(small, scale_factor=scale, mode="nearest")
        compare = torch.cat([nearest, bicubic, restored, clean], dim=-1)[0]
        write_image(out_dir / f"{path.stem}_input.png", small[0])
        write_image(out_dir / f"{path.stem}_x{scale}.png", restored[0])
        write_image(out_dir / f"{path.stem}_compare.png", compare)
        psnr_bicubic = float(metrics.psnr(bicubic, clean, crop_border=scale, y_channel=True)[0])
        psnr_model = float(metrics.psnr(restored, clean, crop_border=scale, y_channel=True)[0])
        rows.append((path.stem, psnr_bicubic, psnr_model))
        print(f"  {path.stem:12s} bicubic {psnr_bicubic:6.2f} dB  model {psnr_model:6.2f} dB")
    mean_b = sum(r[1] for r in rows) / len(rows)
    mean_m = sum(r[2] for r in rows) / len(rows)
    print(f"  {'mean':12s} bicubic {mean_b:6.2f} dB  model {mean_m:6.2f} dB  (PSNR-Y, x{scale})")
    print(
        f"wrote {3 * len(rows)} images to {out_dir}/ (<name>_compare.png: input | bicubic | model | original)"
    )
    return 0
