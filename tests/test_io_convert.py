"""API input/output conversion: every kind (path, PIL, numpy, tensor) round-trips bit-exactly through
to_model_input -> from_model_output, keeps dtype/layout/mode/alpha/ICC, resizes alpha like OpenCV's
bicubic, turns gray back with BT.601 luma as Pillow does, and refuses bad input with clear messages."""

from __future__ import annotations

import struct
import subprocess
import sys
import warnings
import zlib

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageOps

from restore.io import quantise
from restore.io.convert import (
    ImageInput,
    from_model_output,
    resize_alpha,
    rgb_to_gray,
    save_like,
    to_model_input,
)
from restore.io.image import ImageReadError, read_icc_profile, read_image, write_image

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
LAB = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()


def pixels(shape: tuple[int, ...], dtype=np.uint8, seed: int = 0) -> np.ndarray:
    """Random pixels over the full range of ``dtype`` (floats: [0, 1])."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def identity(source: ImageInput):
    return from_model_output(source.rgb, source)


def upscale2(x: torch.Tensor) -> torch.Tensor:
    """A stand-in x2 model: nearest-neighbour repeat."""
    return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def repeat2(array: np.ndarray) -> np.ndarray:
    return array.repeat(2, axis=0).repeat(2, axis=1)


def cv2_bicubic_alpha(alpha: np.ndarray, size: tuple[int, int], full: float) -> np.ndarray:
    """Reference for the resized alpha: OpenCV INTER_CUBIC on [0, 1] floats, clipped, quantised."""
    scaled = cv2.resize(alpha.astype(np.float32) / full, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    return np.round(np.clip(scaled, 0, 1) * full)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


# ----------------------------------------------------------------------------- paths


def test_path_8bit_rgb_png_gives_numpy_and_saves_back_identically(tmp_path):
    rgb = pixels((12, 17, 3), seed=1)
    Image.fromarray(rgb).save(tmp_path / "in.png")
    for given in (tmp_path / "in.png", str(tmp_path / "in.png")):
        source = to_model_input(given)
        assert (source.kind, source.bit_depth, source.gray, source.pil_mode) == ("path", 8, False, "RGB")
        assert source.path == tmp_path / "in.png" and source.rgb.shape == (1, 3, 12, 17)
        result = identity(source)
        assert result.dtype == np.uint8 and result.shape == (12, 17, 3)
        np.testing.assert_array_equal(result, rgb)
    out = save_like(result, tmp_path / "out.png", source)
    with Image.open(out) as im:
        assert im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), rgb)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_path_16bit_png_stays_16bit(tmp_path, channels):
    array = pixels((9, 14, channels), np.uint16, seed=channels)
    path = tmp_path / "in16.png"
    if channels in (1, 3, 4):  # written by OpenCV (BGR order): an encoder independent of ours
        bgr = array if channels == 1 else array[..., [2, 1, 0, 3][:channels]]
        cv2.imwrite(str(path), np.ascontiguousarray(bgr))
    else:  # OpenCV cannot write gray+alpha; use ours
        write_image(path, torch.from_numpy(array.astype(np.float32) / 65535).permute(2, 0, 1), bit_depth=16)
    source = to_model_input(path)
    assert source.bit_depth == 16 and source.dtype == np.uint16
    assert source.gray == (channels <= 2) and (source.alpha is not None) == (channels in (2, 4))
    result = identity(source)
    expected = array[..., 0] if channels == 1 else array
    assert result.dtype == np.uint16 and result.shape == expected.shape
    np.testing.assert_array_equal(result, expected)
    out = save_like(result, tmp_path / "out.png", source)
    assert out.read_bytes()[24] == 16  # IHDR bit depth
    np.testing.assert_array_equal(identity(to_model_input(out)), expected)
    if channels != 2:
        reference = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(reference, cv2.imread(str(path), cv2.IMREAD_UNCHANGED))


def test_path_gray_png_gives_a_2d_array(tmp_path):
    gray = pixels((10, 11), seed=3)
    Image.fromarray(gray).save(tmp_path / "g.png")
    source = to_model_input(tmp_path / "g.png")
    assert source.gray and source.layout == "HW" and source.alpha is None
    assert torch.equal(source.rgb[0, 0], source.rgb[0, 2])  # replicated for the model
    result = identity(source)
    assert result.dtype == np.uint8 and result.shape == (10, 11)
    np.testing.assert_array_equal(result, gray)
    with Image.open(save_like(result, tmp_path / "g_out.png", source)) as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), gray)


def test_path_rgba_png_keeps_alpha_and_upscales_it_separately(tmp_path):
    rgba = pixels((8, 10, 4), seed=4)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    source = to_model_input(tmp_path / "a.png")
    assert source.rgb.shape == (1, 3, 8, 10) and source.alpha.shape == (1, 1, 8, 10)
    np.testing.assert_array_equal(identity(source), rgba)
    result = from_model_output(upscale2(source.rgb), source)
    assert result.shape == (16, 20, 4) and result.dtype == np.uint8
    np.testing.assert_array_equal(result[..., :3], repeat2(rgba[..., :3]))
    reference = cv2_bicubic_alpha(rgba[..., 3], (16, 20), 255.0)
    assert np.abs(result[..., 3].astype(int) - reference).max() <= 1
    out = save_like(result, tmp_path / "a2.png", source)
    with Image.open(out) as im:
        assert im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im), result)


def test_path_jpeg_with_exif_orientation_6_is_rotated(tmp_path):
    rgb = pixels((16, 24, 3), seed=5)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "o.jpg"
    Image.fromarray(rgb).save(path, quality=95, exif=exif)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im))
    source = to_model_input(path)
    assert source.size == (24, 16)
    result = identity(source)
    assert result.shape == (24, 16, 3) == expected.shape
    np.testing.assert_array_equal(result, expected)
    with Image.open(save_like(result, tmp_path / "o_out.png", source)) as im:
        assert 0x0112 not in im.getexif()  # upright pixels, no orientation tag to apply twice
        np.testing.assert_array_equal(np.asarray(im), expected)


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_path_png_with_an_icc_profile_keeps_the_bytes(tmp_path, bit_depth):
    rgb = pixels((7, 9, 3), np.uint8 if bit_depth == 8 else np.uint16, seed=6)
    path = tmp_path / "icc.png"
    if bit_depth == 8:
        Image.fromarray(rgb).save(path, icc_profile=SRGB)
    else:
        x = torch.from_numpy(rgb / 65535.0).float().permute(2, 0, 1)
        write_image(path, x, bit_depth=16, icc_profile=SRGB)
    source = to_model_input(path)
    assert source.icc_profile == SRGB
    result = identity(source)
    np.testing.assert_array_equal(result, rgb)
    out = save_like(result, tmp_path / "icc_out.png", source)
    assert read_icc_profile(out) == SRGB
    np.testing.assert_array_equal(identity(to_model_input(out)), rgb)
    eight_bit = result if bit_depth == 8 else (result // 257).astype(np.uint8)
    jpeg = save_like(eight_bit, tmp_path / "icc_out.jpg", source)
    assert read_icc_profile(jpeg) == SRGB


def test_missing_paths_and_urls_give_image_read_error(tmp_path):
    with pytest.raises(ImageReadError, match="file not found"):
        to_model_input(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="file not found"):
        to_model_input(str(tmp_path / "missing.png"))
    with pytest.raises(ImageReadError, match="URLs are not downloaded"):
        to_model_input("https://example.com/cat.png")
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ImageReadError, match="not a recognised image"):
        to_model_input(tmp_path / "notes.png")


# ----------------------------------------------------------------------------- PIL images


def pil_image(mode: str, seed: int = 0) -> Image.Image:
    h, w = 9, 13
    if mode in ("L", "LA", "RGB", "RGBA"):
        channels = len(mode)
        array = pixels((h, w, channels), seed=seed)
        return Image.fromarray(array[..., 0] if channels == 1 else array)
    if mode in ("I;16", "I;16B"):
        array = pixels((h, w), np.uint16, seed=seed)
        return Image.frombytes(mode, (w, h), array.astype("<u2" if mode == "I;16" else ">u2").tobytes())
    if mode == "I":
        return Image.fromarray(pixels((h, w), np.uint16, seed=seed).astype(np.int32))
    if mode == "F":
        return Image.fromarray(pixels((h, w), np.float32, seed=seed))
    if mode == "1":
        return Image.fromarray(pixels((h, w), seed=seed)).convert("1")
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16", "I;16B", "I", "F"])
def test_pil_round_trip_keeps_mode_values_and_icc(mode):
    im = pil_image(mode, seed=len(mode))
    im.info["icc_profile"] = SRGB
    source = to_model_input(im)
    assert source.kind == "pil" and source.pil_mode == mode
    assert source.bit_depth == {"I;16": 16, "I;16B": 16, "I": 16, "F": 32}.get(mode, 8)
    assert source.gray == (mode not in ("RGB", "RGBA")) and (source.alpha is not None) == mode.endswith("A")
    result = identity(source)
    assert isinstance(result, Image.Image) and result.mode == mode and result.size == im.size
    assert result.info["icc_profile"] == SRGB
    if mode == "F":
        np.testing.assert_allclose(np.asarray(result), np.asarray(im), rtol=0, atol=1e-6)
    else:
        np.testing.assert_array_equal(np.asarray(result), np.asarray(im))


def test_pil_palette_becomes_rgba_with_transparency_and_rgb_without():
    base = Image.fromarray(pixels((10, 12, 3), seed=7)).quantize(colors=16)
    transparent = base.copy()
    transparent.info["transparency"] = 3  # palette index 3 is fully transparent
    source = to_model_input(transparent)
    assert source.alpha is not None and source.pil_mode == "P"
    result = identity(source)
    assert result.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(result), np.asarray(transparent.convert("RGBA")))
    assert (np.asarray(result)[..., 3] == 0).any() and (np.asarray(result)[..., 3] == 255).any()
    opaque = identity(to_model_input(base))
    assert opaque.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(opaque), np.asarray(base.convert("RGB")))


def test_pil_bilevel_comes_back_as_gray():
    im = pil_image("1")
    result = identity(to_model_input(im))
    assert result.mode == "L"
    np.testing.assert_array_equal(np.asarray(result), np.asarray(im.convert("L")))


def test_pil_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels((10, 20, 3), seed=8)).save(tmp_path / "o.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "o.jpg") as im:
        source = to_model_input(im)
        expected = np.asarray(ImageOps.exif_transpose(im))
    result = identity(source)
    assert result.size == (10, 20)  # (W, H): rotated from 20 x 10
    np.testing.assert_array_equal(np.asarray(result), expected)


def test_pil_2x_upscale_resizes_alpha_and_keeps_mode():
    la = pil_image("LA", seed=9)
    source = to_model_input(la)
    result = from_model_output(upscale2(source.rgb), source)
    assert result.mode == "LA" and result.size == (26, 18)
    array, original = np.asarray(result), np.asarray(la)
    np.testing.assert_array_equal(array[..., 0], repeat2(original[..., 0]))
    assert np.abs(array[..., 1].astype(int) - cv2_bicubic_alpha(original[..., 1], (18, 26), 255.0)).max() <= 1


def test_icc_profile_of_another_colour_space_is_dropped_with_a_warning():
    im = pil_image("RGB")
    im.info["icc_profile"] = LAB
    with pytest.warns(UserWarning, match="dropped its ICC profile for colour space 'Lab'"):
        source = to_model_input(im)
    assert source.icc_profile is None and "icc_profile" not in identity(source).info


# ----------------------------------------------------------------------------- numpy arrays


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((11, 13), np.uint8),
        ((11, 13, 1), np.uint8),
        ((11, 13, 2), np.uint8),
        ((11, 13, 3), np.uint8),
        ((11, 13, 4), np.uint8),
        ((11, 13, 3), np.uint16),
        ((11, 13), np.uint16),
        ((11, 13, 3), np.dtype(">u2")),
        ((11, 13, 3), np.float32),
        ((11, 13, 4), np.float64),
        ((11, 13), np.float16),
    ],
)
def test_numpy_round_trip_keeps_dtype_layout_and_values(shape, dtype):
    array = pixels(shape, np.dtype(dtype).newbyteorder("=") if np.dtype(dtype).kind == "u" else dtype)
    array = array.astype(dtype)
    source = to_model_input(array)
    assert source.kind == "numpy" and source.layout == ("HW" if len(shape) == 2 else "HWC")
    channels = 1 if len(shape) == 2 else shape[2]
    assert source.gray == (channels <= 2) and (source.alpha is not None) == (channels in (2, 4))
    assert source.bit_depth == {"u": 8 * np.dtype(dtype).itemsize, "f": 32}[np.dtype(dtype).kind]
    result = identity(source)
    assert isinstance(result, np.ndarray) and result.dtype == np.dtype(dtype) and result.shape == shape
    assert result.flags.c_contiguous and not np.shares_memory(result, array)
    if np.dtype(dtype).kind == "f":
        np.testing.assert_allclose(result.astype(np.float64), array.astype(np.float64), rtol=0, atol=1e-6)
    else:
        np.testing.assert_array_equal(result, array)


def test_numpy_views_with_negative_strides_are_read_correctly():
    array = pixels((8, 9, 3), seed=10)[::-1, ::-2]
    np.testing.assert_array_equal(identity(to_model_input(array)), array)


def test_numpy_2x_upscale_resizes_alpha():
    rgba = pixels((10, 7, 4), np.uint16, seed=11)
    source = to_model_input(rgba)
    result = from_model_output(upscale2(source.rgb), source)
    assert result.shape == (20, 14, 4) and result.dtype == np.uint16
    np.testing.assert_array_equal(result[..., :3], repeat2(rgba[..., :3]))
    reference = cv2_bicubic_alpha(rgba[..., 3], (20, 14), 65535.0)
    assert np.abs(result[..., 3].astype(np.int64) - reference).max() <= 1


def test_output_is_clamped_then_rounded():
    source = to_model_input(np.zeros((1, 6), np.uint8))
    levels = torch.tensor([10.49, 10.51, -30.0, 300.0, 254.6, 0.49]) / 255.0
    result = from_model_output(levels.view(1, 1, 1, 6).expand(1, 3, 1, 6), source)
    np.testing.assert_array_equal(result, [[10, 11, 0, 255, 255, 0]])
    output = torch.tensor([-0.5, 0.25, 1.5]).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    floats = from_model_output(output, to_model_input(np.zeros((1, 3), np.float32)))
    np.testing.assert_array_equal(floats, np.array([[0.0, 0.25, 1.0]], np.float32))


@pytest.mark.parametrize(("dtype", "scale"), [(np.uint8, 255.0), (np.uint16, 65535.0), (np.float32, None)])
@pytest.mark.parametrize("block_bytes", [1, 700, 2**19])  # rows per block: 1, a few, all
def test_output_is_quantised_in_blocks_of_rows_like_the_whole_image(dtype, scale, block_bytes, monkeypatch):
    monkeypatch.setattr(quantise, "QUANTISE_BLOCK_BYTES", block_bytes)
    output = torch.rand(1, 3, 23, 17, generator=torch.Generator().manual_seed(5)) * 1.2 - 0.1
    result = from_model_output(output, to_model_input(np.zeros((23, 17, 3), dtype)))
    hwc = output[0].permute(1, 2, 0).clamp(0, 1)  # the whole-image reference
    expected = hwc if scale is None else hwc.mul(scale).round()
    assert result.dtype == dtype and result.shape == (23, 17, 3) and result.flags.c_contiguous
    np.testing.assert_array_equal(result, expected.numpy().astype(dtype))


def test_gray_output_is_bt601_luma_like_pillow():
    rgb = pixels((16, 16, 3), seed=12)
    output = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None]
    result = from_model_output(output, to_model_input(pixels((16, 16), seed=13)))
    reference = np.asarray(Image.fromarray(rgb).convert("L"))  # Pillow: 0.299 R + 0.587 G + 0.114 B
    assert result.shape == (16, 16)
    assert np.abs(result.astype(int) - reference).max() <= 1
    assert torch.allclose(rgb_to_gray(torch.ones(1, 3, 2, 2)), torch.ones(1, 1, 2, 2))


def test_an_alpha_from_the_caller_is_used_as_given():
    rgba = pixels((6, 8, 4), seed=14)
    source = to_model_input(rgba)
    restored_alpha = torch.full((1, 1, 12, 16), 0.5)  # e.g. the model run on the alpha ("model" mode)
    result = from_model_output(upscale2(source.rgb), source, alpha=restored_alpha)
    assert (result[..., 3] == 128).all()
    with pytest.raises(ValueError, match=r"alpha must have shape \(1, 1, 12, 16\)"):
        from_model_output(upscale2(source.rgb), source, alpha=torch.zeros(1, 1, 6, 8))
    with pytest.raises(ValueError, match="source image has no alpha channel"):
        from_model_output(source.rgb, to_model_input(rgba[..., :3]), alpha=torch.zeros(1, 1, 6, 8))


# ----------------------------------------------------------------------------- tensors


@pytest.mark.parametrize(
    "shape, dtype, layout",
    [
        ((3, 10, 12), torch.float32, "CHW"),
        ((2, 4, 10, 12), torch.float32, "NCHW"),
        ((1, 1, 10, 12), torch.float64, "NCHW"),
        ((10, 12), torch.float32, "HW"),
        ((3, 10, 12), torch.uint8, "CHW"),
        ((2, 2, 10, 12), torch.uint8, "NCHW"),
        ((3, 10, 12), torch.uint16, "CHW"),
        ((3, 10, 12), torch.float16, "CHW"),
        ((4, 10, 12), torch.bfloat16, "CHW"),
    ],
)
def test_tensor_round_trip_keeps_dtype_layout_and_values(shape, dtype, layout):
    gen = torch.Generator().manual_seed(len(shape) + shape[0])
    if dtype.is_floating_point:
        x = torch.rand(shape, generator=gen).to(dtype)
    else:
        x = torch.randint(0, 256 if dtype == torch.uint8 else 65536, shape, generator=gen).to(dtype)
    source = to_model_input(x)
    assert source.kind == "tensor" and source.layout == layout and source.batch == (layout == "NCHW")
    batch = shape[0] if layout == "NCHW" else 1
    assert source.rgb.shape == (batch, 3, 10, 12) and source.rgb.dtype == torch.float32
    result = identity(source)
    assert result.dtype == dtype and result.shape == x.shape and result.device == x.device
    if dtype.is_floating_point:
        assert (result.double() - x.double()).abs().max() <= 1e-6
    else:
        assert torch.equal(result.to(torch.int32), x.to(torch.int32))


def test_tensor_batch_2x_upscale_resizes_each_alpha():
    x = torch.rand(2, 4, 6, 5, generator=torch.Generator().manual_seed(15))
    source = to_model_input(x)
    result = from_model_output(upscale2(source.rgb), source)
    assert result.shape == (2, 4, 12, 10) and result.dtype == torch.float32
    assert torch.equal(result[:, :3], upscale2(x[:, :3]))
    for i in range(2):
        reference = np.clip(cv2.resize(x[i, 3].numpy(), (10, 12), interpolation=cv2.INTER_CUBIC), 0, 1)
        np.testing.assert_allclose(result[i, 3].numpy(), reference, rtol=0, atol=1e-5)


def test_tensor_input_is_detached_and_not_modified():
    x = torch.rand(3, 5, 5, requires_grad=True)
    before = x.detach().clone()
    source = to_model_input(x)
    assert not source.rgb.requires_grad
    source.rgb.add_(1)
    assert torch.equal(x.detach(), before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tensor_result_goes_back_to_the_input_device():
    x = torch.rand(3, 8, 8, device="cuda")
    source = to_model_input(x)
    assert source.rgb.device.type == "cuda"
    result = from_model_output(source.rgb.cpu(), source)
    assert result.device == x.device and torch.allclose(result, x, atol=1e-6)


# ----------------------------------------------------------------------------- alpha resizing


@pytest.mark.parametrize("size", [(18, 26), (27, 39), (20, 31)])
def test_resize_alpha_matches_opencv_bicubic_and_stays_in_range(size):
    alpha = np.zeros((9, 13), np.float32)
    alpha[2:7, 3:10] = 1.0  # a hard edge overshoots in bicubic: must be clamped
    ours = resize_alpha(torch.from_numpy(alpha)[None, None], size)
    reference = np.clip(cv2.resize(alpha, (size[1], size[0]), interpolation=cv2.INTER_CUBIC), 0, 1)
    assert ours.shape == (1, 1, *size)
    np.testing.assert_allclose(ours[0, 0].numpy(), reference, rtol=0, atol=1e-5)
    assert ours.min() >= 0 and ours.max() <= 1
    same = torch.rand(1, 1, 4, 4)
    assert torch.equal(resize_alpha(same, (4, 4)), same)
    half = resize_alpha(same.to(torch.bfloat16), (8, 8))
    assert half.dtype == torch.bfloat16 and half.shape == (1, 1, 8, 8)


def test_resize_alpha_validates_its_arguments():
    with pytest.raises(ValueError, match=r"alpha must be a tensor \(N, 1, H, W\), got \(1, 3, 4, 4\)"):
        resize_alpha(torch.rand(1, 3, 4, 4), (8, 8))
    with pytest.raises(ValueError, match="floating-point"):
        resize_alpha(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), (8, 8))
    with pytest.raises(ValueError, match="positive sides"):
        resize_alpha(torch.rand(1, 1, 4, 4), (0, 8))


# ----------------------------------------------------------------------------- errors


def _bad_inputs():
    nan = np.full((4, 4), 0.5, np.float32)
    nan[1, 1] = np.nan
    return [
        ([1, 2, 3], TypeError, "got list"),
        (b"\x89PNG", TypeError, "got bytes"),
        (np.zeros(3, np.uint8), ValueError, r"\(H, W\) or \(H, W, C\) with C in 1..4; got shape \(3,\)"),
        (np.zeros((4, 4, 5), np.uint8), ValueError, r"got shape \(4, 4, 5\)"),
        (np.zeros((3, 16, 16), np.uint8), ValueError, r"got shape \(3, 16, 16\); if it is channels-first"),
        (np.zeros((1, 4, 4, 3), np.uint8), ValueError, r"got shape \(1, 4, 4, 3\)"),
        (np.zeros((4, 4), np.int64), TypeError, "dtype int64; numpy images must be uint8, uint16"),
        (np.zeros((4, 4), bool), TypeError, "unsupported dtype bool"),
        (np.zeros((4, 4), np.complex64), TypeError, "unsupported dtype complex64"),
        (np.zeros((0, 4, 3), np.uint8), ValueError, r"empty image: image has shape \(0, 4, 3\)"),
        (np.zeros((4, 0), np.float32), ValueError, "empty image"),
        (nan, ValueError, "NaN or infinite"),
        (np.full((4, 4), np.inf, np.float32), ValueError, "NaN or infinite"),
        (np.linspace(0, 255, 16).reshape(4, 4), ValueError, r"min 0, max 255.*divide by 255"),
        (np.linspace(-0.5, 1, 16).reshape(4, 4), ValueError, r"outside \[0, 1\]: min -0.5, max 1"),
        (torch.zeros(1, 1, 1, 4, 4), ValueError, r"got shape \(1, 1, 1, 4, 4\)"),
        (torch.zeros(8, 8, 3), ValueError, r"got shape \(8, 8, 3\); if it is channels-last"),
        (torch.zeros(4, 4, dtype=torch.int64), TypeError, "unsupported dtype torch.int64"),
        (torch.zeros(4, 4, dtype=torch.bool), TypeError, "unsupported dtype torch.bool"),
        (torch.zeros(0, 3, 4, 4), ValueError, "empty batch"),
        (torch.zeros(3, 0, 4), ValueError, r"empty image: image has shape \(3, 0, 4\)"),
        (torch.full((3, 4, 4), 2.0), ValueError, "min 2, max 2"),
        (Image.new("RGB", (0, 5)), ValueError, "empty image"),
        (Image.fromarray(np.full((4, 4), -5, np.int32)), ValueError, "mode 'I' is read as 16-bit samples"),
    ]


@pytest.mark.parametrize("bad, error, message", _bad_inputs())
def test_bad_input_gets_a_clear_error(bad, error, message):
    with pytest.raises(error, match=message):
        to_model_input(bad)


def test_float_slack_is_clamped_and_errors_use_the_given_name():
    source = to_model_input(np.array([[-0.0005, 1.0005]], np.float32))
    assert source.rgb.min() == 0 and source.rgb.max() == 1
    with pytest.raises(ValueError, match="^mask has float32 values outside"):
        to_model_input(np.full((4, 4), 3.0, np.float32), name="mask")
    with pytest.raises(TypeError, match="^mask must be a path"):
        to_model_input(3.5, name="mask")


def test_bad_model_output_gets_a_clear_error():
    source = to_model_input(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"output must be a tensor \(N, 3, H, W\)"):
        from_model_output(torch.zeros(3, 4, 4), source)
    with pytest.raises(ValueError, match="floating-point"):
        from_model_output(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), source)
    with pytest.raises(ValueError, match="output has 2 images but the source has 1"):
        from_model_output(torch.zeros(2, 3, 4, 4), source)
    with pytest.raises(ValueError, match="NaN or infinite"):
        from_model_output(torch.full((1, 3, 4, 4), float("nan")), source)
    with pytest.raises(TypeError, match="source must be the ImageInput"):
        from_model_output(torch.zeros(1, 3, 4, 4), np.zeros((4, 4, 3), np.uint8))


def test_save_like_refuses_to_lose_bit_depth_and_warns_when_dropping_icc(tmp_path):
    source = to_model_input(pixels((5, 6, 3), np.uint16))
    with pytest.raises(ValueError, match="16-bit result keeps its depth only in PNG"):
        save_like(identity(source), tmp_path / "x.jpg", source)
    with pytest.raises(ValueError, match="suffix"):
        save_like(identity(source), tmp_path / "x.gif", source)
    with pytest.raises(ValueError, match="one image"):
        batch = to_model_input(torch.rand(2, 3, 4, 4))
        save_like(identity(batch), tmp_path / "x.png", batch)
    im = pil_image("RGB")
    im.info["icc_profile"] = SRGB
    pil_source = to_model_input(im)
    with pytest.warns(UserWarning, match="BMP cannot carry an ICC profile"):
        out = save_like(identity(pil_source), tmp_path / "x.bmp", pil_source)
    assert read_icc_profile(out) is None
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(im))
    floats = to_model_input(pixels((5, 6, 3), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = save_like(identity(floats), tmp_path / "f.png", floats)
    assert png.read_bytes()[24] == 16  # float results keep 16 bits in PNG
    expected = np.round(pixels((5, 6, 3), np.float32) * 65535) / 65535
    assert torch.allclose(read_image(png), torch.from_numpy(expected).permute(2, 0, 1).float(), atol=1e-7)
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["f.png", "x.bmp"]  # nothing partial left


def test_iccp_chunk_of_saved_16bit_png_is_named_and_compressed(tmp_path):
    source = to_model_input(pixels((4, 5, 3), np.uint16))
    source.icc_profile = SRGB
    data = save_like(identity(source), tmp_path / "x.png", source).read_bytes()
    tags = [tag for tag, _ in png_chunks(data)]
    assert tags.index(b"iCCP") < tags.index(b"IDAT")
    body = dict(png_chunks(data))[b"iCCP"]
    name, rest = body.split(b"\x00", 1)
    assert name == b"ICC profile" and rest[0] == 0 and zlib.decompress(rest[1:]) == SRGB


def test_import_does_not_pull_heavy_optional_packages():
    code = (
        "import sys, restore.io.convert; "
        "print(sorted(m for m in ('torchvision', 'kornia', 'cv2', 'spandrel') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(6, 7), (6, 7, 3), (6, 7, 4)])
def test_save_like_writes_integer_results_as_they_are(tmp_path, dtype, shape):
    image = pixels(shape, dtype)
    source = to_model_input(image)
    result = from_model_output(source.rgb, source)  # the identity "model"; the alpha is carried over
    assert result.dtype == dtype
    path = save_like(result, tmp_path / "x.png", source)
    back = np.asarray(Image.open(path)) if dtype == np.uint8 else cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if dtype == np.uint16 and back.ndim == 3:
        back = back[..., [2, 1, 0, 3][: back.shape[2]]]
    np.testing.assert_array_equal(back, image)


def test_save_like_carries_the_source_icc_profile_for_integer_results(tmp_path):
    im = pil_image("RGB")
    im.info["icc_profile"] = SRGB
    source = to_model_input(im)
    array = np.asarray(im)  # an integer result: the fast path
    assert read_icc_profile(save_like(array, tmp_path / "x.png", source)) == SRGB
    with pytest.warns(UserWarning, match="BMP cannot carry an ICC profile"):
        assert read_icc_profile(save_like(array, tmp_path / "x.bmp", source)) is None
    with pytest.raises(ValueError, match="16-bit result keeps its depth only in PNG"):
        save_like(array.astype(np.uint16), tmp_path / "x.jpg", source)


def test_a_written_image_must_match_its_source():
    from restore.io.convert import output_image
    from restore.io.quantise import QuantisedImage

    source = to_model_input(np.zeros((4, 5, 4), np.uint8))  # RGBA
    image = output_image(source, 2)
    assert image is not None and image.pixels.shape == (8, 10, 4) and image.pixels.dtype == torch.uint8
    image.write(torch.full((1, 3, 8, 10), 0.5), 0, 0)
    result = from_model_output(image, source)  # the source's alpha (0) resized into the last channel
    assert result.shape == (8, 10, 4) and (result[..., :3] == 128).all() and (result[..., 3] == 0).all()
    wrong = QuantisedImage(8, 10, bit_depth=16, gray=False, alpha=True)
    with pytest.raises(ValueError, match="not made by output_image"):
        from_model_output(wrong, source)
    assert output_image(to_model_input(torch.rand(3, 4, 5)), 2) is None  # tensors stay tensors
    with pytest.raises(TypeError, match="ImageInput from to_model_input"):
        output_image(np.zeros((4, 5, 3), np.uint8), 2)


@pytest.mark.parametrize(
    ("channels", "layout"), [(3, "channels_last"), (4, "channels_last"), (1, "contiguous")]
)
def test_array_pixels_keep_their_hwc_memory_order_with_the_chw_values(channels, layout):
    # an (H, W, C) array's pixels become channels_last rgb (no transposing pass); gray rgb is a copy
    array = np.random.default_rng(3).integers(0, 256, (5, 7, channels), dtype=np.uint8)
    source = to_model_input(array if channels > 1 else array[..., 0])
    chw = torch.from_numpy(array.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    expected = chw[:, :3] if channels > 1 else chw.expand(-1, 3, -1, -1)
    assert source.rgb.shape == (1, 3, 5, 7) and torch.equal(source.rgb, expected)
    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    assert source.rgb.is_contiguous(memory_format=memory_format)
    if channels == 4:
        assert torch.equal(source.alpha, chw[:, 3:]) and source.alpha.is_contiguous()
    pil = to_model_input(Image.fromarray(array if channels > 1 else array[..., 0]))
    assert torch.equal(pil.rgb, expected) and pil.rgb.is_contiguous(memory_format=memory_format)
