"""``restore enhance INPUT OUTPUT`` and ``restore eval-audio CLEAN_DIR PROCESSED_DIR``.

``enhance`` takes a file or a folder, with the same guarantees as the image commands: reading and
writing overlap the model, a file that cannot be read or processed is reported and skipped (exit
status 1 at the end, with the list), outputs are written under a temporary name and renamed, and
``--skip-existing`` resumes an interrupted run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_audio_commands", "evaluate_folders", "run_enhance", "run_eval_audio"]

AUDIO_FORMATS = ("same", "wav", "flac", "ogg")


def add_audio_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``enhance`` and ``eval-audio`` to the ``restore`` parser."""
    text = "enhance speech in an audio file or a folder (denoising or bandwidth extension)"
    p = sub.add_parser(
        "enhance", help=text, description=f"{text[0].upper()}{text[1:]}. " + __doc__.split("\n\n")[1]
    )
    p.add_argument("input", help="an audio file (wav, flac, ogg) or a folder")
    p.add_argument("output", help="the output file, or a folder (created; sub-folders mirrored)")
    p.add_argument(
        "--task", choices=("denoise", "bandwidth"), default="denoise", help="(default: %(default)s)"
    )
    p.add_argument("--model", help="bundled name, .safetensors file, or URL#sha256=... (default: bundled)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument(
        "--precision", choices=("fp32", "bf16", "fp16"), help="(default: fp32 on CPU, bf16 on GPU)"
    )
    p.add_argument(
        "--chunk-seconds", type=float, help="audio per model call; memory grows with it (default: 10)"
    )
    p.add_argument("-r", "--recursive", action="store_true", help="process sub-folders too")
    p.add_argument("--include", action="append", default=[], metavar="GLOB", help="only matching files")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip matching files")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose output exists (resume)")
    p.add_argument(
        "--format", choices=AUDIO_FORMATS, default="same", help="output format (default: the input's)"
    )
    p.add_argument(
        "--subtype",
        help="sample format such as PCM_16, PCM_24, FLOAT (default: the input's when the format is kept)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_enhance)

    p = sub.add_parser(
        "eval-audio",
        help="score processed audio against clean references (PESQ, STOI, SI-SDR, LSD)",
        description="Score every file of PROCESSED_DIR against the file of the same relative name in "
        "CLEAN_DIR: PESQ wide and narrow band, STOI, SI-SDR (dB) and log-spectral distance. Prints "
        "per-file scores and means; exits 1 when a file has no partner or cannot be read.",
    )
    p.add_argument("clean", help="folder of clean reference files")
    p.add_argument("processed", help="folder of processed (or noisy) files with the same names")
    p.add_argument("-r", "--recursive", action="store_true", help="include sub-folders")
    p.add_argument("--json", help="also write the scores to this JSON file")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.set_defaults(func=run_eval_audio)


def run_enhance(args: argparse.Namespace) -> int:
    """Enhance a file or a folder; returns the exit status."""
    from restore import api
    from restore.infer.batch import plan_jobs, run_jobs
    from restore.io.audio import audio_suffixes, write_audio
    from restore.io.audio_convert import to_audio_tensor

    try:
        jobs, skipped = plan_jobs(
            args.input,
            args.output,
            suffixes=audio_suffixes(),
            recursive=args.recursive,
            include=args.include,
            exclude=args.exclude,
            output_suffix=None if args.format == "same" else f".{args.format}",
            skip_existing=args.skip_existing,
        )
        predictor = api.get_audio_predictor(
            args.model,
            task=args.task,
            device=args.device,
            precision=args.precision,
            chunk_seconds=args.chunk_seconds,
        )
    except (OSError, ValueError, KeyError) as error:
        print(f"restore enhance: {error}", file=sys.stderr)
        return 2
    if not jobs and not skipped:
        print(f"restore enhance: no audio files found in '{args.input}'", file=sys.stderr)
        return 2

    def process(source):
        out, rate = predictor(source.audio, source.sample_rate)
        return source, out, rate

    def write(job, result) -> None:
        from restore.infer.batch import atomic_write_path

        source, out, rate = result
        subtype = args.subtype
        if subtype is None and job.target.suffix.lower() == source.path.suffix.lower():
            subtype = source.subtype
        with atomic_write_path(job.target) as temp:
            write_audio(temp, out, rate, subtype=subtype, format=job.target.suffix.lstrip(".").upper())

    report = run_jobs(
        jobs,
        read=lambda job: to_audio_tensor(job.source),
        process=process,
        write=write,
        progress=not args.no_progress,
        description="enhance",
        skipped=skipped,
    )
    print(report.summary(), file=sys.stderr if report.failed else sys.stdout)
    return report.exit_code


# ----------------------------------------------------------------------------- evaluation


def _score_pair(clean_path: Path, processed_path: Path) -> tuple[dict[str, float], list[str]]:
    """Metrics of one pair (mono mixdowns at the clean file's rate) and notes on what was skipped."""
    from restore import metrics
    from restore.io.audio import read_audio

    clean, rate = read_audio(clean_path, mono=True)
    processed, _ = read_audio(processed_path, sample_rate=rate, mono=True)
    notes = []
    if processed.shape[-1] != clean.shape[-1]:
        difference = abs(processed.shape[-1] - clean.shape[-1])
        if difference > max(0.01 * clean.shape[-1], rate // 100):
            raise ValueError(
                f"lengths differ: {clean.shape[-1]} samples (clean) vs {processed.shape[-1]} "
                f"(processed) at {rate} Hz"
            )
        notes.append(f"lengths differ by {difference} samples; scored on the common part")
        length = min(processed.shape[-1], clean.shape[-1])
        clean, processed = clean[..., :length], processed[..., :length]
    scores, metric_notes = metrics.speech_scores(processed, clean, rate)
    return scores, notes + metric_notes


def evaluate_folders(
    clean_dir: str | Path, processed_dir: str | Path, recursive: bool = False
) -> dict[str, Any]:
    """Scores of every processed file against its clean partner.

    Returns ``{"files": {relative: {metric: value}}, "mean": {metric: value}, "failed": {relative:
    problem}, "notes": {relative: [..]}}``. Means skip NaN (PESQ finds no speech in a clip).
    """
    from restore.io.audio import AudioReadError, list_audio
    from restore.metrics import mean_scores

    clean_root, processed_root = Path(clean_dir), Path(processed_dir)
    for root in (clean_root, processed_root):
        if not root.is_dir():
            raise FileNotFoundError(f"not a folder: '{root}'")
    result: dict[str, Any] = {"files": {}, "mean": {}, "failed": {}, "notes": {}}
    clean_files = {
        p.relative_to(clean_root).with_suffix("").as_posix(): p for p in list_audio(clean_root, recursive)
    }
    processed = list_audio(processed_root, recursive)
    if not processed:
        raise FileNotFoundError(f"no audio files in '{processed_root}'")
    for path in processed:
        relative = path.relative_to(processed_root).as_posix()
        partner = clean_files.get(path.relative_to(processed_root).with_suffix("").as_posix())
        if partner is None:
            result["failed"][relative] = f"no clean file named {Path(relative).stem}.* in '{clean_root}'"
            continue
        try:
            scores, notes = _score_pair(partner, path)
        except (AudioReadError, OSError, ValueError) as error:
            result["failed"][relative] = str(error)
            continue
        result["files"][relative] = scores
        if notes:
            result["notes"][relative] = notes
    result["mean"] = mean_scores(list(result["files"].values()))
    return result


def _table(result: dict[str, Any], markdown: bool) -> str:
    columns = list(result["mean"])
    rows = [(name, scores) for name, scores in result["files"].items()] + [("mean", result["mean"])]
    width = max(len(name) for name, _ in rows)
    if markdown:
        lines = ["| file | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        lines += [
            f"| {n} | " + " | ".join(f"{s.get(c, math.nan):.3f}" for c in columns) + " |" for n, s in rows
        ]
        return "\n".join(lines)
    lines = [f"{'file':{width}s}  " + "  ".join(f"{c:>8s}" for c in columns)]
    lines += [f"{n:{width}s}  " + "  ".join(f"{s.get(c, math.nan):8.3f}" for c in columns) for n, s in rows]
    return "\n".join(lines)


def run_eval_audio(args: argparse.Namespace) -> int:
    """Print per-file and mean scores; exit 1 when some file could not be scored."""
    import importlib.util

    try:
        result = evaluate_folders(args.clean, args.processed, args.recursive)
    except (OSError, ValueError) as error:
        print(f"restore eval-audio: {error}", file=sys.stderr)
        return 2
    if result["files"]:
        print(_table(result, args.markdown))
    missing = [m for m in ("pesq", "pystoi") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"(not scored: {', '.join(missing)} not installed; pip install pesq pystoi)", file=sys.stderr)
    for name, notes in result["notes"].items():
        for note in notes:
            print(f"note: {name}: {note}", file=sys.stderr)
    if args.json:
        from restore.infer.batch import atomic_write_path

        target = Path(args.json)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write_path(target) as temp:
            temp.write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
    if result["failed"]:
        print(f"{len(result['failed'])} file(s) not scored:", file=sys.stderr)
        for name, problem in result["failed"].items():
            print(f"  {name}: {problem}", file=sys.stderr)
        return 1
    return 0
