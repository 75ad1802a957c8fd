"""One mixed-precision training step per registered model against float32: checks the spec's flags.

For each model (registered default configuration, random weights, train mode) and each autocast
dtype (bf16; fp16 with a GradScaler on CUDA), run forward + MSE-to-zero backward and compare with
the float32 step from the same weights: output relative error, gradient cosine, and whether
everything stayed finite. A model whose spec says ``supports_fp16=True`` must be finite in fp16.

    python benchmarks/models_precision.py [--device cuda] [--size 64]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import restore.models as models  # noqa: E402
from benchmarks.report import machine, write_section  # noqa: E402


def step(model, inputs, dtype, device, state):
    """Output and unscaled gradients; fp16 halves the loss scale after an overflow, as GradScaler does."""
    scale = 2.0**16 if dtype == torch.float16 else 1.0
    while True:
        model.load_state_dict(state)
        model.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(*inputs)
            out = out[0] if isinstance(out, tuple | list) else out
        (out.float().square().mean() * scale).backward()
        grads = torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])
        grads = grads / scale
        if torch.isfinite(grads).all() or scale <= 1.0 or not torch.isfinite(out).all():
            return out.detach().float(), grads, scale
        scale /= 2


def run(device: str, size: int, names: list[str]) -> str:
    dtypes = {"bf16": torch.bfloat16} | ({"fp16": torch.float16} if device == "cuda" else {})
    lines = [
        f"Machine: {machine()}. Inputs 2x3x{size}x{size} (inpainting with a centred square hole). "
        "Per dtype: output relative L2 error / gradient cosine against the float32 step from the same "
        "weights; `non-finite` marks NaN/Inf. Spec flags in brackets. fp16 starts at GradScaler's loss "
        "scale 2^16 and halves it after an overflow, as GradScaler does; a lower final scale is shown.",
        "",
        "| model | " + " | ".join(f"{k} (spec)" for k in dtypes) + " |",
        "|---|" + "---|" * len(dtypes),
    ]
    for name in names:
        torch.manual_seed(0)
        model = models.build(name).to(device).train()
        inputs = models.example_inputs(model, batch=2, size=size, device=device)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        ref_out, ref_grad, _ = step(model, inputs, None, device, state)
        cells = []
        for label, dtype in dtypes.items():
            out, grad, scale = step(model, inputs, dtype, device, state)
            flag = model.spec.supports_bf16 if label == "bf16" else model.spec.supports_fp16
            if not (torch.isfinite(out).all() and torch.isfinite(grad).all()):
                cells.append(f"non-finite ({'yes' if flag else 'no'})")
                continue
            rel = float((out - ref_out).norm() / ref_out.norm().clamp_min(1e-12))
            cos = float(torch.nn.functional.cosine_similarity(grad, ref_grad, dim=0))
            backoff = f", loss scale 2^{int(math.log2(scale))}" if label == "fp16" and scale < 2.0**16 else ""
            cells.append(f"{rel:.1e} / {cos:.4f} ({'yes' if flag else 'no'}{backoff})")
        row = f"| {name} | " + " | ".join(cells) + " |"
        print(row, flush=True)
        lines.append(row)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    names = args.models or models.available()
    table = run(args.device, args.size, names)
    if not args.no_write:
        title = f"## Models: mixed-precision training step against float32 ({args.device})\n\n"
        write_section(f"models-precision-{args.device}", title + table)


if __name__ == "__main__":
    main()
