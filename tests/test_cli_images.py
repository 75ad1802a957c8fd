"""``restore upscale|inpaint|deblur INPUT OUTPUT`` on files and folders, and ``restore demo``.

The model is compact_tiny with its last convolution zeroed (an exact nearest-neighbour x4 upscaler),
so every output is compared with ``np.repeat`` of its input. Commands run in-process through
``restore.cli.main``; only the killed run needs a subprocess.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import restore.models as models
from restore import api, hub, metrics
from restore.cli import main
from restore.data import sample_names, sample_path
from restore.degrade import imresize
from restore.io import read_image

S = 4


@pytest.fixture(autouse=True)
def isolated(monkeypatch):
    """Empty predictor cache; Pillow's pixel limit (which the commands raise) restored afterwards."""
    api._predictors.clear()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    yield
    api._predictors.clear()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("weights")
    net = models.build("compact_tiny")
    with torch.no_grad():
        net.body[-1].weight.zero_()
        net.body[-1].bias.zero_()
    torch.manual_seed(0)
    lama = models.build("lama_small")
    return {
        "nearest": models.save(net, folder / "nearest_x4.safetensors"),
        "lama_small": models.save(lama, folder / "lama_small.safetensors"),
    }


@pytest.fixture
def nearest(weights) -> str:
    return str(weights["nearest"])


def up(a: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(a, S, axis=0), S, axis=1)


