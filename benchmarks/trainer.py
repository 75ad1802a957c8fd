"""Trainer overhead: steps/s of ``restore.train.Trainer`` against a minimal hand-written PyTorch loop.

Both train the same model with the same LossSet, optimiser (Adam), batch size, layout
(channels_last) and pre-made (input, target) pairs from the same DataLoader. The hand-written loop
is ``zero_grad; loss(model(x), y).backward(); step`` (plus, for the GAN case, BasicSR's discriminator
step). The trainer runs with EMA and gradient clipping off for the like-for-like ratio, and once
more with its defaults (EMA on) as an extra row. Fixed costs (set-up, final validation and
checkpoint) are cancelled by timing runs of N and 2N steps and taking the difference.
Target: ratio >= 0.95 (overhead at most 5%).

    python benchmarks/trainer.py [--steps 100] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import losses  # noqa: E402
import restore.models as models  # noqa: E402
from benchmarks.report import machine, write_section  # noqa: E402
from restore.train import load_config  # noqa: E402

CASES = {
    "sr (compact_tiny, L1)": {
        "model": {"name": "compact_tiny"},
        "losses": {"l1": 1.0},
        "data": {"patch_size": 96, "batch_size": 16},
        "steps": 200,
    },
    "sr_gan (compact_tiny + vgg_discriminator/16, L1 + RaGAN)": {
        "model": {"name": "compact_tiny"},
        "losses": {"l1": 0.01, "gan": {"name": "ragan", "weight": 0.005}},
        "discriminator": {
            "name": "vgg_discriminator",
            "args": {"num_feat": 16},
            "losses": {"gan": {"name": "ragan", "side": "discriminator"}},
        },
        "data": {"patch_size": 128, "batch_size": 8},
        "steps": 40,
    },
}


class Pairs(torch.utils.data.Dataset):
    """Pre-made (input, target) pairs, so neither loop spends time degrading."""

    def __init__(self, count: int, patch: int, scale: int = 4) -> None:
        g = torch.Generator().manual_seed(0)
        self.target = torch.rand(count, 3, patch, patch, generator=g)
        self.input = torch.nn.functional.avg_pool2d(self.target, scale)

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int) -> dict:
        return {"input": self.input[i], "target": self.target[i], "seed": i}


def hand_loop(case: dict, dataset: Pairs, steps: int, *, device: str) -> float:
    """Seconds for ``steps`` iterations of the minimal loop."""
    torch.manual_seed(0)
    cl = torch.channels_last
    model = models.build(case["model"]["name"]).to(device, memory_format=cl).train()
    loss_fn = losses.build(case["losses"]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.99))
    disc = d_loss = opt_d = None
    if "discriminator" in case:
        dc = case["discriminator"]
        disc = models.build(dc["name"], **dc["args"]).to(device, memory_format=cl).train()
        d_loss = losses.build(dc["losses"]).to(device)
        opt_d = torch.optim.Adam(disc.parameters(), lr=1e-4, betas=(0.9, 0.99))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=case["data"]["batch_size"], shuffle=True, drop_last=True
    )
    done = 0
    start = time.perf_counter()
    while done < steps:
        for batch in loader:
            x = batch["input"].to(device).contiguous(memory_format=cl)
            y = batch["target"].to(device).contiguous(memory_format=cl)
            pred = model(x)
            extra = {}
            if disc is not None:
                disc.requires_grad_(False)
                with torch.no_grad():
                    real_logits = disc(y)
                extra = {"fake_logits": disc(pred), "real_logits": real_logits}
            total, _ = loss_fn(pred, y, **extra)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            if disc is not None:
                disc.requires_grad_(True)
                d_total, _ = d_loss(fake_logits=disc(pred.detach()), real_logits=disc(y))
                opt_d.zero_grad(set_to_none=True)
                d_total.backward()
                opt_d.step()
            done += 1
            if done >= steps:
                break
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def trainer_run(case: dict, dataset: Pairs, steps: int, *, device: str, ema: bool) -> float:
    """Seconds of ``Trainer.train()`` for ``steps`` steps (fixed costs included)."""
    from accelerate.state import AcceleratorState, GradientState

    from restore.train import Trainer

    out = Path(tempfile.mkdtemp(prefix="bench_trainer_"))
    overrides = {
        "model": case["model"] | {"args": {}},
        "losses": case["losses"],
        "data": case["data"],
        "train": {"steps": steps, "lr": 1e-4, "ema_decay": 0.999 if ema else None, "mixed_precision": "no"},
        "validation": {"every": 0, "max_images": 1, "max_side": 32, "samples": 0, "lpips": False},
        "output": {
            "dir": str(out),
            "save_every": 0,
            "log_every": 10**9,
            "tracker": "none",
            "progress": False,
        },
    }
    if "discriminator" in case:
        overrides["discriminator"] = case["discriminator"]
    config = load_config(base=overrides)
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision="no", cpu=device == "cpu")
    trainer = Trainer(config, accelerator=accelerator, train_dataset=dataset)
    trainer.validation_pairs = trainer.validation_pairs or []
    start = time.perf_counter()
    trainer.train()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def per_step(run, steps: int) -> float:
    """Seconds per step from runs of ``steps`` and ``2 * steps`` (fixed costs cancel)."""
    short = run(steps)
    long = run(2 * steps)
    return (long - short) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=float, default=1.0, help="multiplies each case's step count")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats; the median is kept")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for label, case in CASES.items():
        dataset = Pairs(256, case["data"]["patch_size"])
        hand, plain, with_ema = [], [], []
        runs = {
            "hand": partial(hand_loop, case, dataset, device=args.device),
            "plain": partial(trainer_run, case, dataset, device=args.device, ema=False),
            "ema": partial(trainer_run, case, dataset, device=args.device, ema=True),
        }
        for _ in range(args.repeats):  # alternate, so drifting machine load hits all alike
            steps = max(1, round(case["steps"] * args.steps))
            hand.append(per_step(runs["hand"], steps))
            plain.append(per_step(runs["plain"], steps))
            with_ema.append(per_step(runs["ema"], steps))
        h, p, e = (sorted(v)[len(v) // 2] for v in (hand, plain, with_ema))
        rows.append((label, 1 / h, 1 / p, h / p, 1 / e, h / e))
        print(
            f"{label}: hand {1 / h:.2f} it/s, trainer {1 / p:.2f} it/s (ratio {h / p:.3f}), "
            f"trainer+EMA {1 / e:.2f} it/s (ratio {h / e:.3f})",
            flush=True,
        )
    lines = [
        "Trainer steps/s against a minimal hand-written loop (same model, LossSet, Adam, batch, "
        f"channels_last, pre-made pairs), {args.device}, {machine()}; per-step time from runs of "
        "N and 2N steps (N = 200 for sr, 40 for sr_gan; fixed costs cancel), median of "
        f"{args.repeats} "
        "alternating repeats. "
        "Target ratio >= 0.95.",
        "",
        "| case | hand loop it/s | trainer it/s | ratio | trainer + EMA it/s | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for label, hand_rate, trainer_rate, ratio, ema_rate, ema_ratio in rows:
        lines.append(
            f"| {label} | {hand_rate:.2f} | {trainer_rate:.2f} | {ratio:.3f} "
            f"| {ema_rate:.2f} | {ema_ratio:.3f} |"
        )
    if not args.no_write:
        write_section(f"trainer-{args.device}", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
