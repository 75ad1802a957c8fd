"""CPU precision policy: the Predictor in float32 against bf16 autocast, per model, and the quality
of the bundled SR models in both.

    python benchmarks/cpu_precision.py [--data ../shared/data] [--repeats 5] [--no-write]

(a) For each model (random weights, registered default configuration), one Predictor call on one
    tile-sized input (``--side`` per model; no tiling, so only the precision differs): median wall
    time in float32 (channels_last, the default without native bf16) and in bf16 autocast
    (channels_last, the default where the CPU has AMX or AVX512-BF16), timed alternately in the
    same run; the ratio and the max / mean absolute difference of the outputs.
(b) PSNR-Y / SSIM-Y of the bundled ``sr-x4`` and ``sr-x2`` on Set5, Set14 and BSD100 (the standard
    protocol of :func:`restore.evaluate.evaluate_sr`) in both precisions, when ``--data`` has them.

Writes the section ``precision-cpu-KIND`` of docs/benchmarks.md, KIND the CPU's native bf16
instructions (``amx``, ``avx512-bf16`` or ``no-bf16``: one section per kind of machine measured).
On a CPU without them the bf16 column shows why float32 stays the default there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from statistics import median

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import restore.models as models  # noqa: E402
from benchmarks.report import cpu_kind, machine, median_ms, write_section  # noqa: E402
from restore.infer import Predictor  # noqa: E402
from restore.infer.predictor import cpu_bf16_instructions, default_precision  # noqa: E402

# (model, input side): SR networks at the CPU cache tile (smaller for the slow ones), the
# whole-image networks at 512.
CASES = (
    ("compact_tiny", 320),
    ("edsr_tiny", 320),
    ("rrdbnet_small", 160),
    ("srresnet", 160),
    ("swinir_tiny", 128),
    ("nafnet_small", 512),
    ("lama_pushpull_small", 512),
)
SETS = ("Set5", "Set14", "BSD100")
PRECISIONS = ("fp32", "bf16")


def speed_rows(repeats: int) -> list[dict]:
    rows = []
    for name, side in CASES:
        torch.manual_seed(0)
        model = models.build(name)
        x = models.example_inputs(model, 1, side)
        predictors = {p: Predictor(model, device="cpu", precision=p, tile=side) for p in PRECISIONS}
        outputs = {p: predictor(*x) for p, predictor in predictors.items()}
        times: dict[str, list[float]] = {p: [] for p in PRECISIONS}
        for _ in range(repeats):  # alternate, so that the machine's drift hits both alike
            for p, predictor in predictors.items():
                times[p].append(median_ms(lambda pr=predictor, args=x: pr(*args), "cpu", 1, warmup=0))
        difference = (outputs["fp32"] - outputs["bf16"]).abs()
        row = {
            "name": name,
            "side": side,
            "task": model.spec.task,
            "fp32": median(times["fp32"]),
            "bf16": median(times["bf16"]),
            "ratio": median([a / b for a, b in zip(times["fp32"], times["bf16"], strict=True)]),
            "max": difference.max().item(),
            "mean": difference.mean().item(),
            "default": {torch.float32: "fp32", torch.bfloat16: "bf16"}[
                default_precision(model.spec, torch.device("cpu"))
            ],
        }
        print(row, flush=True)
        rows.append(row)
    return rows


def quality_rows(data: Path) -> list[tuple[str, str, list[tuple[float, float]]]]:
    from restore import api
    from restore.evaluate import evaluate_sr

    rows = []
    for scale, name in ((4, "sr-x4"), (2, "sr-x2")):
        model = api.get_predictor(name, task="sr", scale=scale, device="cpu").model
        for precision in PRECISIONS:
            predictor = Predictor(model, device="cpu", precision=precision)
            scores = []
            for dataset in SETS:
                result = evaluate_sr(data / "images" / dataset, scale, predictor, lpips=False)
                psnr = sum(r.psnr_y for r in result.rows) / len(result.rows)
                scores.append((psnr, sum(r.ssim_y for r in result.rows) / len(result.rows)))
            print(name, precision, scores, flush=True)
            rows.append((name, precision, scores))
    return rows


def render(speed: list[dict], quality: list, instructions: str | None) -> str:
    lines = [
        f"## CPU precision ({cpu_kind()}): float32 against bf16 autocast (`benchmarks/cpu_precision.py`)",
        "",
        f"Machine: {machine()}; native bf16 instructions: {instructions or 'none'}. One Predictor "
        "call on one input of the side shown (no tiling), channels_last, random weights, median of "
        "alternating runs. Ratio = float32 time / bf16 time (> 1: bf16 faster). Default = what "
        "`precision=None` picks on this machine.",
        "",
        "| model | task | input side | float32 ms | bf16 ms | ratio | max / mean abs difference | default |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in speed:
        lines.append(
            f"| `{r['name']}` | {r['task']} | {r['side']} | {r['fp32']:.1f} | {r['bf16']:.1f} | "
            f"**{r['ratio']:.2f}x** | {r['max']:.1e} / {r['mean']:.1e} | {r['default']} |"
        )
    if quality:
        lines += [
            "",
            "Bundled SR models, PSNR-Y (dB) / SSIM-Y by the standard protocol (8-bit outputs):",
            "",
            "| model | precision | " + " | ".join(SETS) + " |",
            "|---|---|" + "---|" * len(SETS),
        ]
        for name, precision, scores in quality:
            cells = " | ".join(f"{p:.4f} / {s:.4f}" for p, s in scores)
            lines.append(f"| {name} | {precision} | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; do not touch docs/benchmarks.md")
    args = parser.parse_args()
    speed = speed_rows(args.repeats)
    have_data = all((args.data / "images" / s).is_dir() for s in SETS)
    quality = quality_rows(args.data) if have_data else []
    section = render(speed, quality, cpu_bf16_instructions())
    print(section)
    if not args.no_write:
        write_section(f"precision-cpu-{cpu_kind()}", section)


if __name__ == "__main__":
    main()
