"""Run one function over many files: plan input -> output paths, then read / process / write as a pipeline.

Generic: nothing here knows about models, images or audio. The ``restore upscale|inpaint|deblur INPUT
OUTPUT`` commands (and later ``restore enhance``) plan the jobs and pass three callables:

    jobs, skipped = plan_jobs("photos/", "out/", suffixes=IMAGE_SUFFIXES, recursive=True,
                              output_suffix=".png", skip_existing=True)
    report = run_jobs(jobs, skipped=skipped,
                      read=lambda job: read_image(job.source),          # background thread, prefetched
                      process=model_fn,                                  # calling thread (the model)
                      write=lambda job, y: write_image(job.target, y))  # background thread, atomic
    print(report.summary()); sys.exit(report.exit_code)

A file that fails (corrupt, too large, out of memory...) is recorded in ``report.failed`` with a
one-line message and the run goes on. Writes must be atomic (``write_image`` is; writers that take a
path, e.g. soundfile, write through :func:`atomic_write_path`), so an interrupted run leaves only
complete outputs and ``skip_existing=True`` resumes it.
"""

from __future__ import annotations

import fnmatch
import os
import secrets
import struct
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from restore.io.image import ImageReadError

__all__ = [
    "MAX_PIXELS",
    "BatchReport",
    "Job",
    "allow_pillow_pixels",
    "atomic_write_path",
    "check_image_pixels",
    "plan_jobs",
    "run_jobs",
    "safe_target",
]

#: Default limit of :func:`check_image_pixels`: Pillow's own decompression-bomb error threshold
#: (2 x ``PIL.Image.MAX_IMAGE_PIXELS`` = 2 x 89,478,485 pixels, about 179 megapixels).
MAX_PIXELS = 178_956_970

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Job:
    """One file to process: where it is read from and where its result is written."""

    source: Path
    target: Path
    relative: str  # the source's path relative to the input folder (posix), or its name


# ----------------------------------------------------------------------------- planning


def plan_jobs(
    input: PathLike,
    output: PathLike,
    *,
    suffixes: Iterable[str],
    recursive: bool = False,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    output_suffix: str | None = None,
    skip_existing: bool = False,
) -> tuple[list[Job], list[Job]]:
    """Pair every input file with its output path; returns ``(to_run, skipped)``, sorted by relative path.

    Args:
        input: a file, or a folder whose files with one of ``suffixes`` (any case) are taken;
            hidden files and folders (name starting with ``.``) are skipped, and so are the
            temporary files of atomic writes (``.name.xxxx.tmp``). Symlinked folders are not entered.
        output: for a file input, the output file; or a folder (one that exists, a path ending in
            ``/``, or a path without a suffix), which then receives ``output/<name>``. For a folder
            input, the output folder (created when the first result is written); each file keeps
            its relative path (sub-folders are mirrored when ``recursive``).
        suffixes: accepted input suffixes, e.g. ``restore.io.IMAGE_SUFFIXES``.
        recursive: also take files in sub-folders.
        include, exclude: ``fnmatch`` glob patterns. A pattern matches a file when it matches its
            relative posix path (``sub/a.png``), its name, or one of its folders (``sub``: a whole
            folder). With ``include`` only matching files are taken; ``exclude`` drops files.
        output_suffix: replaces each output's suffix (``".png"``); an explicit output file name is
            kept as given.
        skip_existing: put jobs whose output already exists (non-empty) in ``skipped``: this is
            how an interrupted run resumes.

    Raises:
        FileNotFoundError: ``input`` does not exist.
        ValueError: bad arguments; an output that would overwrite an input file; an output folder
            equal to the input folder, or inside it when ``recursive`` unless ``exclude`` covers
            it; an output that would land outside the output folder (a symlink); two inputs
            with the same output (e.g. ``a.jpg`` and ``a.png`` with ``output_suffix=".png"``).
    """
    suffix_set = _check_suffixes(suffixes)
    output_suffix = _check_output_suffix(output_suffix)
    include = _check_patterns(include, "include")
    exclude = _check_patterns(exclude, "exclude")
    source = Path(input)
    if not source.exists():
        raise FileNotFoundError(f"input not found: '{source}'")
    if source.is_dir():
        jobs = _plan_folder(source, Path(output), suffix_set, recursive, include, exclude, output_suffix)
    else:
        jobs = [_plan_file(source, output, output_suffix)]
    _check_unique_targets(jobs)
    to_run: list[Job] = []
    skipped: list[Job] = []
    for job in jobs:
        (skipped if skip_existing and _is_complete(job.target) else to_run).append(job)
    return to_run, skipped


