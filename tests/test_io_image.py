"""Image reading/writing: exact 8/16-bit round trips checked against independent decoders (Pillow,
OpenCV), grayscale/palette/alpha handling, EXIF orientation against PIL.ImageOps.exif_transpose,
errors that name the file, and atomic writes."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import restore.io.image as image_module
from restore.io import (
    IMAGE_SUFFIXES,
    ImageReadError,
    image_size,
    list_images,
    read_image,
    read_image_with_alpha,
    write_image,
)
from restore.io.image import read_icc_profile


def random_levels(shape: tuple[int, ...], levels: int, seed: int = 0) -> torch.Tensor:
    """Float tensor whose values are exactly k / levels."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, levels + 1, shape, generator=gen).float() / levels


def to_chw(array: np.ndarray, full: float) -> torch.Tensor:
    array = array[..., None] if array.ndim == 2 else array
    return torch.from_numpy(array.astype(np.float32) / full).permute(2, 0, 1)


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_8bit_png_round_trip_is_exact_and_matches_pillow(tmp_path, channels):
    x = random_levels((channels, 21, 34), 255, seed=channels)
    path = write_image(tmp_path / "x.png", x)
    y = read_image(path, mode="keep", alpha=True)
    assert y.dtype == torch.float32 and torch.equal(y, x)
    assert torch.equal(to_chw(np.asarray(Image.open(path)), 255.0), x)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_png_round_trip_is_exact_and_matches_an_independent_decoder(tmp_path, channels):
    x = random_levels((channels, 19, 27), 65535, seed=channels)
    path = write_image(tmp_path / "x.png", x, bit_depth=16)
    assert torch.equal(read_image(path, mode="keep", alpha=True), x)
    reference = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # OpenCV: BGR(A) order, uint16
    assert reference.dtype == np.uint16
    if channels == 3:
        reference = reference[..., ::-1]
    elif channels == 4:
        reference = reference[..., [2, 1, 0, 3]]
    if channels != 2:  # OpenCV expands gray+alpha; the others compare directly
        assert torch.equal(to_chw(np.ascontiguousarray(reference), 65535.0), x)
    if channels == 1:
        assert torch.equal(to_chw(np.asarray(Image.open(path)), 65535.0), x)


def test_16bit_files_from_another_encoder_keep_all_16_bits(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 65536, (9, 13, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb[..., ::-1])
    assert torch.equal(read_image(tmp_path / "rgb16.png"), to_chw(rgb, 65535.0))
    # a dark 16-bit image (all values < 256) is still scaled by 65535: depth from the file, not the values
    dark = np.random.default_rng(1).integers(0, 256, (9, 13), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "dark16.png"), dark)
    y = read_image(tmp_path / "dark16.png", mode="keep")
    assert torch.equal(y, to_chw(dark, 65535.0)) and y.max().item() < 256 / 65535 + 1e-9
    # and a bright-looking 8-bit image is scaled by 255
    cv2.imwrite(str(tmp_path / "dark8.png"), dark.astype(np.uint8))
    assert torch.equal(read_image(tmp_path / "dark8.png", mode="keep"), to_chw(dark.astype(np.uint8), 255.0))


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_torchvision_fallback_decodes_16bit_colour_png_identically(tmp_path, monkeypatch, channels):
    x = random_levels((channels, 11, 14), 65535, seed=10 + channels)
    path = write_image(tmp_path / "x.png", x, bit_depth=16)
    assert image_module._decode_png16_with_pillow(path) is not None
    monkeypatch.setattr(image_module, "_decode_png16_with_pillow", lambda path: None)
    assert torch.equal(read_image(path, mode="keep", alpha=True), x)


