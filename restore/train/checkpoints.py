"""Checkpoint folders: atomic writes, ``latest`` lookup, and keeping the last N.

A checkpoint is written by ``accelerator.save_state`` into ``checkpoint-<step>.partial-<token>``
and renamed to ``checkpoint-<step>`` only when every process has finished writing, so a process
that dies mid-write leaves the last good checkpoint untouched (the partial folder is ignored and
removed by the next successful save).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

__all__ = ["checkpoint_dirs", "latest_checkpoint", "partial_dir", "prune_checkpoints", "resolve_resume"]

_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dirs(root: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders in ``root``, oldest first (by step)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in ``root``, or None."""
    dirs = checkpoint_dirs(root)
    return dirs[-1] if dirs else None


def checkpoint_step(path: str | os.PathLike) -> int:
    """The step number in a ``checkpoint-<step>`` folder name."""
    match = _NAME.match(Path(path).name)
    if not match:
        raise ValueError(f"'{path}' is not a checkpoint folder (expected a name like checkpoint-1000)")
    return int(match.group(1))


def partial_dir(root: str | os.PathLike, step: int, token: str) -> Path:
    """Where a checkpoint is written before it is complete."""
    return Path(root) / f"checkpoint-{step}.partial-{token}"


def finalize(partial: Path, root: str | os.PathLike, step: int) -> Path:
    """Rename a fully written ``partial`` folder to ``checkpoint-<step>`` (replacing an older one)."""
    final = Path(root) / f"checkpoint-{step}"
    if final.exists():
        old = final.with_name(final.name + ".old")
        os.replace(final, old)
        os.replace(partial, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, final)
    return final


def prune_checkpoints(root: str | os.PathLike, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints, and leftover partial folders; returns deleted."""
    deleted = []
    dirs = checkpoint_dirs(root)
    for path in dirs[: max(len(dirs) - max(keep, 1), 0)]:
        shutil.rmtree(path, ignore_errors=True)
        deleted.append(path)
    for path in Path(root).glob("checkpoint-*.partial-*"):
        shutil.rmtree(path, ignore_errors=True)
        deleted.append(path)
    return deleted


def resolve_resume(resume: str | None, root: str | os.PathLike) -> Path | None:
    """``None`` -> None; ``"latest"`` -> the newest checkpoint in ``root`` (None if there is none yet);
    a path -> that folder (which must exist)."""
    if resume is None or resume in ("", "none", "no"):
        return None
    if resume == "latest":
        return latest_checkpoint(root)
    path = Path(resume)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint to resume from not found: '{path}'")
    return path
