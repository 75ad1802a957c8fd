"""Batch-folder runner: planning (recursion, globs, suffixes, safety), a pipeline that records failures
and goes on, resuming with skip_existing, clean interruption (no partial outputs, also under SIGKILL),
concurrency of reading with processing, and the decompression-bomb guard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageFile

from restore.infer.batch import (
    MAX_PIXELS,
    BatchReport,
    Job,
    atomic_write_path,
    check_image_pixels,
    plan_jobs,
    run_jobs,
    safe_target,
)
from restore.io import IMAGE_SUFFIXES, ImageReadError, read_image, write_image

REPO = Path(__file__).resolve().parents[1]


def random_image(seed: int, height: int = 24, width: int = 32) -> torch.Tensor:
    """(3, H, W) with values exactly k / 255, so an 8-bit round trip is exact."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, height, width), generator=gen).float() / 255


def read(job: Job) -> torch.Tensor:
    return read_image(job.source)


def invert(x: torch.Tensor) -> torch.Tensor:
    return 1.0 - x


def write(job: Job, y: torch.Tensor) -> None:
    write_image(job.target, y)


def all_files(folder: Path) -> list[str]:
    """Every file under ``folder`` (hidden ones included), as sorted relative posix paths."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())


def make_folder(folder: Path, count: int, start_seed: int = 0) -> dict[str, torch.Tensor]:
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    for i in range(count):
        images[f"img{i}.png"] = random_image(start_seed + i)
        write_image(folder / f"img{i}.png", images[f"img{i}.png"])
    return images


def assert_inverted(path: Path, image: torch.Tensor) -> None:
    """The 8-bit file at ``path`` holds exactly ``1 - image`` (compared in integer levels)."""
    assert torch.equal((read_image(path) * 255).round(), 255 - (image * 255).round())


def relatives(jobs: list[Job]) -> list[str]:
    return [job.relative for job in jobs]


# ----------------------------------------------------------------------------- failures


def test_corrupt_and_truncated_files_are_recorded_and_the_rest_is_written(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    images = make_folder(src, 5)
    corrupt = src / "corrupt.png"
    corrupt.write_bytes(os.urandom(3000))
    truncated = src / "truncated.png"
    write_image(truncated, random_image(99, 64, 64))
    truncated.write_bytes(truncated.read_bytes()[:2000])

    jobs, skipped = plan_jobs(src, out, suffixes=IMAGE_SUFFIXES)
    assert len(jobs) == 7 and skipped == []
    report = run_jobs(jobs, read=read, process=invert, write=write, progress=False)

    assert all_files(out) == sorted(images)
    for name, image in images.items():
        assert_inverted(out / name, image)
    assert sorted(job.source for job, _ in report.failed) == [corrupt, truncated]
    for job, message in report.failed:
        assert "\n" not in message and message.startswith(f"{job.source}: read failed: ")
    assert "unknown format" in dict((j.source, m) for j, m in report.failed)[corrupt]
    assert "truncated" in dict((j.source, m) for j, m in report.failed)[truncated]
    assert sorted(job.relative for job in report.done) == sorted(images)
    assert report.exit_code == 1
    summary = report.summary()
    assert summary.startswith("5 done, 2 failed, 0 skipped")
    assert f"{corrupt}: read failed" in summary and f"{truncated}: read failed" in summary


def test_process_and_write_errors_are_recorded_per_job(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_folder(src, 4)
    jobs, _ = plan_jobs(src, out, suffixes=[".png"])

    def process(x):
        if torch.equal(x, random_image(1)):
            raise RuntimeError("out of memory\nat line 2")
        return invert(x)

    def bad_write(job, y):
        if job.relative == "img2.png":
            raise OSError("disk full")
        write(job, y)

    report = run_jobs(jobs, read=read, process=process, write=bad_write, progress=False)
    assert relatives(report.done) == ["img0.png", "img3.png"]
    assert [(job.relative, message) for job, message in report.failed] == [
        ("img1.png", f"{src / 'img1.png'}: process failed: RuntimeError: out of memory at line 2"),
        ("img2.png", f"{src / 'img2.png'}: write failed: OSError: disk full"),
    ]
    assert all_files(out) == ["img0.png", "img3.png"]


def test_report_without_failures_has_exit_code_zero():
    report = BatchReport(done=[Job(Path("a"), Path("b"), "a")], seconds=2.0)
    assert report.exit_code == 0
    assert report.summary() == "1 done, 0 failed, 0 skipped (output exists) in 2.0 s (2.00 s per file)"


def test_progress_bar_goes_to_stderr_and_can_be_silenced(tmp_path, capsys):
    src = tmp_path / "in"
    make_folder(src, 3)
    jobs, _ = plan_jobs(src, tmp_path / "out", suffixes=[".png"])
    run_jobs(jobs, read=read, process=invert, write=write, progress=True, description="upscale")
    captured = capsys.readouterr()
    assert captured.out == "" and "upscale" in captured.err and "3/3" in captured.err
    run_jobs(jobs, read=read, process=invert, write=write, progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# ----------------------------------------------------------------------------- planning


@pytest.fixture
def tree(tmp_path) -> Path:
    """in/a.png, in/B.JPG, in/notes.txt, in/.hidden.png, in/sub/c.png, in/sub/deep/d.webp,
    in/sub/.cache/e.png, in/thumbs/f.png"""
    root = tmp_path / "in"
    for relative in ["a.png", "B.JPG", ".hidden.png", "sub/c.png", "sub/deep/d.webp", "sub/.cache/e.png",
                     "thumbs/f.png"]:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, random_image(len(relative)))
    (root / "notes.txt").write_text("not an image")
    return root


def test_plan_flat_and_recursive_mirror_subfolders(tree, tmp_path):
    out = tmp_path / "out"
    jobs, _ = plan_jobs(tree, out, suffixes=IMAGE_SUFFIXES)
    assert relatives(jobs) == ["B.JPG", "a.png"]
    jobs, _ = plan_jobs(tree, out, suffixes=IMAGE_SUFFIXES, recursive=True)
    assert relatives(jobs) == ["B.JPG", "a.png", "sub/c.png", "sub/deep/d.webp", "thumbs/f.png"]
    for job in jobs:
        assert job.source == tree / job.relative and job.target == out / job.relative
    assert not out.exists()  # planning writes nothing

    report = run_jobs(jobs, read=read, process=invert, write=write, progress=False)
    assert report.exit_code == 0
    assert all_files(out) == relatives(jobs)
    assert_inverted(out / "sub/c.png", read_image(tree / "sub/c.png"))
    lossy = read_image(out / "sub/deep/d.webp") - (1.0 - read_image(tree / "sub/deep/d.webp"))
    assert lossy.abs().mean() < 0.05  # WebP at quality 95 is lossy


def test_include_and_exclude_globs(tree, tmp_path):
    def plan(**kwargs):
        return relatives(plan_jobs(tree, tmp_path / "out", suffixes=IMAGE_SUFFIXES, recursive=True,
                                   **kwargs)[0])

    assert plan(include=["*.png"]) == ["a.png", "sub/c.png", "thumbs/f.png"]
    assert plan(include=["sub/*"]) == ["sub/c.png", "sub/deep/d.webp"]
    assert plan(include=["sub"]) == ["sub/c.png", "sub/deep/d.webp"]  # a folder name
    assert plan(exclude=["thumbs"]) == ["B.JPG", "a.png", "sub/c.png", "sub/deep/d.webp"]
    assert plan(exclude=["sub/deep/*", "*.JPG"]) == ["a.png", "sub/c.png", "thumbs/f.png"]
    assert plan(include=["*.png"], exclude=["c.png"]) == ["a.png", "thumbs/f.png"]
    with pytest.raises(ValueError, match="include"):
        plan(include=[""])


def test_output_suffix_changes_the_extension(tree, tmp_path):
    out = tmp_path / "out"
    jobs, _ = plan_jobs(tree, out, suffixes=IMAGE_SUFFIXES, recursive=True, output_suffix=".png")
    assert [job.target.relative_to(out).as_posix() for job in jobs] == [
        "B.png", "a.png", "sub/c.png", "sub/deep/d.png", "thumbs/f.png"
    ]
    report = run_jobs(jobs, read=read, process=invert, write=write, progress=False)
    assert report.exit_code == 0
    with Image.open(out / "B.png") as im:
        assert im.format == "PNG"
    for bad in ["png", ".", "./x", ".tar.gz"]:
        with pytest.raises(ValueError, match="output_suffix"):
            plan_jobs(tree, out, suffixes=IMAGE_SUFFIXES, output_suffix=bad)
    write_image(tree / "a.jpg", random_image(5))  # a.jpg and a.png would both become a.png
    with pytest.raises(ValueError, match="would both be written"):
        plan_jobs(tree, out, suffixes=IMAGE_SUFFIXES, output_suffix=".png")


def test_single_file_input(tmp_path):
    src = tmp_path / "photo.jpg"
    write_image(src, random_image(3))
    (job,), _ = plan_jobs(src, tmp_path / "result.png", suffixes=IMAGE_SUFFIXES)
    assert job == Job(src, tmp_path / "result.png", "photo.jpg")
    folder = tmp_path / "existing"
    folder.mkdir()
    (job,), _ = plan_jobs(src, folder, suffixes=IMAGE_SUFFIXES, output_suffix=".png")
    assert job.target == folder / "photo.png"
    (job,), _ = plan_jobs(src, tmp_path / "new_folder", suffixes=IMAGE_SUFFIXES)
    assert job.target == tmp_path / "new_folder" / "photo.jpg"
    report = run_jobs([job], read=read, process=invert, write=write, progress=False)
    assert report.exit_code == 0 and (tmp_path / "new_folder" / "photo.jpg").is_file()

    with pytest.raises(ValueError, match="in place"):
        plan_jobs(src, src, suffixes=IMAGE_SUFFIXES)
    with pytest.raises(ValueError, match="in place"):
        plan_jobs(src, tmp_path, suffixes=IMAGE_SUFFIXES)  # tmp_path/photo.jpg is the input
    with pytest.raises(FileNotFoundError, match="missing.png"):
        plan_jobs(tmp_path / "missing.png", tmp_path / "o.png", suffixes=IMAGE_SUFFIXES)
    with pytest.raises(ValueError, match="suffixes"):
        plan_jobs(src, tmp_path / "o.png", suffixes=["png"])


def test_output_folder_inside_or_equal_to_the_input_is_refused(tree, tmp_path):
    with pytest.raises(ValueError, match="is the input folder"):
        plan_jobs(tree, tree, suffixes=IMAGE_SUFFIXES)
    inner = tree / "thumbs"
    with pytest.raises(ValueError, match="inside the recursive input folder"):
        plan_jobs(tree, inner, suffixes=IMAGE_SUFFIXES, recursive=True)
    # not recursive: the output folder is never read
    assert relatives(plan_jobs(tree, inner, suffixes=IMAGE_SUFFIXES)[0]) == ["B.JPG", "a.png"]
    # recursive with the output folder excluded (by name or by a glob), or hidden
    for pattern in ["thumbs", "thumbs/*"]:
        jobs, _ = plan_jobs(tree, inner, suffixes=IMAGE_SUFFIXES, recursive=True, exclude=[pattern])
        assert "thumbs/f.png" not in relatives(jobs) and len(jobs) == 4
    assert len(plan_jobs(tree, tree / ".out", suffixes=IMAGE_SUFFIXES, recursive=True)[0]) == 5
    # an output folder whose mirrored paths land on other inputs
    nested = tmp_path / "x"  # x/x/x/a.png -> x/x/a.png, which is the input x/x/a.png
    (nested / "x" / "x").mkdir(parents=True)
    write_image(nested / "x" / "x" / "a.png", random_image(1))
    write_image(nested / "x" / "a.png", random_image(2))
    with pytest.raises(ValueError, match="overwrite the input file"):
        plan_jobs(nested / "x", nested, suffixes=IMAGE_SUFFIXES, recursive=True)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="must be a folder"):
        plan_jobs(tree, tmp_path / "file.txt", suffixes=IMAGE_SUFFIXES)


# ----------------------------------------------------------------------------- safety


def test_symlinks_and_crafted_names_never_write_outside_the_output_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    write_image(outside / "secret.png", random_image(7))
    write_image(outside / "c.png", random_image(8))
    before = {p.name: p.read_bytes() for p in outside.iterdir()}

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_image(src / "a.png", random_image(1))
    (src / "link.png").symlink_to(outside / "secret.png")  # a symlinked input file: read, written inside
    (src / "linkdir").symlink_to(outside, target_is_directory=True)  # not entered
    crafted = "x\\..\\..\\evil.png"  # backslashes are plain characters of one name on POSIX
    write_image(src / crafted, random_image(2))

    jobs, _ = plan_jobs(src, out, suffixes=IMAGE_SUFFIXES, recursive=True)
    assert relatives(jobs) == ["a.png", "link.png", crafted]
    report = run_jobs(jobs, read=read, process=invert, write=write, progress=False)
    assert report.exit_code == 0
    assert all_files(out) == ["a.png", "link.png", crafted]
    assert {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*")} == {"in", "out", "outside"}
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before
    assert not (out / "link.png").is_symlink()

    # a symlink inside the output folder that points outside it: refused at planning
    (src / "sub").mkdir()
    write_image(src / "sub" / "c.png", random_image(3))
    (out / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="outside the output folder"):
        plan_jobs(src, out, suffixes=IMAGE_SUFFIXES, recursive=True)
    (out / "sub").unlink()
    (out / "a.png").unlink()
    (out / "a.png").symlink_to(outside / "secret.png")
    with pytest.raises(ValueError, match="outside the output folder"):
        plan_jobs(src, out, suffixes=IMAGE_SUFFIXES)
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before

    for relative in ["../evil.png", "sub/../../evil.png", "/tmp/evil.png", ""]:
        with pytest.raises(ValueError):
            safe_target(out, relative)
    assert safe_target(out, "sub2/x.jpg", ".png") == out / "sub2" / "x.png"


# ----------------------------------------------------------------------------- resume and interruption


def test_skip_existing_resumes_only_the_missing_outputs(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    images = make_folder(src, 5)
    jobs, _ = plan_jobs(src, out, suffixes=IMAGE_SUFFIXES, skip_existing=True)
    run_jobs(jobs, read=read, process=invert, write=write, progress=False)
    (out / "img1.png").unlink()
    (out / "img3.png").unlink()
    (out / "img4.png").write_bytes(b"")  # an empty file is not a finished output
    (out / ".img0.png.0123456789ab.tmp").write_bytes(b"partial")  # a temp file is never an output

    seen = []

    def counting_invert(x):
        seen.append(x)
        return invert(x)

    jobs, skipped = plan_jobs(src, out, suffixes=IMAGE_SUFFIXES, skip_existing=True)
    assert relatives(jobs) == ["img1.png", "img3.png", "img4.png"]
    assert relatives(skipped) == ["img0.png", "img2.png"]
    report = run_jobs(jobs, read=read, process=counting_invert, write=write, progress=False, skipped=skipped)
    assert len(seen) == 3
    assert relatives(report.skipped) == ["img0.png", "img2.png"]
    assert report.summary().startswith("3 done, 0 failed, 2 skipped")
    for name, image in images.items():
        assert_inverted(out / name, image)


def test_keyboard_interrupt_leaves_only_complete_outputs(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    images = make_folder(src, 8)
    jobs, _ = plan_jobs(src, out, suffixes=IMAGE_SUFFIXES)
    reads, calls = [], []

    def counting_read(job):
        reads.append(job)
        return read(job)

    def process(x):
        calls.append(x)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return invert(x)

    def slow_write(job, y):  # still writing when the interrupt comes
        time.sleep(0.2)
        write(job, y)

    with pytest.raises(KeyboardInterrupt):
        run_jobs(jobs, read=counting_read, process=process, write=slow_write, prefetch=2, progress=False)
    assert all_files(out) == ["img0.png", "img1.png"]  # no temp files, no partial outputs
    for name in ["img0.png", "img1.png"]:
        assert_inverted(out / name, images[name])
    assert len(reads) <= 3 + 2  # reading stopped: at most `prefetch` files beyond the interrupted one


def test_atomic_write_path_replaces_on_success_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "a.wav"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write_path(target) as temp:
            assert temp.parent == tmp_path and temp.name.startswith(".a.wav.") and temp.suffix == ".wav"
            temp.write_bytes(b"half")
            raise RuntimeError("encoder crashed")
    assert all_files(tmp_path) == ["a.wav"] and target.read_bytes() == b"old"
    with atomic_write_path(target) as temp:
        temp.write_bytes(b"new")
        assert target.read_bytes() == b"old"
    assert all_files(tmp_path) == ["a.wav"] and target.read_bytes() == b"new"
    with pytest.raises(FileNotFoundError, match="did not create"):
        with atomic_write_path(tmp_path / "b.wav"):
            pass
    assert all_files(tmp_path) == ["a.wav"]


def test_sigkill_during_an_atomic_write_leaves_no_partial_target(tmp_path):
    fresh, existing = tmp_path / "fresh.bin", tmp_path / "existing.bin"
    existing.write_bytes(b"complete old output")
    script = textwrap.dedent(
        """
        import sys, time
        from restore.infer.batch import atomic_write_path
        with atomic_write_path(sys.argv[1]) as a, atomic_write_path(sys.argv[2]) as b:
            with open(a, "wb") as fa, open(b, "wb") as fb:
                for i in range(400):  # a large file, written slowly
                    fa.write(b"x" * (1 << 20)); fb.write(b"y" * (1 << 20)); fa.flush(); fb.flush()
                    if i == 2:
                        print("writing", flush=True)
                    time.sleep(0.02)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(fresh), str(existing)], stdout=subprocess.PIPE, cwd=REPO
    )
    try:
        assert process.stdout.readline().strip() == b"writing"
        time.sleep(0.1)
        assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] != []  # temps being written
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    assert not fresh.exists()
    assert existing.read_bytes() == b"complete old output"
    for leftover in tmp_path.iterdir():  # temps may remain, hidden, under their own names
        if leftover not in (existing,):
            assert leftover.name.startswith((".fresh.bin.", ".existing.bin.")) and ".tmp" in leftover.name


