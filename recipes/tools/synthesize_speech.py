"""Synthesise a varied clean-speech corpus with espeak-ng and flite (Debian packages), for training.

    apt-get install espeak-ng flite
    python recipes/tools/synthesize_speech.py OUT_DIR --count 600

The real clean speech available offline here is a few minutes (DESIGN "Data"), so the bundled speech
denoiser also trains on synthesised speech: sentences taken from the docstrings of Python's standard
library, spoken by espeak-ng voices (several accents and variants, random rate and pitch) and flite's
voices, written as 16 kHz mono PCM-16 wav. The output is deterministic for a seed; nothing here is
shipped, the folder is training data only.
"""

from __future__ import annotations

import argparse
import pydoc
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ESPEAK_VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
ESPEAK_VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5")
FLITE_VOICES = ("awb", "rms", "slt", "kal16")
MODULES = (
    "os",
    "json",
    "argparse",
    "collections",
    "pathlib",
    "subprocess",
    "typing",
    "email",
    "http.client",
    "logging",
    "unittest",
    "asyncio",
    "datetime",
    "decimal",
    "fractions",
    "statistics",
    "shutil",
    "zipfile",
    "tarfile",
    "csv",
    "sqlite3",
    "threading",
    "multiprocessing",
    "socket",
    "string",
    "textwrap",
    "random",
)


def sentences(seed: int) -> list[str]:
    """Plain English sentences of 5 to 20 words from standard-library docstrings (deduplicated, shuffled)."""
    import importlib

    found: set[str] = set()
    for name in MODULES:
        module = importlib.import_module(name)
        text = pydoc.render_doc(module, renderer=pydoc.plaintext)
        for sentence in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", text)):
            words = sentence.split()
            if (
                5 <= len(words) <= 20
                and re.fullmatch(r"[A-Za-z ,;'.?!-]+", sentence)
                and sentence[0].isupper()
            ):
                found.add(sentence)
    ordered = sorted(found)
    random.Random(seed).shuffle(ordered)
    return ordered


def _espeak(text: str, path: Path, rng: random.Random) -> list[str]:
    voice = rng.choice(ESPEAK_VOICES) + rng.choice(ESPEAK_VARIANTS)
    return [
        "espeak-ng",
        "-v",
        voice,
        "-s",
        str(rng.randint(125, 190)),
        "-p",
        str(rng.randint(25, 75)),
        "-w",
        str(path),
        text,
    ]


def _flite(text: str, path: Path, rng: random.Random) -> list[str]:
    return ["flite", "-voice", rng.choice(FLITE_VOICES), "-t", text, "-o", str(path)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tools = [t for t in ("espeak-ng", "flite") if shutil.which(t)]
    if not tools:
        print("neither espeak-ng nor flite is installed (apt-get install espeak-ng flite)", file=sys.stderr)
        return 2
    import torch

    from restore.io.audio import read_audio, write_audio

    args.output.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    texts = sentences(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.count):
            tool = tools[index % len(tools)]
            raw = Path(tmp) / "raw.wav"
            command = (_espeak if tool == "espeak-ng" else _flite)(texts[index % len(texts)], raw, rng)
            subprocess.run(command, check=True, capture_output=True)
            audio, _ = read_audio(raw, sample_rate=16000, mono=True)
            audio = audio / audio.abs().max().clamp_min(1e-4) * 0.5
            write_audio(args.output / f"{tool}_{index:04d}.wav", audio.to(torch.float32), 16000)
    print(f"wrote {args.count} files to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
