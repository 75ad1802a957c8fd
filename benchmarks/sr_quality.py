"""Quality per FLOP of the small super-resolution candidates for CPU defaults (x4, bicubic).

Each candidate trains for the same wall-clock budget on one CPU thread (L1, Adam, cosine decay over
the budget) on random 96 px crops of ../shared/data/images/BSDS500_train degraded with MATLAB
bicubic, then is evaluated on Set5 and Set14 with the standard SR protocol: PSNR on the Y channel
(BT.601, as MATLAB's rgb2ycbcr) of 8-bit outputs with a 4-pixel border cropped. Bicubic upscaling of
the same LR files is the baseline row (``restore.metrics.psnr``, the protocol of ``sr_metrics``).
The images are read as RGB, so Set14's grayscale ``bridge`` is scored on Y = 16 + 219/255 gray
rather than on its gray values as in the published tables: +1.32 dB on that image, +0.094 dB on the
Set14 mean (bicubic: 26.09 here, 26.00 published; Set5 is unaffected). GFLOPs are counted per
output megapixel with ``torch.utils.flop_counter``; CPU throughput is float32 channels_last at 64x64
input.

    python benchmarks/sr_quality.py [--minutes 7] [--lr 1e-3] [--models compact_tiny edsr_tiny swinir_tiny]

Candidates run in parallel processes, one thread each. Results are kept per model in
benchmarks/results/sr_quality.json (a later run with other models or another learning rate adds to
or replaces its own rows), and the table is made from that file. This is a benchmark for choosing the
architecture of a bundled CPU model, not its training recipe (that is recipes/ with the trainer).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from multiprocessing import get_context
from pathlib import Path
from queue import Empty

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import restore.models as models  # noqa: E402
from benchmarks.report import write_section  # noqa: E402
from restore.data import CleanImageFolder, PairedImageFolder  # noqa: E402
from restore.degrade import imresize  # noqa: E402
from restore.metrics import psnr  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "images"
SCALE = 4
CANDIDATES = ("compact_tiny", "edsr_tiny", "swinir_tiny", "compact")
RESULTS = Path(__file__).resolve().parent / "results" / "sr_quality.json"


def evaluate(upscale, dataset_name: str) -> float:
    data = PairedImageFolder(DATA / dataset_name, scale=SCALE)
    scores = []
    with torch.inference_mode():
        for item in data:
            pred, target = upscale(item["input"][None]), item["target"][None]
            scores.append(psnr(pred, target, crop_border=SCALE, y_channel=True).item())  # 8-bit, Y
    return sum(scores) / len(scores)


def gflops_per_output_mp(model: torch.nn.Module) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, 64, 64)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = model(x)
    return counter.get_total_flops() / (out.shape[-1] * out.shape[-2]) * 1e6 / 1e9


def cpu_mp_per_s(model: torch.nn.Module) -> float:
    model = model.to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(x)
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < 2.0:
            model(x)
            n += 1
    return n * (64 * SCALE) ** 2 / 1e6 / (time.perf_counter() - start)


def train_and_score(name: str, minutes: float, lr: float, queue) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = models.build(name, scale=SCALE).train()
    train = CleanImageFolder(DATA / "BSDS500_train", patch_size=96, scale=SCALE, seed=0, cache=True)
    loader = torch.utils.data.DataLoader(train, batch_size=16, shuffle=True, drop_last=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.99))
    budget, start, steps, epoch = minutes * 60, time.perf_counter(), 0, 0
    while time.perf_counter() - start < budget:
        train.set_epoch(epoch)
        for batch in loader:
            elapsed = time.perf_counter() - start
            if elapsed >= budget:
                break
            for group in optimizer.param_groups:  # cosine decay over the wall-clock budget
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
            hr = batch["target"]
            lq = imresize(hr, scale=1 / SCALE)
            loss = F.l1_loss(model(lq), hr)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        epoch += 1
    model.eval()
    queue.put(
        {
            "name": name,
            "lr": lr,
            "minutes": minutes,
            "params": sum(p.numel() for p in model.parameters()),
            "steps": steps,
            "gflops": gflops_per_output_mp(model),
            "mps": cpu_mp_per_s(model),
            "set5": evaluate(model, "Set5"),
            "set14": evaluate(model, "Set14"),
        }
    )


def bicubic_row() -> dict:
    def up(x: torch.Tensor) -> torch.Tensor:
        return imresize(x, scale=SCALE)

    scores = {"set5": evaluate(up, "Set5"), "set14": evaluate(up, "Set14")}
    return {"name": "bicubic (MATLAB)", "lr": 0.0, "minutes": 0.0, "params": 0, "steps": 0, "gflops": 0.0,
            "mps": float("nan"), **scores}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=7.0, help="training budget per candidate")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak Adam learning rate")
    parser.add_argument("--models", nargs="+", default=list(CANDIDATES))
    parser.add_argument("--parallel", type=int, default=2, help="candidates trained at once (1 thread each)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not (DATA / "BSDS500_train").is_dir():
        sys.exit(f"needs {DATA} (BSDS500_train, Set5, Set14)")
    ctx = get_context("spawn")
    queue = ctx.Queue()
    results, pending = [bicubic_row()], list(args.models)
    running: dict[str, object] = {}
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            running[name] = ctx.Process(target=train_and_score, args=(name, args.minutes, args.lr, queue))
            running[name].start()
        result = None
        while result is None:
            try:
                result = queue.get(timeout=10)
            except Empty:
                dead = [n for n, p in running.items() if not p.is_alive() and p.exitcode != 0]
                if dead:
                    sys.exit(f"training {dead[0]} failed (exit code {running[dead[0]].exitcode}); see above")
        running.pop(result["name"]).join()
        results.append(result)
        print(result, flush=True)
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for r in results:
        stored[r["name"] if r["steps"] == 0 else f"{r['name']}@{r['lr']:g}"] = r
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
    lines = [
        "Each model trained for the minutes shown on 1 CPU thread (BSDS500_train, 96 px crops, batch 16, "
        "L1, Adam at the learning rate shown with cosine decay over the budget); PSNR-Y (dB) on 8-bit "
        "outputs, border 4. GFLOPs per output megapixel; CPU MP/s: float32 channels_last, 1 thread, "
        "64 px input. Seed 0; one run each.",
        "",
        "| model | params | lr | minutes | steps | GFLOPs / MP | CPU MP/s | Set5 x4 | Set14 x4 | "
        "Set5 gain / GFLOP |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = results[0]
    for r in sorted(stored.values(), key=lambda r: (r["gflops"], r["name"], r["lr"])):
        per_flop = (r["set5"] - base["set5"]) / r["gflops"] if r["gflops"] else float("nan")
        lines.append(
            f"| {r['name']} | {r['params'] / 1e3:.0f}k | {r['lr']:g} | {r['minutes']:g} | {r['steps']} | "
            f"{r['gflops']:.1f} | {r['mps']:.2f} | {r['set5']:.2f} | {r['set14']:.2f} | {per_flop:.3f} |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        title = "## Small SR networks: quality per FLOP (CPU training budget)\n\n"
        write_section("sr-quality-cpu", title + table)


if __name__ == "__main__":
    main()