# ----------------------------------------------------------------------------- concurrency


def test_reading_overlaps_processing(tmp_path):
    jobs = [Job(Path(f"in{i}"), tmp_path / f"out{i}", f"in{i}") for i in range(10)]
    read_threads, written = set(), []

    def slow_read(job):
        read_threads.add(threading.get_ident())
        time.sleep(0.05)
        return job.relative

    def slow_process(item):
        time.sleep(0.05)
        return item

    start = time.perf_counter()
    report = run_jobs(jobs, read=slow_read, process=slow_process, write=lambda job, r: written.append(r),
                      prefetch=2, progress=False)
    elapsed = time.perf_counter() - start
    assert relatives(report.done) == [job.relative for job in jobs] and sorted(written) == sorted(
        job.relative for job in jobs
    )
    assert threading.get_ident() not in read_threads
    assert elapsed < 0.85, f"10 x (0.05 s read + 0.05 s process) took {elapsed:.2f} s: not overlapped"

    start = time.perf_counter()  # prefetch=0 reads in the calling thread: serial
    run_jobs(jobs, read=slow_read, process=slow_process, write=lambda job, r: None, prefetch=0,
             progress=False)
    assert time.perf_counter() - start >= 1.0
    with pytest.raises(ValueError, match="prefetch"):
        run_jobs(jobs, read=slow_read, process=slow_process, write=lambda job, r: None, prefetch=-1)


