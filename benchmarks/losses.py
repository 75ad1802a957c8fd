"""Forward+backward speed of our SSIM, MS-SSIM, LPIPS and multi-resolution STFT against peers.

Peers on the same inputs in the same run: kornia, pytorch-msssim and piq (SSIM, MS-SSIM), the
lpips package (LPIPS, random backbone weights so nothing is downloaded) and auraloss (MR-STFT).
The ratio is the fastest peer's time over ours: >= 1.0 means ours is at least as fast.

    python benchmarks/losses.py [--repeats 7] [--device cpu cuda]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

# This file is named like the `losses` package: take its folder off the path, put the repo root on.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import losses  # noqa: E402
from benchmarks.report import machine, median_ms, write_section  # noqa: E402


def fwd_bwd(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], pred: torch.Tensor, target: torch.Tensor
):
    def run() -> None:
        x = pred.detach().clone().requires_grad_()
        loss_fn(x, target).backward()

    return run


def image_cases(device: str):
    import kornia
    import lpips
    import piq
    import pytorch_msssim

    gen = torch.Generator().manual_seed(0)
    img = torch.rand(4, 3, 256, 256, generator=gen)
    pred, target = img.to(device), (img * 0.8 + 0.1 * torch.rand(img.shape, generator=gen)).to(device)

    ours_ssim = losses.create("ssim").to(device)
    ours_ms = losses.create("ms_ssim").to(device)
    kornia_ms = kornia.losses.MS_SSIMLoss().to(device)
    yield (
        "ssim",
        tuple(pred.shape),
        ours_ssim,
        {
            "kornia": lambda a, b: kornia.losses.ssim_loss(a, b, window_size=11),
            "pytorch-msssim": lambda a, b: 1 - pytorch_msssim.ssim(a, b, data_range=1.0),
            "piq": piq.SSIMLoss(data_range=1.0).to(device),
        },
        pred,
        target,
    )
    yield (
        "ms_ssim",
        tuple(pred.shape),
        ours_ms,
        {
            "kornia": kornia_ms,
            "pytorch-msssim": lambda a, b: 1 - pytorch_msssim.ms_ssim(a, b, data_range=1.0),
            "piq": piq.MultiScaleSSIMLoss(data_range=1.0).to(device),
        },
        pred,
        target,
    )

    torch.manual_seed(0)
    ours_lpips = losses.create("lpips", net="alex", weights="random").to(device)
    theirs = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).to(device).eval()
    own = ours_lpips.loss.features.state_dict()  # same random backbone; theirs: slice<k>.<index>.<param>
    theirs.net.load_state_dict({key: own[key.split(".", 1)[1]] for key in theirs.net.state_dict()})
    yield (
        "lpips (alex)",
        tuple(pred.shape),
        ours_lpips,
        {
            "lpips": lambda a, b: theirs(a, b, normalize=True).mean(),
        },
        pred,
        target,
    )


def audio_cases(device: str):
    import auraloss

    gen = torch.Generator().manual_seed(0)
    t = torch.arange(4 * 16000) / 16000
    clean = (0.5 * torch.sin(2 * torch.pi * 220 * t) * torch.sin(2 * torch.pi * 3 * t)).view(4, 1, 16000)
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=gen)
    ours = losses.create("mrstft").to(device)
    theirs = auraloss.freq.MultiResolutionSTFTLoss().to(device)
    yield "mrstft", tuple(clean.shape), ours, {"auraloss": theirs}, noisy.to(device), clean.to(device)


def run(devices: list[str], repeats: int) -> str:
    lines = [
        f"Machine: {machine()}. Median of {repeats} forward+backward passes after warm-up; "
        "ratio = fastest peer time / ours (>= 1.0: ours at least as fast); value diff = |ours - reference| "
        "on the same inputs (reference: pytorch-msssim for SSIM/MS-SSIM, the lpips package, auraloss).",
        "",
        "| device | loss | input | ours (ms) | peers (ms) | fastest peer | ratio | value diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for device in devices:
        for cases in (image_cases(device), audio_cases(device)):
            for name, shape, ours, peers, pred, target in cases:
                ours_ms = median_ms(fwd_bwd(ours, pred, target), device, repeats)
                peer_ms = {
                    peer: median_ms(fwd_bwd(fn, pred, target), device, repeats) for peer, fn in peers.items()
                }
                best = min(peer_ms, key=peer_ms.get)
                with torch.no_grad():  # same inputs, same value: ours against the reference peer
                    reference = next(iter(peers.values()))
                    if name.startswith("ssim") or name.startswith("ms_ssim"):
                        reference = peers["pytorch-msssim"]
                    diff = abs(float(ours(pred, target)) - float(reference(pred, target)))
                ratio = peer_ms[best] / ours_ms
                peers_text = ", ".join(f"{k} {v:.1f}" for k, v in peer_ms.items())
                row = (
                    f"| {device} | {name} | {'x'.join(map(str, shape))} | {ours_ms:.1f} | {peers_text} | "
                    f"{best} | {ratio:.2f} | {diff:.1e} |"
                )
                print(row, flush=True)
                lines.append(row)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--device", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    )
    parser.add_argument("--no-write", action="store_true", help="print only; do not touch docs/benchmarks.md")
    args = parser.parse_args()
    for device in args.device:
        table = run([device], args.repeats)
        if not args.no_write:
            title = f"## Losses: forward+backward against peers ({device})\n\n"
            write_section(f"losses-{device}", title + table)


if __name__ == "__main__":
    main()