def test_16bit_rgb_tiff_is_read_at_full_depth(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    rgb = np.random.default_rng(2).integers(0, 65536, (7, 11, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "x.tif", rgb, photometric="rgb")
    assert torch.equal(read_image(tmp_path / "x.tif"), to_chw(rgb, 65535.0))


@pytest.mark.parametrize("suffix", [".bmp", ".tif", ".tiff", ".webp"])
def test_lossless_formats_round_trip_exactly(tmp_path, suffix):
    x = random_levels((3, 16, 24), 255, seed=3)
    path = write_image(tmp_path / f"x{suffix}", x, quality=100)  # WebP quality 100 = lossless
    assert torch.equal(read_image(path), x)


def test_jpeg_quality_controls_size_and_error(tmp_path, natural_pair):
    clean = natural_pair[0][0]
    errors, sizes = [], []
    for quality in (20, 95):
        path = write_image(tmp_path / f"q{quality}.jpg", clean, quality=quality)
        errors.append((read_image(path) - clean).abs().mean().item())
        sizes.append(path.stat().st_size)
    assert errors[1] < errors[0] / 2 and errors[1] < 0.01
    assert sizes[1] > sizes[0]


def test_write_rounds_and_clamps(tmp_path):
    k = torch.arange(0, 250, dtype=torch.float32).reshape(10, 25)
    x = torch.stack([(k + 0.4) / 255, (k + 0.6) / 255, k / 255 - 2.0])
    x[2, 0, 0] = 7.0
    y = read_image(write_image(tmp_path / "r.png", x[None]), mode="keep")
    assert torch.equal(y[0], k / 255)
    assert torch.equal(y[1], (k + 1) / 255)
    expected_clamped = torch.zeros(10, 25)
    expected_clamped[0, 0] = 1.0
    assert torch.equal(y[2], expected_clamped)


def test_written_file_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = write_image(tmp_path / "p.png", torch.zeros(3, 4, 4))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


# ----------------------------------------------------------------------------- modes and alpha


def test_grayscale_is_replicated_to_rgb_or_kept(tmp_path):
    gray = np.random.default_rng(3).integers(0, 256, (12, 17), dtype=np.uint8)
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    rgb = read_image(tmp_path / "g.png")
    kept = read_image(tmp_path / "g.png", mode="keep")
    assert rgb.shape == (3, 12, 17) and kept.shape == (1, 12, 17)
    assert torch.equal(kept[0], torch.from_numpy(gray).float() / 255)
    assert torch.equal(rgb, kept.expand(3, -1, -1))
    Image.fromarray(gray > 128).save(tmp_path / "b.png")  # 1-bit
    assert torch.equal(read_image(tmp_path / "b.png", mode="keep")[0], torch.from_numpy(gray > 128).float())
    with pytest.raises(ValueError, match="mode"):
        read_image(tmp_path / "g.png", mode="BGR")


def test_palette_images_become_rgb_and_keep_transparency_as_alpha(tmp_path):
    palette = np.array([[255, 0, 0], [0, 128, 255], [10, 20, 30]], np.uint8)
    index = np.random.default_rng(4).integers(0, 3, (8, 9), dtype=np.uint8)
    im = Image.fromarray(index, mode="P")
    im.putpalette(palette.flatten().tolist())
    im.save(tmp_path / "p.png")
    expected = torch.from_numpy(palette[index].astype(np.float32) / 255).permute(2, 0, 1)
    assert torch.equal(read_image(tmp_path / "p.png", mode="keep"), expected)
    im.save(tmp_path / "pt.png", transparency=1)
    color, alpha = read_image_with_alpha(tmp_path / "pt.png")
    assert torch.equal(color, expected)
    assert torch.equal(alpha[0], torch.from_numpy(index != 1).float())


def test_rgba_alpha_is_dropped_or_returned(tmp_path):
    rgba = random_levels((4, 10, 12), 255, seed=5)
    path = write_image(tmp_path / "a.png", rgba)
    assert torch.equal(read_image(path), rgba[:3])
    assert torch.equal(read_image(path, alpha=True), rgba)
    color, alpha = read_image_with_alpha(path)
    assert torch.equal(color, rgba[:3]) and torch.equal(alpha, rgba[3:])
    assert read_image_with_alpha(write_image(tmp_path / "n.png", rgba[:3]))[1] is None
    # alpha passed separately to write_image, and gray + alpha
    assert torch.equal(read_image(write_image(tmp_path / "s.png", rgba[:3], alpha=rgba[3]), alpha=True), rgba)
    la = read_image_with_alpha(write_image(tmp_path / "la.png", rgba[:1], alpha=rgba[3:]), mode="keep")
    assert torch.equal(la[0], rgba[:1]) and torch.equal(la[1], rgba[3:])
    with pytest.raises(ValueError, match="JPEG has no alpha"):
        write_image(tmp_path / "a.jpg", rgba)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_exif_transpose(tmp_path, orientation):
    pixels = np.random.default_rng(orientation).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.jpg"
    Image.fromarray(pixels).save(path, quality=100, exif=exif)
    with Image.open(path) as im:
        assert im.getexif()[0x0112] == orientation
        reference = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    y = read_image(path)
    assert torch.equal(y, to_chw(reference, 255.0))
    assert image_size(path) == tuple(y.shape[-2:]) == ((40, 24) if orientation >= 5 else (24, 40))


def test_orientation_applies_to_16bit_png_decoded_outside_pillow(tmp_path):
    rgb = np.random.default_rng(6).integers(0, 65536, (6, 10, 3), dtype=np.uint16)
    path = write_image(tmp_path / "x.png", to_chw(rgb, 65535.0), bit_depth=16)
    # add an eXIf chunk (orientation 6: rotate 90 clockwise) before IEND
    exif = Image.Exif()
    exif[0x0112] = 6
    body = exif.tobytes()
    import struct
    import zlib

    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    data = path.read_bytes()
    path.write_bytes(data[:-12] + chunk + data[-12:])
    y = read_image(path)
    assert torch.equal(y, torch.rot90(to_chw(rgb, 65535.0), -1, dims=(1, 2)))


# ----------------------------------------------------------------------------- errors


def test_missing_not_an_image_and_folder_give_image_read_error_naming_the_file(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(ImageReadError, match="not found") as info:
        read_image(missing)
    assert str(missing) in str(info.value) and info.value.path == str(missing)
    assert isinstance(info.value, OSError)
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    with pytest.raises(ImageReadError, match="not a recognised image") as info:
        read_image(text)
    assert "notes.png" in str(info.value)
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)
    with pytest.raises(ImageReadError, match="not found"):
        image_size(missing)
    error = pickle.loads(pickle.dumps(info.value))
    assert isinstance(error, ImageReadError) and error.path == str(text) and str(error) == str(info.value)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_files_give_image_read_error_naming_the_file(tmp_path, suffix, natural_pair):
    path = write_image(tmp_path / f"full{suffix}", natural_pair[0][0, :, :64, :64])
    data = path.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated or corrupt") as info:
        read_image(cut)
    assert str(cut) in str(info.value)
    garbled = tmp_path / f"garbled{suffix}"
    garbled.write_bytes(data[:40] + bytes(255 - b for b in data[40:]))
    with pytest.raises(ImageReadError, match="garbled"):
        read_image(garbled)


def test_write_validates_its_arguments(tmp_path):
    x = torch.rand(3, 8, 8)
    with pytest.raises(ValueError, match="suffix"):
        write_image(tmp_path / "x.gifx", x)
    with pytest.raises(ValueError, match="bit_depth=16 is supported for PNG only"):
        write_image(tmp_path / "x.jpg", x, bit_depth=16)
    with pytest.raises(ValueError, match="bit_depth"):
        write_image(tmp_path / "x.png", x, bit_depth=12)
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "x.png", torch.full((3, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="one image"):
        write_image(tmp_path / "x.png", torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="channels"):
        write_image(tmp_path / "x.png", torch.rand(5, 8, 8))
    with pytest.raises(ValueError, match="floating-point"):
        write_image(tmp_path / "x.png", torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="quality"):
        write_image(tmp_path / "x.jpg", x, quality=0)
    with pytest.raises(FileNotFoundError, match="output folder"):
        write_image(tmp_path / "no" / "x.png", x)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- atomic writes


def test_a_failing_encoder_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    write_image(target, torch.zeros(3, 8, 8))
    before = target.read_bytes()

    def broken_save(self, fp, format=None, **params):
        fp.write(b"\x89PNG partial data")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="simulated"):
        write_image(target, torch.ones(3, 8, 8))
    with pytest.raises(OSError, match="simulated"):
        write_image(tmp_path / "new.png", torch.ones(3, 8, 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temp files, no new.png
    assert target.read_bytes() == before


def test_a_failing_rename_leaves_no_temporary_file(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError("rename failed (simulated)")

    monkeypatch.setattr(image_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated"):
        write_image(tmp_path / "x16.png", torch.rand(3, 8, 8), bit_depth=16)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- listing


def test_list_images_is_sorted_case_insensitive_and_skips_hidden_and_other_files(tmp_path):
    for name in ["b.PNG", "a.jpg", "c.JPEG", "notes.txt", ".hidden.png", "d.webp"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.tif").write_bytes(b"")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "f.png").write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.JPEG", "d.webp"]
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)] == [
        "a.jpg",
        "b.PNG",
        "c.JPEG",
        "d.webp",
        "sub/e.tif",
    ]
    assert ".png" in IMAGE_SUFFIXES and ".jpg" in IMAGE_SUFFIXES
    with pytest.raises(FileNotFoundError, match="missing"):
        list_images(tmp_path / "missing")
    with pytest.raises(NotADirectoryError):
        list_images(tmp_path / "a.jpg")


def test_import_restore_io_does_not_import_heavy_optional_packages():
    import subprocess
    import sys

    code = (
        "import sys, restore.io, restore.data, restore.degrade.masks; "
        "print(sorted(m for m in ('torchvision', 'kornia', 'cv2', 'spandrel') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_sizes_of_paths_given_as_strings(tmp_path):
    path = write_image(str(tmp_path / "s.png"), torch.rand(3, 5, 7))
    assert isinstance(path, Path) and image_size(str(path)) == (5, 7)


# ----------------------------------------------------------------------------- ICC profiles


def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize(
    "suffix, bit_depth", [(".png", 8), (".png", 16), (".jpg", 8), (".webp", 8), (".tif", 8)]
)
def test_icc_profile_is_embedded_and_read_back(tmp_path, suffix, bit_depth):
    icc = _srgb_profile()
    x = random_levels((3, 12, 10), 2**bit_depth - 1, seed=bit_depth)
    path = write_image(tmp_path / f"x{suffix}", x, bit_depth=bit_depth, icc_profile=icc)
    assert read_icc_profile(path) == icc
    with Image.open(path) as im:  # Pillow finds it too (iCCP chunk, APP2 marker, ICCP chunk, tag 34675)
        assert im.info["icc_profile"] == icc
    if suffix in (".png", ".tif"):  # lossless: the pixels are untouched by the profile
        assert torch.equal(read_image(path), x)
    if bit_depth == 16:
        reference = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1]
        assert torch.equal(to_chw(np.ascontiguousarray(reference), 65535.0), x)


def test_16bit_png_icc_profile_is_a_named_zlib_iccp_chunk_before_the_data(tmp_path):
    import struct
    import zlib

    icc = _srgb_profile()
    data = write_image(tmp_path / "x.png", torch.rand(1, 5, 6), bit_depth=16, icc_profile=icc).read_bytes()
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(tag + body)
        chunks.append((tag, body))
        pos += 12 + length
    assert [tag for tag, _ in chunks] == [b"IHDR", b"iCCP", b"IDAT", b"IEND"]
    name, rest = chunks[1][1].split(b"\x00", 1)
    assert name == b"ICC profile" and rest[0] == 0 and zlib.decompress(rest[1:]) == icc


def test_icc_profile_absent_invalid_or_unsupported(tmp_path):
    path = write_image(tmp_path / "plain.png", torch.rand(3, 4, 4))
    assert read_icc_profile(path) is None
    assert read_icc_profile(write_image(tmp_path / "plain16.png", torch.rand(3, 4, 4), bit_depth=16)) is None
    with pytest.raises(ValueError, match="BMP cannot carry an ICC profile"):
        write_image(tmp_path / "x.bmp", torch.rand(3, 4, 4), icc_profile=_srgb_profile())
    with pytest.raises(ValueError, match="icc_profile must be non-empty bytes"):
        write_image(tmp_path / "x.png", torch.rand(3, 4, 4), icc_profile="sRGB")
    with pytest.raises(ValueError, match="icc_profile must be non-empty bytes"):
        write_image(tmp_path / "x.png", torch.rand(3, 4, 4), icc_profile=b"")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.png", "plain16.png"]
    with pytest.raises(ImageReadError, match="not found"):
        read_icc_profile(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ImageReadError, match="not a recognised image"):
        read_icc_profile(tmp_path / "notes.png")


# ----------------------------------------------------------------------------- integer arrays


@pytest.mark.parametrize("shape", [(7, 9), (7, 9, 1), (7, 9, 2), (7, 9, 3), (7, 9, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_write_array_round_trips_exactly_as_opencv_reads_it(tmp_path, shape, dtype):
    from restore.io import write_array

    gen = np.random.default_rng(0)
    array = gen.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)
    path = write_array(tmp_path / "a.png", array)
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    expected = array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array
    if expected.ndim == 3 and expected.shape[2] >= 3:  # OpenCV gives BGR(A)
        decoded = decoded[..., [2, 1, 0, 3][: expected.shape[2]]]
    if expected.ndim == 3 and expected.shape[2] == 2:  # OpenCV has no gray+alpha: compare with Pillow
        decoded = np.asarray(Image.open(path).convert("LA")) if dtype == np.uint8 else expected
    assert decoded.dtype == dtype
    np.testing.assert_array_equal(decoded, expected)


def test_write_array_equals_write_image_of_the_same_levels(tmp_path):
    from restore.io import write_array

    image = random_levels((3, 10, 12), 255)
    float_path = write_image(tmp_path / "f.jpg", image, quality=90)
    array = (image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    array_path = write_array(tmp_path / "a.jpg", array, quality=90)
    assert float_path.read_bytes() == array_path.read_bytes()


def test_png_compression_trades_size_for_speed_with_identical_pixels(tmp_path, natural_pair):
    from restore.infer.image_commands import PNG_COMPRESSION
    from restore.io import write_array
    from restore.io.image import DEFAULT_PNG_COMPRESSION

    assert DEFAULT_PNG_COMPRESSION == PNG_COMPRESSION == 1  # OpenCV's default; the CLI's mirrors it
    clean = (natural_pair[0][0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    sizes = {}
    for level in (0, 1, 9):
        path = write_array(tmp_path / f"l{level}.png", clean, png_compression=level)
        np.testing.assert_array_equal(np.asarray(Image.open(path)), clean)
        sizes[level] = path.stat().st_size
    assert sizes[0] > sizes[1] > sizes[9]
    assert write_array(tmp_path / "d.png", clean).stat().st_size == sizes[1]
    sixteen = write_image(tmp_path / "s.png", natural_pair[0][0], bit_depth=16, png_compression=9)
    assert torch.equal(read_image(sixteen), (natural_pair[0][0] * 65535).round() / 65535)


def test_write_array_validates_its_arguments(tmp_path):
    from restore.io import write_array

    rgb = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(TypeError, match="uint8 or uint16 numpy array, got float32"):
        write_array(tmp_path / "a.png", rgb.astype(np.float32))
    with pytest.raises(ValueError, match=r"C in 1..4, not empty; got \(4, 5, 5\)"):
        write_array(tmp_path / "a.png", np.zeros((4, 5, 5), np.uint8))
    with pytest.raises(ValueError, match="not empty"):
        write_array(tmp_path / "a.png", np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="bit_depth=16 is supported for PNG only"):
        write_array(tmp_path / "a.jpg", rgb.astype(np.uint16))
    with pytest.raises(ValueError, match="png_compression must be an int in 0..9, got 10"):
        write_array(tmp_path / "a.png", rgb, png_compression=10)
    with pytest.raises(ValueError, match="JPEG has no alpha"):
        write_array(tmp_path / "a.jpg", np.zeros((4, 5, 4), np.uint8))
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        write_array(tmp_path / "missing" / "a.png", rgb)
    assert list(tmp_path.iterdir()) == []