# ----------------------------------------------------------------------------- decompression bombs


def huge_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit grayscale PNG of ``width x height`` black pixels: tiny on disk."""
    import struct

    def chunk(tag: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(tag + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", crc)

    rows = (b"\x00" * (1 + (width + 7) // 8)) * 100
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(rows) for _ in range(height // 100)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    return path


def test_decompression_bomb_is_refused_from_the_header_alone(tmp_path, monkeypatch):
    bomb = huge_png(tmp_path / "bomb.png", 20000, 20000)
    assert bomb.stat().st_size < 200_000

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    with monkeypatch.context() as patch:
        patch.setattr(ImageFile.ImageFile, "load", no_decoding)
        with pytest.raises(ImageReadError) as info:
            check_image_pixels(bomb)
        assert info.value.path == str(bomb)
        assert "20000 x 20000 = 400.0 megapixels, above the limit of 179.0 megapixels" in str(info.value)
        assert "--max-pixels" in str(info.value)
        # a higher limit lets it through; the size is read although Pillow's open() refuses it
        assert check_image_pixels(bomb, max_pixels=500_000_000) == (20000, 20000)
        assert check_image_pixels(bomb, max_pixels=None) == (20000, 20000)
    assert MAX_PIXELS == 2 * int(1024 * 1024 * 1024 // 4 // 3)
    # decoding it anyway gives a clean ImageReadError (Pillow's DecompressionBombError), not a crash
    with pytest.raises(ImageReadError, match="too large"):
        read_image(bomb)


def test_pixel_limit_on_ordinary_files_and_bad_headers(tmp_path):
    small = write_image(tmp_path / "small.png", random_image(0, 30, 40))
    assert check_image_pixels(small) == (30, 40)
    assert check_image_pixels(small, max_pixels=1200) == (30, 40)
    with pytest.raises(ImageReadError, match=r"40 x 30 = 0\.0 megapixels, above the limit"):
        check_image_pixels(small, max_pixels=1199)
    (tmp_path / "junk.png").write_bytes(os.urandom(100))
    with pytest.raises(ImageReadError, match="unknown format"):
        check_image_pixels(tmp_path / "junk.png")
    with pytest.raises(ImageReadError, match="not found"):
        check_image_pixels(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="max_pixels"):
        check_image_pixels(small, max_pixels=0)