def safe_target(output_folder: PathLike, relative: str, output_suffix: str | None = None) -> Path:
    """``output_folder / relative`` (suffix replaced by ``output_suffix``), checked to stay inside the folder.

    Raises:
        ValueError: ``relative`` is empty, absolute or contains ``..``; or the path resolves
            outside ``output_folder`` (through a symlink inside it).
    """
    pure = PurePosixPath(relative.replace(os.sep, "/"))
    if not relative or pure.is_absolute() or ".." in pure.parts or Path(relative).is_absolute():
        raise ValueError(f"unsafe relative output path {relative!r}: it must stay inside the output folder")
    if output_suffix is not None:
        pure = pure.with_suffix(output_suffix)
    folder = Path(output_folder)
    target = folder.joinpath(*pure.parts)
    _check_inside(folder, target)
    return target


def _plan_file(source: Path, output: PathLike, output_suffix: str | None) -> Job:
    out = Path(output)
    if _names_folder(output):
        target = safe_target(out, source.name, output_suffix)
    else:
        target = out
    if _same_file(source, target):
        raise ValueError(
            f"output '{target}' is the input file itself; refusing to overwrite it in place "
            "(choose another output path)"
        )
    return Job(source, target, source.name)


def _plan_folder(
    root: Path,
    out: Path,
    suffixes: frozenset[str],
    recursive: bool,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    output_suffix: str | None,
) -> list[Job]:
    if out.exists() and not out.is_dir():
        raise ValueError(f"output must be a folder when the input is a folder, but '{out}' is a file")
    root_resolved, out_resolved = root.resolve(), out.resolve()
    if out_resolved == root_resolved:
        raise ValueError(
            f"output folder '{out}' is the input folder: outputs would overwrite or mix with the "
            "inputs; write to another folder"
        )
    if recursive and out_resolved.is_relative_to(root_resolved):
        inner = out_resolved.relative_to(root_resolved).as_posix()
        if not _is_hidden(inner) and not _folder_excluded(inner, exclude):
            raise ValueError(
                f"output folder '{out}' is inside the recursive input folder '{root}': a later run "
                f"would read its own outputs; write elsewhere or pass exclude=[{inner!r}]"
            )
    jobs = []
    for path in _walk(root, recursive):
        relative = path.relative_to(root).as_posix()
        if _is_hidden(relative) or path.suffix.lower() not in suffixes or not path.is_file():
            continue
        if include and not _matches(relative, include):
            continue
        if _matches(relative, exclude):
            continue
        jobs.append(Job(path, safe_target(out, relative, output_suffix), relative))
    jobs.sort(key=lambda job: job.relative)
    sources = {job.source.resolve(): job for job in jobs}
    for job in jobs:
        overwritten = sources.get(job.target.resolve())
        if overwritten is not None:
            raise ValueError(
                f"output '{job.target}' (for '{job.source}') would overwrite the input file "
                f"'{overwritten.source}'; choose an output folder apart from the input"
            )
    return jobs


def _walk(root: Path, recursive: bool) -> Iterator[Path]:
    if not recursive:
        yield from root.iterdir()
        return
    for dirpath, dirnames, filenames in os.walk(root):  # does not enter symlinked folders
        dirnames[:] = [name for name in dirnames if not name.startswith(".")]
        for name in filenames:
            yield Path(dirpath, name)


def _names_folder(output: PathLike) -> bool:
    """Whether a single file's ``output`` names a folder rather than the output file."""
    text = os.fspath(output)
    path = Path(output)
    if path.is_dir() or text.endswith(("/", os.sep)):
        return True
    return not path.exists() and path.suffix == ""


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _check_inside(folder: Path, target: Path) -> None:
    folder_resolved, target_resolved = folder.resolve(), target.resolve()
    if target_resolved == folder_resolved or not target_resolved.is_relative_to(folder_resolved):
        raise ValueError(
            f"refusing to write '{target}': it resolves to '{target_resolved}', outside the output "
            f"folder '{folder_resolved}' (a symlink in the output folder?)"
        )


