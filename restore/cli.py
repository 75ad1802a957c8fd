"""The ``restore`` command.

restore --version
restore losses [--modality image|audio] [--kind KIND] [--markdown]
restore losses NAME            # full description of one entry
restore models [--task TASK] [--markdown]
restore models NAME            # spec, parameters and documentation of one model
restore upscale|deblur|inpaint INPUT OUTPUT [options]   # a file or a folder
restore demo [FOLDER]          # the bundled x4 model on the bundled sample images
restore enhance INPUT OUTPUT [--task denoise|bandwidth] [options]   # speech, a file or a folder
restore eval-audio CLEAN_DIR PROCESSED_DIR   # PESQ, STOI, SI-SDR, LSD per file and mean
restore eval DATASET_DIR ... --scale 4 [--model M]   # the standard SR protocol (PSNR/SSIM-Y, LPIPS)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__


def _losses_command(args: argparse.Namespace) -> int:
    import losses
    from losses import table

    if args.name:
        try:
            print(losses.describe(args.name))
        except KeyError as err:
            print(f"restore losses: {err.args[0]}", file=sys.stderr)
            return 2
        return 0
    entries = table.rows(modality=args.modality, kind=args.kind)
    print(table.markdown_table(entries) if args.markdown else table.text_table(entries))
    if not args.markdown:
        print(f"\n{len(entries)} entries. `restore losses NAME` describes one.")
    return 0


def _models_command(args: argparse.Namespace) -> int:
    import restore.models as models
    from restore.models import table

    if args.name:
        try:
            print(models.describe(args.name))
        except KeyError as err:
            print(f"restore models: {err.args[0]}", file=sys.stderr)
            return 2
        return 0
    records = table.rows(task=args.task)
    print(table.markdown_table(records) if args.markdown else table.text_table(records))
    if not args.markdown:
        print(f"\n{len(records)} models. `restore models NAME` describes one.")
        from restore import hub

        print("\nBundled weights (model=NAME in restore.upscale & co.; the first of a task is its default):")
        entries = hub.bundled(args.task)
        if args.task == "audio":  # the hub names audio entries by what they do
            entries = [e for e in hub.bundled() if e.task in hub.AUDIO_HUB_TASKS]
        for entry in entries:
            state = "installed" if entry.available else "not in this installation"
            print(f"  {entry.name:27s} {entry.task:15s} x{entry.scale}  {entry.description} ({state})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from losses.registry import KINDS, MODALITIES
    from restore.models.registry import TASKS

    parser = argparse.ArgumentParser(prog="restore", description="Restore images and audio.")
    parser.add_argument("--version", action="version", version=f"restore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("losses", help="list the loss registry (or describe one entry)")
    p.add_argument("name", nargs="?", help="an entry to describe")
    p.add_argument("--modality", choices=MODALITIES, help="only entries usable on this modality")
    p.add_argument("--kind", choices=KINDS, help="only entries of this kind")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.set_defaults(func=_losses_command)
    p = sub.add_parser("models", help="list the model registry (or describe one model)")
    p.add_argument("name", nargs="?", help="a model to describe")
    p.add_argument("--task", choices=TASKS, help="only models for this task")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.set_defaults(func=_models_command)
    from restore.infer.image_commands import add_image_commands

    add_image_commands(sub)
    from restore.infer.audio_commands import add_audio_commands

    add_audio_commands(sub)
    from restore.infer.eval_command import add_eval_command

    add_eval_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except BrokenPipeError:  # `restore models | head`: the reader left; stop quietly, as Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def command() -> int:
    """The ``restore`` console command: :func:`main` on the process's arguments, with glibc's
    allocator set to reuse freed tile buffers (:mod:`restore.infer.allocator`)."""
    from restore.infer.allocator import keep_freed_buffers

    keep_freed_buffers()
    return main()


if __name__ == "__main__":
    sys.exit(command())