def pixels(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    shape = (h, w) if c == 1 else (h, w, c)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def save_png(path: Path, array: np.ndarray) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        return np.asarray(im)


def good_folder(root: Path) -> dict[str, np.ndarray]:
    """Four good PNGs of different sizes, one in a sub-folder; returns relative name -> pixels."""
    sizes = {"a.png": (10, 12), "b.png": (9, 7), "c.png": (12, 12), "sub/d.png": (8, 11)}
    return {name: save_png(root / name, pixels(h, w, seed=k))
            for k, (name, (h, w)) in enumerate(sizes.items())}


def upscale(*args: str) -> list[str]:
    return ["upscale", *map(str, args), "--no-progress"]


def summary_counts(text: str) -> tuple[int, int, int]:
    match = re.search(r"(\d+) done, (\d+) failed, (\d+) skipped", text)
    assert match, text
    return int(match[1]), int(match[2]), int(match[3])


# -- folders, failures, resume --------------------------------------------------------------------------


def test_folder_with_corrupt_and_truncated_files(tmp_path, nearest, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    images = good_folder(src)
    (src / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    save_png(tmp_path / "whole.png", pixels(48, 48, seed=9))
    data = (tmp_path / "whole.png").read_bytes()
    (src / "truncated.png").write_bytes(data[: len(data) * 2 // 3])

    assert main(upscale(src, out, "--model", nearest, "-r")) == 1
    captured = capsys.readouterr()
    assert summary_counts(captured.err) == (4, 2, 0)
    failures = [line for line in captured.err.splitlines() if line.startswith("  ")]
    assert len(failures) == 2
    assert str(src / "corrupt.png") in failures[0] and "read failed" in failures[0]
    assert str(src / "truncated.png") in failures[1] and "truncated" in failures[1]
    for name, array in images.items():
        np.testing.assert_array_equal(load(out / name), up(array))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(images)


def test_skip_existing_processes_only_missing_outputs(tmp_path, nearest, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    images = good_folder(src)
    assert main(upscale(src, out, "--model", nearest, "-r")) == 0
    assert summary_counts(capsys.readouterr().out) == (4, 0, 0)
    stamps = {name: (out / name).stat().st_mtime_ns for name in images}
    (out / "b.png").unlink()

    assert main(upscale(src, out, "--model", nearest, "-r", "--skip-existing")) == 0
    assert summary_counts(capsys.readouterr().out) == (1, 0, 3)
    np.testing.assert_array_equal(load(out / "b.png"), up(images["b.png"]))
    for name in ("a.png", "c.png", "sub/d.png"):
        assert (out / name).stat().st_mtime_ns == stamps[name], name
    # an empty file (a crash before atomic writes existed) is not a finished output
    (out / "a.png").write_bytes(b"")
    assert main(upscale(src, out, "--model", nearest, "-r", "--skip-existing")) == 0
    assert summary_counts(capsys.readouterr().out) == (1, 0, 3)
    np.testing.assert_array_equal(load(out / "a.png"), up(images["a.png"]))


def test_format_quality_include_exclude(tmp_path, nearest):
    src = tmp_path / "in"
    images = good_folder(src)
    options = ["--model", nearest, "-r", "--format", "jpg", "--quality", "60"]
    assert main(upscale(src, tmp_path / "jpg", *options)) == 0
    reference = tmp_path / "reference.jpg"
    Image.fromarray(up(images["a.png"])).save(reference, quality=60)
    for name, array in images.items():
        target = (tmp_path / "jpg" / name).with_suffix(".jpg")
        with Image.open(target) as im, Image.open(reference) as ref:
            assert im.format == "JPEG" and im.size == (array.shape[1] * S, array.shape[0] * S)
            assert im.quantization == ref.quantization  # the tables of quality 60
    assert not list((tmp_path / "jpg").rglob("*.png"))

    assert main(upscale(src, tmp_path / "some", "--model", nearest, "-r", "--include", "*.png",
                        "--exclude", "b*", "--exclude", "c.png")) == 0
    written = sorted(p.relative_to(tmp_path / "some").as_posix() for p in (tmp_path / "some").rglob("*.png"))
    assert written == ["a.png", "sub/d.png"]
    assert main(upscale(src, tmp_path / "only_sub", "--model", nearest, "-r", "--include", "sub")) == 0
    assert [p.name for p in (tmp_path / "only_sub").rglob("*.png")] == ["d.png"]


def test_png_compression_sets_the_zlib_level_and_keeps_the_pixels(tmp_path, nearest, capsys):
    src = tmp_path / "in"
    smooth = np.repeat(np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None], 30, axis=0).repeat(3, axis=2)
    save_png(src / "a.png", smooth)
    sizes = {}
    for level in ("0", "9"):
        assert main(upscale(src, tmp_path / level, "--model", nearest, "--png-compression", level)) == 0
        out = tmp_path / level / "a.png"
        np.testing.assert_array_equal(load(out), up(smooth))
        sizes[level] = out.stat().st_size
    assert sizes["0"] > 3 * sizes["9"]
    with pytest.raises(SystemExit):
        main(upscale(src, tmp_path / "bad", "--model", nearest, "--png-compression", "10"))
    assert "invalid choice: 10" in capsys.readouterr().err


def test_single_file_to_file_and_to_folder(tmp_path, nearest, capsys):
    array = save_png(tmp_path / "one.png", pixels(7, 9, seed=3))
    assert main(upscale(tmp_path / "one.png", tmp_path / "result" / "big.png", "--model", nearest)) == 0
    np.testing.assert_array_equal(load(tmp_path / "result" / "big.png"), up(array))
    assert main(upscale(tmp_path / "one.png", f"{tmp_path / 'folder'}{os.sep}", "--model", nearest)) == 0
    np.testing.assert_array_equal(load(tmp_path / "folder" / "one.png"), up(array))
    capsys.readouterr()
    assert main(upscale(tmp_path / "one.png", tmp_path / "one.png", "--model", nearest)) == 2
    assert "is the input file itself" in capsys.readouterr().err
    assert main(upscale(tmp_path / "missing", tmp_path / "x", "--model", nearest)) == 2
    assert "input not found" in capsys.readouterr().err


def test_16bit_input_keeps_16_bits_in_png_and_is_reduced_for_jpeg(tmp_path, nearest):
    deep = np.random.default_rng(4).integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    deep[0, 0, 0] = 12345
    (tmp_path / "in").mkdir()
    assert cv2.imwrite(str(tmp_path / "in" / "deep.png"), deep[..., ::-1])
    assert main(upscale(tmp_path / "in", tmp_path / "png", "--model", nearest)) == 0
    written = cv2.imread(str(tmp_path / "png" / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written[..., ::-1], up(deep))
    assert main(upscale(tmp_path / "in", tmp_path / "jpg", "--model", nearest, "--format", "jpg",
                        "--quality", "100")) == 0
    jpeg = load(tmp_path / "jpg" / "deep.jpg").astype(int)
    eight = np.round(up(deep) / 257.0)
    assert np.abs(jpeg - eight).mean() < 2.0  # 8 bits of the 16, up to JPEG's own loss


# -- inpaint ------------------------------------------------------------------------------------------


def test_inpaint_with_one_mask_and_with_a_mask_folder(tmp_path, weights, capsys):
    lama = str(weights["lama_small"])
    src = tmp_path / "in"
    images = {name: save_png(src / name, pixels(24, 32, seed=k)) for k, name in enumerate(("a.png", "b.png"))}
    left = np.zeros((24, 32), dtype=np.uint8)
    left[4:20, 2:14] = 255
    right = np.zeros_like(left)
    right[4:20, 18:30] = 255
    save_png(tmp_path / "mask.png", left)

    assert main(["inpaint", str(src), str(tmp_path / "one"), "--mask", str(tmp_path / "mask.png"),
                 "--model", lama, "--no-progress"]) == 0
    for name, array in images.items():
        out = load(tmp_path / "one" / name)
        np.testing.assert_array_equal(out[left == 0], array[left == 0])
        assert (out[left > 0] != array[left > 0]).mean() > 0.5

    masks = tmp_path / "masks"
    save_png(masks / "a.png", left)
    save_png(masks / "b.png", right)
    save_png(src / "c.png", pixels(24, 32, seed=7))  # no mask for c
    capsys.readouterr()
    assert main(["inpaint", str(src), str(tmp_path / "many"), "--mask", str(masks), "--model", lama,
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert summary_counts(err) == (2, 1, 0)
    assert f"{src / 'c.png'}: read failed: FileNotFoundError: no mask for" in err
    for name, mask in (("a.png", left), ("b.png", right)):
        out = load(tmp_path / "many" / name)
        np.testing.assert_array_equal(out[mask == 0], images[name][mask == 0])
        assert (out[mask > 0] != images[name][mask > 0]).mean() > 0.5
    assert not (tmp_path / "many" / "c.png").exists()


# -- interrupted runs, bombs, symlinks ------------------------------------------------------------------


def test_killed_run_leaves_only_complete_outputs_and_resumes(tmp_path, nearest, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    names = [f"img{k:02d}.png" for k in range(12)]
    images = {name: save_png(src / name, pixels(128, 128, seed=k)) for k, name in enumerate(names)}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "restore", *upscale(src, out, "--model", nearest)]
    with open(tmp_path / "log.txt", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, env=env)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                names = [p.name for p in out.iterdir()] if out.is_dir() else []
                # kill while a later output is being written: its temporary file exists
                if any(not n.startswith(".") for n in names) and any(n.endswith(".tmp") for n in names):
                    break
                time.sleep(0.002)
            assert process.poll() is None, (tmp_path / "log.txt").read_text()
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
    visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert 1 <= len(visible) < len(images)  # killed mid-way
    for name in visible:  # every visible file decodes completely, with the right pixels
        np.testing.assert_array_equal(load(out / name), up(images[name]))
    hidden = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert hidden and all(name.endswith(".tmp") for name in hidden), hidden  # killed during a write

    assert main(upscale(src, out, "--model", nearest, "--skip-existing")) == 0
    done, failed, skipped = summary_counts(capsys.readouterr().out)
    assert (done, failed, skipped) == (len(images) - len(visible), 0, len(visible))
    for name, array in images.items():
        np.testing.assert_array_equal(load(out / name), up(array))


def huge_png(path: Path, width: int, height: int) -> Path:
    """A 1-bit all-black PNG of ``width x height`` pixels in a few kilobytes (a decompression bomb)."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row * 100) for _ in range(height // 100)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    return path


def test_decompression_bomb_is_refused_and_listed(tmp_path, nearest, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    images = good_folder(src)
    bomb = huge_png(src / "bomb.png", 20000, 20000)
    assert bomb.stat().st_size < 200_000
    started = time.perf_counter()
    assert main(upscale(src, out, "--model", nearest, "-r")) == 1
    assert time.perf_counter() - started < 20  # refused from the header, never decoded
    err = capsys.readouterr().err
    assert summary_counts(err) == (4, 1, 0)
    assert f"{bomb}: read failed: image is 20000 x 20000 = 400.0 megapixels, above the limit of 179.0" in err
    assert "--max-pixels" in err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(images)
    # a lower limit refuses ordinary images too (12 x 12 = 144 pixels > 100)
    assert main(upscale(src, tmp_path / "tiny", "--model", nearest, "--max-pixels", "0.0001",
                        "--include", "c.png")) == 1
    assert "above the limit of 0.0 megapixels" in capsys.readouterr().err


def test_symlinks_never_lead_outputs_outside_the_output_folder(tmp_path, nearest, capsys):
    src, out, outside = tmp_path / "in", tmp_path / "out", tmp_path / "outside"
    a = save_png(src / "a.png", pixels(6, 6, seed=1))
    linked = save_png(outside / "x.png", pixels(5, 7, seed=2))
    save_png(outside / "dir" / "y.png", pixels(5, 5, seed=3))
    (src / "link.png").symlink_to(outside / "x.png")
    (src / "linkdir").symlink_to(outside / "dir", target_is_directory=True)
    before = {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}

    assert main(upscale(src, out, "--model", nearest, "-r")) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["a.png", "link.png"]
    assert not (out / "link.png").is_symlink()
    np.testing.assert_array_equal(load(out / "a.png"), up(a))
    np.testing.assert_array_equal(load(out / "link.png"), up(linked))
    assert {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()} == before

    # a symlink inside the output folder pointing outside is refused before anything is written
    save_png(src / "sub" / "e.png", pixels(4, 4, seed=4))
    escape = tmp_path / "escape"
    escape.mkdir()
    (out / "sub").symlink_to(escape, target_is_directory=True)
    capsys.readouterr()
    assert main(upscale(src, out, "--model", nearest, "-r")) == 2
    assert "refusing to write" in capsys.readouterr().err
    assert list(escape.iterdir()) == []


# -- demo -------------------------------------------------------------------------------------------


def test_demo_writes_comparisons_and_true_psnr(tmp_path, monkeypatch, nearest, capsys):
    monkeypatch.setattr(hub, "WEIGHTS_DIR", tmp_path / "weights")
    (tmp_path / "weights").mkdir()
    shutil.copy(nearest, tmp_path / "weights" / "sr_x4.safetensors")
    out = tmp_path / "demo"
    assert main(["demo", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    rows = {m[1]: (float(m[2]), float(m[3]))
            for m in re.finditer(r"^\s+(\S+)\s+bicubic\s+([\d.]+) dB\s+model\s+([\d.]+) dB$", text, re.M)}
    names = sample_names()
    assert set(rows) == set(names)
    for name in names:
        clean = read_image(sample_path(name))[None]
        h, w = (s // S * S for s in clean.shape[-2:])
        clean = clean[..., :h, :w]
        small = imresize(clean, scale=1 / S).clamp(0, 1)
        expected_model = float(metrics.psnr(F.interpolate(small, scale_factor=S, mode="nearest"), clean,
                                             crop_border=S, y_channel=True)[0])
        expected_bicubic = float(metrics.psnr(imresize(small, scale=S).clamp(0, 1), clean, crop_border=S,
                                              y_channel=True)[0])
        bicubic, model = rows[name]
        assert abs(model - expected_model) <= 0.006, name
        assert abs(bicubic - expected_bicubic) <= 0.006, name
        assert model < bicubic, name  # nearest neighbour is worse than bicubic on every photo

        restored = load(out / f"{name}_x4.png")
        compare = load(out / f"{name}_compare.png")
        assert restored.shape == (h, w, 3)
        assert compare.shape == (h, 4 * w, 3)
        np.testing.assert_array_equal(compare[:, 2 * w : 3 * w], restored)  # panel 3: the model
        np.testing.assert_array_equal(compare[:, :w], restored)  # panel 1 (nearest input) = nearest model
        np.testing.assert_array_equal(compare[:, 3 * w :], load(sample_path(name))[:h, :w, :3])
    mean = re.search(r"mean\s+bicubic\s+([\d.]+) dB\s+model\s+([\d.]+) dB", text)
    assert mean and abs(float(mean[2]) - np.mean([rows[n][1] for n in names])) <= 0.006


def test_demo_without_bundled_weights_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(hub, "WEIGHTS_DIR", tmp_path)
    assert main(["demo", str(tmp_path / "demo")]) == 2
    assert "bundled model 'sr-x4'" in capsys.readouterr().err