def _check_unique_targets(jobs: Sequence[Job]) -> None:
    seen: dict[Path, Job] = {}
    for job in jobs:
        key = job.target.resolve()
        if key in seen:
            raise ValueError(
                f"'{seen[key].source}' and '{job.source}' would both be written to '{job.target}'; "
                "exclude one of them or keep the input suffixes"
            )
        seen[key] = job


def _is_complete(target: Path) -> bool:
    try:
        return target.is_file() and target.stat().st_size > 0
    except OSError:
        return False


def _is_hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/") if part not in ("", "."))


def _candidates(relative: str) -> list[str]:
    """The strings a pattern is matched against: the path, each folder prefix, and every name."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts))]
    return [relative, *prefixes, *parts]


def _matches(relative: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(text, pattern) for text in _candidates(relative) for pattern in patterns)


def _folder_excluded(folder: str, exclude: Sequence[str]) -> bool:
    """Whether ``exclude`` drops every file under ``folder`` (it, a parent, or ``folder/*`` matches)."""
    return _matches(folder, exclude) or any(
        fnmatch.fnmatch(f"{folder}/{tail}", pattern) for pattern in exclude for tail in ("*", "**")
    )


def _check_suffixes(suffixes: Iterable[str]) -> frozenset[str]:
    if isinstance(suffixes, str):
        suffixes = (suffixes,)
    values = tuple(suffixes)
    if not values or not all(isinstance(s, str) and s.startswith(".") and len(s) > 1 for s in values):
        raise ValueError(f"suffixes must be a non-empty list of suffixes like '.png', got {values!r}")
    return frozenset(s.lower() for s in values)


def _check_output_suffix(output_suffix: str | None) -> str | None:
    if output_suffix is None:
        return None
    valid = (
        isinstance(output_suffix, str)
        and output_suffix.startswith(".")
        and len(output_suffix) > 1
        and not any(c in output_suffix for c in "/\\")
        and output_suffix.count(".") == 1
    )
    if not valid:
        raise ValueError(f"output_suffix must look like '.png', got {output_suffix!r}")
    return output_suffix


def _check_patterns(patterns: Iterable[str], name: str) -> tuple[str, ...]:
    if isinstance(patterns, str):
        patterns = (patterns,)
    values = tuple(patterns)
    if not all(isinstance(p, str) and p for p in values):
        raise ValueError(f"{name} must be a list of non-empty glob patterns, got {values!r}")
    return values


# ----------------------------------------------------------------------------- atomic writes


@contextmanager
def atomic_write_path(target: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is renamed over ``target`` (``os.replace``).

    For writers that take a path (``soundfile.write(tmp, ...)``, ``torch.save``, a library's
    ``save(path)``): the target name never holds a partial file. On an exception the temporary
    file is removed and ``target`` is left as it was. The temporary name is hidden and keeps the
    suffix, so writers that pick the format from it still work: ``.name.wav.1a2b3c4d5e6f.tmp.wav``.

        with atomic_write_path("out/song.wav") as tmp:
            soundfile.write(tmp, audio, rate)
    """
    target = Path(target)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp{target.suffix}")
    try:
        yield temp
        if not temp.exists():
            raise FileNotFoundError(f"the writer did not create the file '{temp}' for '{target}'")
        _fsync(temp)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    """Flush a closed file's data to disk before it is renamed (best effort)."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- running


@dataclass
class BatchReport:
    """What a batch run did: jobs done, skipped, failed (with a message), and the wall time."""

    done: list[Job] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, 1 otherwise (the command's exit status)."""
        return 1 if self.failed else 0

    def summary(self) -> str:
        """Counts and time on the first line, then one line per failure: ``path: problem``."""
        line = f"{len(self.done)} done, {len(self.failed)} failed, {len(self.skipped)} skipped"
        line += f" (output exists) in {self.seconds:.1f} s"
        processed = len(self.done) + len(self.failed)
        if processed:
            line += f" ({self.seconds / processed:.2f} s per file)"
        lines = [line]
        if self.failed:
            lines.append("failed:")
            lines.extend(f"  {message}" for _, message in self.failed)
        return "\n".join(lines)


def run_jobs(
    jobs: Iterable[Job],
    *,
    read: Callable[[Job], Any],
    process: Callable[[Any], Any],
    write: Callable[[Job, Any], Any],
    prefetch: int = 2,
    progress: bool = True,
    description: str = "",
    skipped: Sequence[Job] = (),
    writers: int = 1,
) -> BatchReport:
    """Run ``write(job, process(read(job)))`` for every job, overlapping reading and writing with processing.

    ``read`` runs in a background thread up to ``prefetch`` jobs ahead (``prefetch=0``: in the
    calling thread); ``process`` runs in the calling thread (the model); ``write`` runs in
    ``writers`` background threads after the output's folder is created. At most ``writers + 1``
    results wait to be written, so memory stays bounded.

    An exception (``Exception``) from any stage of one job is recorded in ``report.failed`` as
    ``(job, "source: stage failed: problem")`` and the run goes on. ``KeyboardInterrupt`` (or any
    other ``BaseException``) stops reading, lets the writes already handed over finish (they must
    be atomic, see :func:`atomic_write_path`), and is re-raised: the output folder then holds only
    complete files, and ``plan_jobs(..., skip_existing=True)`` resumes.

    ``progress`` shows a tqdm bar with ETA on stderr (failures are printed above it);
    ``skipped`` is passed through to the report.
    """
    jobs = list(jobs)
    if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
        raise ValueError(f"prefetch must be an int >= 0, got {prefetch!r}")
    if isinstance(writers, bool) or not isinstance(writers, int) or writers < 1:
        raise ValueError(f"writers must be an int >= 1, got {writers!r}")
    start = time.perf_counter()
    bar = _progress_bar(len(jobs), description, progress)
    done: list[tuple[int, Job]] = []
    failed: list[tuple[int, Job, str]] = []

    def fail(index: int, job: Job, stage: str, error: BaseException) -> None:
        message = _failure_message(job, stage, error)
        failed.append((index, job, message))
        bar.update(1)
        bar.set_postfix_str(f"{len(failed)} failed", refresh=False)
        bar.write(message)

    pending: list[tuple[int, Job, Future]] = []

    def reap(block: bool) -> None:
        """Record finished writes; with ``block``, first wait until at least one finishes."""
        if block and pending:
            wait([future for _, _, future in pending], return_when=FIRST_COMPLETED)
        still = []
        for index, job, future in pending:
            if not future.done():
                still.append((index, job, future))
                continue
            error = future.exception()
            if error is None:
                done.append((index, job))
                bar.update(1)
            elif isinstance(error, Exception):
                fail(index, job, "write", error)
            else:
                raise error
        pending[:] = still

    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-read") if prefetch else None
    writer = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="batch-write")
    reads: deque[Future] = deque()
    next_read = 0
    interrupted = False
    try:
        for index, job in enumerate(jobs):
            try:
                if reader is not None:
                    while next_read < len(jobs) and next_read <= index + prefetch:
                        reads.append(reader.submit(read, jobs[next_read]))
                        next_read += 1
                    item = reads.popleft().result()
                else:
                    item = read(job)
            except Exception as error:
                fail(index, job, "read", error)
                reap(block=False)
                continue
            try:
                result = process(item)
            except Exception as error:
                fail(index, job, "process", error)
                reap(block=False)
                continue
            finally:
                del item
            reap(block=False)
            while len(pending) > writers:
                reap(block=True)
            pending.append((index, job, writer.submit(_write_one, write, job, result)))
            del result
        while pending:
            reap(block=True)
    except BaseException:
        interrupted = True
        for future in reads:
            future.cancel()
        raise
    finally:
        if reader is not None:
            reader.shutdown(wait=not interrupted, cancel_futures=True)
        writer.shutdown(wait=True)  # writes already handed over finish (atomically), even on Ctrl-C
        bar.close()
    done.sort(key=lambda entry: entry[0])
    failed.sort(key=lambda entry: entry[0])
    return BatchReport(
        done=[job for _, job in done],
        skipped=list(skipped),
        failed=[(job, message) for _, job, message in failed],
        seconds=time.perf_counter() - start,
    )


def _write_one(write: Callable[[Job, Any], Any], job: Job, result: Any) -> None:
    job.target.parent.mkdir(parents=True, exist_ok=True)
    write(job, result)


def _failure_message(job: Job, stage: str, error: BaseException) -> str:
    """``"<source>: <stage> failed: <problem>"`` on one line."""
    if isinstance(error, ImageReadError) and error.path == str(job.source):
        text = error.reason
    else:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    text = " ".join(text.split())
    if len(text) > 500:
        text = text[:497] + "..."
    return f"{job.source}: {stage} failed: {text}"


class _NoBar:
    """Stands in for a tqdm bar when progress is off (or tqdm is missing)."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def write(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class _TqdmBar:
    def __init__(self, total: int, description: str) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._bar = tqdm(total=total, desc=description or None, unit="file", file=sys.stderr,
                         dynamic_ncols=True, mininterval=0.5)

    def update(self, n: int = 1) -> None:
        self._bar.update(n)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self._bar.set_postfix_str(text, refresh=refresh)

    def write(self, text: str) -> None:
        self._tqdm.write(text, file=sys.stderr)

    def close(self) -> None:
        self._bar.close()


def _progress_bar(total: int, description: str, enabled: bool) -> _NoBar | _TqdmBar:
    if not enabled:
        return _NoBar()
    try:
        return _TqdmBar(total, description)
    except ImportError:
        return _NoBar()


# ----------------------------------------------------------------------------- decompression bombs


def check_image_pixels(path: PathLike, max_pixels: int | None = MAX_PIXELS) -> tuple[int, int]:
    """Refuse an image whose header declares more than ``max_pixels`` pixels; returns ``(height, width)``.

    Only the header is read (nothing is decoded), so a small file that claims a huge size (a
    decompression bomb) costs nothing. ``max_pixels=None`` disables the limit. The size is as
    stored (EXIF rotation does not change the pixel count).

    Raises:
        ImageReadError: the file is missing or not an image, or it is too large.
    """
    if max_pixels is not None and (isinstance(max_pixels, bool) or int(max_pixels) < 1):
        raise ValueError(f"max_pixels must be a positive int or None, got {max_pixels!r}")
    path = Path(path)
    width, height = _stored_size(path)
    pixels = width * height
    if max_pixels is not None and pixels > max_pixels:
        raise ImageReadError(
            path,
            f"image is {width} x {height} = {pixels / 1e6:.1f} megapixels, above the limit of "
            f"{max_pixels / 1e6:.1f} megapixels (raise --max-pixels to allow it)",
        )
    return height, width


def allow_pillow_pixels(max_pixels: int | None) -> None:
    """Let Pillow decode images up to ``max_pixels`` (``None``: any size).

    Pillow warns above ``PIL.Image.MAX_IMAGE_PIXELS`` (89 MP) and refuses twice that; a command
    whose ``--max-pixels`` (checked by :func:`check_image_pixels`) is the real gate calls this once
    at start-up. It only ever raises Pillow's limit. Changes a process-wide setting.
    """
    from PIL import Image

    if max_pixels is None:
        Image.MAX_IMAGE_PIXELS = None
    elif Image.MAX_IMAGE_PIXELS is not None and int(max_pixels) > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = int(max_pixels)


def _stored_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header, never decoding pixels."""
    from PIL import Image

    if not path.exists():
        raise ImageReadError(path, "file not found")
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.size
    except Image.DecompressionBombError as error:
        # Image.open refuses before we can see the size: read it with the format plugins directly.
        size = _size_without_bomb_check(path)
        if size is None:
            raise ImageReadError(path, f"image too large ({error})") from error
        return size
    except Image.UnidentifiedImageError:
        raise ImageReadError(path, "not a recognised image file (unknown format)") from None
    except PermissionError as error:
        raise ImageReadError(path, "permission denied") from error
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        raise ImageReadError(path, f"corrupt image header ({error})") from error


def _size_without_bomb_check(path: Path) -> tuple[int, int] | None:
    """What ``Image.open`` does (try each format plugin on the header) minus its size check."""
    try:
        from PIL import Image

        Image.init()
        with open(path, "rb") as fp:
            prefix = fp.read(16)
            for name in list(Image.ID):
                factory, accept = Image.OPEN[name]
                accepted = accept is None or accept(prefix)
                if not accepted or isinstance(accepted, str):
                    continue
                fp.seek(0)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        image = factory(fp, os.fspath(path))
                except (SyntaxError, IndexError, TypeError, struct.error, OSError, ValueError):
                    continue
                return image.size
    except Exception:  # Pillow internals differ: fall back to Pillow's own message
        return None
    return None
