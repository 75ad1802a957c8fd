"""Forward throughput and peak memory of every registered restoration model, per precision/layout.

For each model (registered default configuration, inference, no grad) and device:
- ``fp32``: float32, contiguous (PyTorch's default layout) — the baseline;
- ``fp32 CL``: float32, channels_last model and input;
- ``bf16 CL``: channels_last under ``torch.autocast(dtype=bfloat16)``;
- ``fp16 CL`` (CUDA only): channels_last under fp16 autocast.
Throughput is output megapixels per second; the ratio column is each mode over the fp32 baseline
of the same model in the same run; "rel. error" is ||out - out_fp32|| / ||out_fp32|| (random weights),
a check of the spec's supports_fp16 / supports_bf16 flags. Peak memory of building the model and
one forward, weights included: CUDA ``max_memory_allocated``; CPU, the peak resident-set growth
(Linux VmHWM, reset through /proc/self/clear_refs) in a fresh spawned child (a forked child of a
process that has used OpenMP can hang).

    python benchmarks/models.py [--device cpu cuda] [--size 64] [--batch 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from multiprocessing import get_context
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import restore.models as models  # noqa: E402
from benchmarks.report import machine, median_ms, status_mb, write_section  # noqa: E402

TASKS = ("sr", "deblur", "inpaint")
MODES = {"fp32": (False, None), "fp32 CL": (True, None), "bf16 CL": (True, torch.bfloat16),
         "fp16 CL": (True, torch.float16)}


def prepare(name: str, mode: str, batch: int, size: int, device: str):
    channels_last, dtype = MODES[mode]
    model = models.build(name).eval().to(device)
    inputs = models.example_inputs(model, batch, size, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        inputs = tuple(x.contiguous(memory_format=torch.channels_last) for x in inputs)
    autocast = torch.autocast(device, dtype=dtype) if dtype is not None else nullcontext()

    def forward() -> torch.Tensor:
        with torch.inference_mode(), autocast:
            return model(*inputs)

    return model, inputs, forward


def _cpu_peak_child(name: str, mode: str, batch: int, size: int, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    before = status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak RSS (VmHWM) to the current RSS
        f.write("5")
    _, _, forward = prepare(name, mode, batch, size, "cpu")
    forward()
    queue.put(status_mb("VmHWM") - before)


def peak_memory_mb(name: str, mode: str, batch: int, size: int, device: str) -> float:
    """Peak memory of building the model and running one forward (weights included), in MB."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        _, _, forward = prepare(name, mode, batch, size, device)
        forward()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    ctx = get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_cpu_peak_child, args=(name, mode, batch, size, torch.get_num_threads(), queue))
    proc.start()
    proc.join()
    return max(queue.get(), 0.0) if proc.exitcode == 0 else float("nan")


def run(devices: list[str], size: int, batch: int, repeats: int, names: list[str]) -> str:
    lines = []
    for device in devices:
        modes = [m for m in MODES if device == "cuda" or m != "fp16 CL"]
        lines += [
            f"### {device}: input {batch}x3x{size}x{size}",
            "",
            "| model | params | " + " | ".join(f"{m} MP/s" for m in modes) + " | "
            + " | ".join(f"{m} / fp32" for m in modes[1:]) + " | peak MB (" + ", ".join(modes) + ") | "
            + "rel. error (" + ", ".join(modes[2:]) + ") |",
            "|---|---|" + "---|" * (2 * len(modes) - 1) + "---|---|",
        ]
        for name in names:
            throughput, peaks, errors = {}, {}, {}
            reference = None
            for mode in modes:
                torch.manual_seed(0)  # same random weights in every mode
                model, inputs, forward = prepare(name, mode, batch, size, device)
                out = forward()
                if reference is None:
                    reference = out.float()
                errors[mode] = float((out.float() - reference).norm() / reference.norm().clamp_min(1e-12))
                ms = median_ms(forward, device, repeats, warmup=1)
                throughput[mode] = out.shape[0] * out.shape[-1] * out.shape[-2] / 1e6 / (ms / 1000)
                peaks[mode] = peak_memory_mb(name, mode, batch, size, device)
                params = sum(p.numel() for p in model.parameters()) / 1e6
                del model, inputs, out
            base = throughput["fp32"]
            row = (
                f"| {name} | {params:.2f}M | " + " | ".join(f"{throughput[m]:.2f}" for m in modes) + " | "
                + " | ".join(f"{throughput[m] / base:.2f}" for m in modes[1:]) + " | "
                + ", ".join(f"{peaks[m]:.0f}" for m in modes) + " | "
                + ", ".join(f"{errors[m]:.1e}" for m in modes[2:]) + " |"
            )
            print(row, flush=True)
            lines.append(row)
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cuda = ["cuda"] if torch.cuda.is_available() else []
    parser.add_argument("--device", nargs="+", default=["cpu", *cuda])
    parser.add_argument("--size", type=int, default=None, help="input side (default 64 on CPU, 256 on CUDA)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", help="model names (default: every sr/deblur/inpaint model)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not touch docs/benchmarks.md")
    args = parser.parse_args()
    names = args.models or [n for t in TASKS for n in models.available(task=t)]
    for device in args.device:
        size = args.size or (256 if device == "cuda" else 64)
        table = run([device], size, args.batch, args.repeats, names)
        if not args.no_write:
            header = (
                f"## Models: forward throughput ({device})\n\nMachine: {machine()}. Median of {args.repeats} "
                "inference forwards after warm-up, registered default configurations with random weights. "
                "MP/s = output megapixels per second; ratios are over the fp32 contiguous baseline of the "
                "same model in the same run.\n\n"
            )
            write_section(f"models-{device}", header + table)


if __name__ == "__main__":
    main()
