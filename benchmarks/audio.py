"""Speech enhancement speed and memory: real-time factor of ``restore.enhance``, and peak memory vs length.

One run measures, on this machine's CPU (or ``--device cuda``):

(a) how many times faster than real time ``restore.enhance(noisy, 16000)`` runs with the bundled
    default denoiser, and with the other audio models for comparison, on a 60 s 16 kHz mono signal
    (the full API path: level normalisation, 10 s chunks with context, overlap-add), median of
    ``--repeats``; real time (1x) is the baseline, the target is at least 10x;
(b) the growth of the peak resident set during one ``restore.enhance`` call on 10 s, 1 min and 10 min
    of audio (the input made before measuring), each in a fresh spawned process after a warm-up call
    (Linux VmHWM), beside the size of the output buffer the call must allocate. Chunking keeps the
    working memory flat.

    python benchmarks/audio.py                 # writes the audio-cpu section of docs/benchmarks.md
    python benchmarks/audio.py --seconds 5 --mem-seconds 5 20 --repeats 1 --no-write      # quick
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import restore  # noqa: E402
from benchmarks.report import machine, peak_rss_meter, write_section  # noqa: E402

RATE = 16000
COMPARED = ("speech-logmmse", "speech-wiener", "speech-spectral-subtraction")


def noisy_speech(seconds: float, seed: int = 0) -> torch.Tensor:
    """``(T,)`` harmonic speech stand-in with syllable envelopes plus white noise at 5 dB SNR."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * RATE)) / RATE
    pitch = 140 + 30 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(pitch, 0) / RATE
    voice = sum(torch.sin(k * phase) / k for k in range(1, 20)) * torch.sin(math.pi * 3 * t).clamp_min(0) ** 2
    noise = torch.randn(t.shape, generator=g)
    noise = noise * voice.square().mean().sqrt() / noise.square().mean().sqrt() / math.sqrt(10 ** 0.5)
    return (0.1 * (voice + noise)).float()


def realtime_factor(model: str | None, seconds: float, repeats: int, device: str) -> float:
    """Audio seconds processed per wall-clock second (median of ``repeats``)."""
    x = noisy_speech(seconds)
    restore.enhance(x[: RATE], RATE, model=model, device=device)  # load, warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        restore.enhance(x, RATE, model=model, device=device)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    times.sort()
    return seconds / times[len(times) // 2]


def _memory_child(seconds: float, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    restore.enhance(noisy_speech(2.0), RATE)  # warm-up: model, allocator, FFT plans
    x = noisy_speech(seconds)  # made before the meter starts (its temporaries are not the API's)
    growth = peak_rss_meter()
    out = restore.enhance(x, RATE)
    queue.put((growth(), out.numel() * 4 / 2**20))


def peak_memory(seconds: float) -> tuple[float, float]:
    """(peak RSS growth MB of one call, output MB), in a fresh process."""
    ctx = get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_memory_child, args=(seconds, torch.get_num_threads(), queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def run(args: argparse.Namespace) -> str:
    from restore import hub

    default = hub.default_model("audio_denoise")
    lines = [
        f"Machine: {machine()}. 16 kHz mono, {args.seconds:.0f} s of noisy speech per call, "
        f"median of {args.repeats}; real time (1x) is the baseline, the target is >= 10x.",
        "",
        "| model | times faster than real time |",
        "|---|---|",
    ]
    for name in dict.fromkeys([default, *COMPARED]):
        factor = realtime_factor(name, args.seconds, args.repeats, args.device)
        mark = " (default)" if name == default else ""
        lines.append(f"| {name}{mark} | {factor:.0f}x |")
        print(lines[-1], flush=True)
    if args.device == "cpu":
        lines += [
            "",
            "Peak resident-set growth during one `restore.enhance` call with the default model, in a fresh "
            "process after a warm-up call (Linux VmHWM; the input exists before), against the output buffer "
            "the call returns:",
            "",
            "| audio | peak growth MB | output MB |",
            "|---|---|---|",
        ]
        for seconds in args.mem_seconds:
            growth, buffers = peak_memory(seconds)
            label = f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"
            lines.append(f"| {label} | {growth:.0f} | {buffers:.0f} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--mem-seconds", type=float, nargs="+", default=[10.0, 60.0, 600.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    table = run(args)
    if not args.no_write:
        write_section(f"audio-{args.device}", "## Speech enhancement (`benchmarks/audio.py`)\n\n" + table)


if __name__ == "__main__":
    main()
