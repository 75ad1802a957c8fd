"""restore.upscale / inpaint / deblur through the public API.

The reference model is compact_tiny with its last convolution zeroed: ``body(x) + nearest(x)`` becomes
an exact nearest-neighbour x4 upscaler, so every result is compared with ``np.repeat`` of the input:
bit-exact for integer pixels (8 and 16 bits), to float32 rounding for float pixels.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageOps

import restore
import restore.models as models
from restore import api, hub
from restore.io import read_icc_profile
from restore.io.convert import resize_alpha

S = 4  # scale of the nearest model


@pytest.fixture(autouse=True)
def fresh_predictors():
    """Predictors are cached by model argument: every test starts (and leaves) an empty cache."""
    api._predictors.clear()
    yield
    api._predictors.clear()


pytestmark = pytest.mark.usefixtures("one_thread")


def nearest_model() -> torch.nn.Module:
    net = models.build("compact_tiny")
    with torch.no_grad():
        net.body[-1].weight.zero_()
        net.body[-1].bias.zero_()
    return net


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """Weights files: the exact nearest x4 model, random compact_tiny, lama_small and nafnet_small."""
    folder = tmp_path_factory.mktemp("weights")
    files = {"nearest": models.save(nearest_model(), folder / "nearest_x4.safetensors")}
    for seed, name in enumerate(("compact_tiny", "lama_small", "nafnet_small")):
        torch.manual_seed(seed)
        files[name] = models.save(models.build(name), folder / f"{name}.safetensors")
    return files


@pytest.fixture
def nearest(weights) -> Path:
    return weights["nearest"]


def up(a: np.ndarray, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Nearest-neighbour x4 upsampling of a numpy array along ``axes`` (H, W)."""
    return np.repeat(np.repeat(a, S, axis=axes[0]), S, axis=axes[1])


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def rand_u8(*shape: int, seed: int = 0) -> np.ndarray:
    return rng(seed).integers(0, 256, shape, dtype=np.uint8)


def rand_u16(*shape: int, seed: int = 0) -> np.ndarray:
    a = rng(seed).integers(0, 65536, shape, dtype=np.uint16)
    a.flat[0] = 12345
    a.flat[-1] = 65535
    return a


# -- paths --------------------------------------------------------------------------------------------


def write_rgb16_png(path: Path, rgb: np.ndarray) -> Path:
    """A 16-bit RGB PNG written by OpenCV (BGR order), independent of our encoder."""
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    return path


def make_file(kind: str, folder: Path) -> tuple[Path, np.ndarray]:
    """An image file of ``kind`` and the upright pixels a reader must see (numpy, the file's dtype)."""
    if kind == "rgb8":
        pixels = rand_u8(12, 10, 3)
        Image.fromarray(pixels).save(folder / "rgb8.png")
        return folder / "rgb8.png", pixels
    if kind == "rgb16":
        pixels = rand_u16(11, 9, 3)
        return write_rgb16_png(folder / "rgb16.png", pixels), pixels
    if kind == "gray8":
        pixels = rand_u8(10, 13)
        Image.fromarray(pixels).save(folder / "gray8.png")
        return folder / "gray8.png", pixels
    if kind == "gray16":
        pixels = rand_u16(9, 12)
        assert cv2.imwrite(str(folder / "gray16.png"), pixels)
        return folder / "gray16.png", pixels
    if kind == "rgba16":
        pixels = rand_u16(8, 9, 4)
        assert cv2.imwrite(str(folder / "rgba16.png"), np.ascontiguousarray(pixels[..., [2, 1, 0, 3]]))
        return folder / "rgba16.png", pixels
    if kind == "rgba8":
        pixels = rand_u8(12, 10, 4)
        pixels[..., 3] = np.linspace(0, 255, 10).round().astype(np.uint8)[None]
        Image.fromarray(pixels, "RGBA").save(folder / "rgba8.png")
        return folder / "rgba8.png", pixels
    if kind == "jpeg_exif6":
        stored = rand_u8(10, 14, 3)  # stored 14 wide x 10 high; orientation 6 shows it 10 wide x 14 high
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(stored).save(folder / "rot.jpg", quality=90, exif=exif)
        with Image.open(folder / "rot.jpg") as im:
            upright = np.asarray(ImageOps.exif_transpose(im))
        assert upright.shape == (14, 10, 3)
        return folder / "rot.jpg", upright
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["rgb8", "rgb16", "gray8", "gray16", "rgba8", "rgba16", "jpeg_exif6"])
def test_path_input_gives_numpy_nearest_upscale_bit_exact(kind, tmp_path, nearest):
    path, pixels = make_file(kind, tmp_path)
    for argument in (path, str(path)):
        out = restore.upscale(argument, model=nearest)
        assert isinstance(out, np.ndarray)
        assert out.dtype == pixels.dtype  # uint16 for 16-bit files, uint8 otherwise
        assert out.shape == (pixels.shape[0] * S, pixels.shape[1] * S, *pixels.shape[2:])  # gray stays HW
        np.testing.assert_array_equal(out, up(pixels))
    if kind.endswith("16"):
        assert out.flat[0] == 12345 and out.max() == 65535
    if kind == "jpeg_exif6":  # the same file opened by PIL is turned upright too, and stays PIL
        with Image.open(path) as im:
            result = restore.upscale(im, model=nearest)
        assert result.size == (10 * S, 14 * S)
        np.testing.assert_array_equal(np.asarray(result), up(pixels))


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "I;16"])
def test_pil_input_keeps_its_mode_and_is_bit_exact(mode, nearest):
    if mode == "I;16":
        pixels = rand_u16(9, 11)
        im = Image.fromarray(pixels)
        assert im.mode == "I;16"
    else:
        pixels = rand_u8(9, 11, {"RGB": 3, "L": 1, "RGBA": 4}[mode])
        pixels = pixels[..., 0] if mode == "L" else pixels
        im = Image.fromarray(pixels, mode)
    out = restore.upscale(im, model=nearest)
    assert isinstance(out, Image.Image)
    assert out.mode == mode and out.size == (11 * S, 9 * S)
    np.testing.assert_array_equal(np.asarray(out), up(pixels))


def test_pil_palette_with_transparency_comes_back_rgba(nearest):
    im = Image.fromarray(rng(15).integers(0, 4, (5, 6), dtype=np.uint8), "P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    im.info["transparency"] = 0
    out = restore.upscale(im, model=nearest)
    assert out.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(out), up(np.asarray(im.convert("RGBA"))))


NUMPY_CASES = {
    "uint8_hwc": lambda: rand_u8(7, 9, 3),
    "uint16_hwc": lambda: rand_u16(7, 9, 3),
    "float32_hwc": lambda: rng(1).random((7, 9, 3), dtype=np.float32),
    "uint8_hw_gray": lambda: rand_u8(7, 9),
    "float32_hw_gray": lambda: rng(2).random((7, 9), dtype=np.float32),
    "uint8_hwc4_alpha": lambda: rand_u8(7, 9, 4),
    "uint16_hwc4_alpha": lambda: rand_u16(7, 9, 4),
}


@pytest.mark.parametrize("case", sorted(NUMPY_CASES))
def test_numpy_input_keeps_dtype_and_layout(case, nearest):
    pixels = NUMPY_CASES[case]()
    out = restore.upscale(pixels, model=nearest)
    assert isinstance(out, np.ndarray)
    assert out.dtype == pixels.dtype and out.shape == up(pixels).shape
    if pixels.dtype.kind == "u" or pixels.ndim == 3:
        np.testing.assert_array_equal(out, up(pixels))
    else:  # float gray goes through BT.601 luma of three equal channels: float32 rounding only
        np.testing.assert_allclose(out, up(pixels), rtol=0, atol=1e-6)


def test_tensor_inputs_keep_dtype_layout_and_batch(nearest):
    gen = torch.Generator().manual_seed(3)
    cases = {
        "chw_float": torch.rand(3, 6, 5, generator=gen),
        "nchw_batch2": torch.rand(2, 3, 6, 5, generator=gen),
        "hw_float": torch.rand(6, 5, generator=gen),
        "chw_uint8": torch.randint(0, 256, (3, 6, 5), generator=gen, dtype=torch.uint8),
        "chw_float64": torch.rand(3, 6, 5, generator=gen, dtype=torch.float64),
        "chw_uint16": torch.randint(0, 65536, (3, 6, 5), generator=gen, dtype=torch.int32).to(torch.uint16),
    }
    for name, x in cases.items():
        out = restore.upscale(x, model=nearest)
        assert isinstance(out, torch.Tensor), name
        assert out.dtype == x.dtype and out.device == x.device, name
        expected = x.repeat_interleave(S, dim=-2).repeat_interleave(S, dim=-1)
        assert out.shape == expected.shape, name
        if x.dtype in (torch.uint8, torch.uint16):
            assert torch.equal(out.int(), expected.int()), name
        elif x.dtype == torch.float64:  # the model runs in float32
            torch.testing.assert_close(out, expected, rtol=0, atol=1e-7)
        else:
            torch.testing.assert_close(out, expected, rtol=0, atol=1e-6 if x.ndim == 2 else 0)
    # the batch items are upscaled independently: item 1 alone gives the same pixels
    batch = cases["nchw_batch2"]
    assert torch.equal(restore.upscale(batch, model=nearest)[1], restore.upscale(batch[1], model=nearest))


def test_model_none_uses_the_bundled_default(monkeypatch, tmp_path, nearest):
    monkeypatch.setattr(hub, "WEIGHTS_DIR", tmp_path)
    shutil.copy(nearest, tmp_path / "sr_x4.safetensors")
    pixels = rand_u8(8, 6, 3, seed=4)
    np.testing.assert_array_equal(restore.upscale(pixels), up(pixels))
    np.testing.assert_array_equal(restore.upscale(pixels, 4, None, None, "cpu", "fp32"), up(pixels))


def test_a_rewritten_weights_file_is_reloaded(tmp_path):
    x = rng(16).random((8, 8, 3), dtype=np.float32)
    path = tmp_path / "net.safetensors"
    for seed in (1, 2):
        torch.manual_seed(seed)
        models.save(models.build("compact_tiny"), path)
        result = restore.upscale(x, model=path)
    api._predictors.clear()
    np.testing.assert_array_equal(result, restore.upscale(x, model=path))


# -- alpha ------------------------------------------------------------------------------------------


def test_alpha_model_is_repeated_and_alpha_resize_is_bicubic(nearest):
    pixels = rand_u8(8, 10, 4, seed=5)
    pixels[..., 3] = np.where(np.arange(10)[None] < 5, 0, 255)  # a hard edge: bicubic overshoots it
    by_model = restore.upscale(pixels, model=nearest, alpha_mode="model")
    np.testing.assert_array_equal(by_model, up(pixels))

    by_resize = restore.upscale(pixels, model=nearest, alpha_mode="resize")
    np.testing.assert_array_equal(by_resize[..., :3], up(pixels[..., :3]))
    alpha = torch.from_numpy(pixels[..., 3].astype(np.float32) / 255)[None, None]
    expected = (resize_alpha(alpha, (8 * S, 10 * S))[0, 0] * 255).round().numpy().astype(np.uint8)
    np.testing.assert_array_equal(by_resize[..., 3], expected)
    assert (by_resize[..., 3] != by_model[..., 3]).any()  # the two modes really differ

    float_rgba = pixels.astype(np.float32) / 255
    out = restore.upscale(float_rgba, model=nearest, alpha_mode="resize")
    np.testing.assert_allclose(out[..., 3], resize_alpha(alpha, (8 * S, 10 * S))[0, 0].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="alpha_mode must be one of .*'resize'.*got 'premultiplied'"):
        restore.upscale(pixels, model=nearest, alpha_mode="premultiplied")


def test_gray_with_alpha_stays_gray_with_alpha(nearest):
    la = rand_u8(6, 7, 2, seed=6)
    out = restore.upscale(la, model=nearest)
    assert out.shape == (6 * S, 7 * S, 2)
    np.testing.assert_array_equal(out, up(la))
    pil = restore.upscale(Image.fromarray(la, "LA"), model=nearest)
    assert pil.mode == "LA"
    np.testing.assert_array_equal(np.asarray(pil), up(la))


# -- output files -----------------------------------------------------------------------------------


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_output_file_keeps_icc_profile_and_pixels(tmp_path, nearest):
    icc = srgb_profile()
    pixels = rand_u8(9, 8, 3, seed=7)
    Image.fromarray(pixels).save(tmp_path / "in.png", icc_profile=icc)
    target = tmp_path / "out" / "big.png"
    target.parent.mkdir()
    returned = restore.upscale(tmp_path / "in.png", model=nearest, output=target)
    assert Path(returned) == target
    assert read_icc_profile(target) == icc
    with Image.open(target) as im:
        assert im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), up(pixels))
    assert sorted(os.listdir(target.parent)) == ["big.png"]  # no temporary file left behind
    # a PIL input with a profile carries it too, on the PIL result
    with Image.open(tmp_path / "in.png") as im:
        assert restore.upscale(im, model=nearest).info["icc_profile"] == icc


def test_16bit_png_output_is_16bit(tmp_path, nearest):
    pixels = rand_u16(7, 6, 3, seed=8)
    source = write_rgb16_png(tmp_path / "in16.png", pixels)
    target = restore.upscale(source, model=nearest, output=tmp_path / "out16.png")
    written = cv2.imread(str(target), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == (7 * S, 6 * S, 3)
    np.testing.assert_array_equal(written[..., ::-1], up(pixels))
    # 16 bits do not fit JPEG: refused with a clear message, nothing written
    with pytest.raises(ValueError, match="16-bit result keeps its depth only in PNG"):
        restore.upscale(source, model=nearest, output=tmp_path / "out16.jpg")
    assert not (tmp_path / "out16.jpg").exists()


def test_output_write_is_atomic(tmp_path, nearest, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"previous result")
    real_save = Image.Image.save

    def failing_save(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)  # the encoder wrote everything ...
        raise OSError("disk full")  # ... then the write failed

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        restore.upscale(rand_u8(5, 5, 3), model=nearest, output=target)
    assert target.read_bytes() == b"previous result"
    assert os.listdir(tmp_path) == ["out.png"]
    monkeypatch.undo()
    restore.upscale(rand_u8(5, 5, 3), model=nearest, output=target)
    with Image.open(target) as im:
        np.testing.assert_array_equal(np.asarray(im), up(rand_u8(5, 5, 3)))


# -- tiling and out-of-memory fallback ----------------------------------------------------------------


def test_tiled_equals_whole_through_the_api(weights):
    path = weights["compact_tiny"]
    x = rng(9).random((70, 90, 3), dtype=np.float32)
    whole = restore.upscale(x, model=path, tile=None, device="cpu")
    tiled = restore.upscale(x, model=path, tile=60, device="cpu")
    predictor = api.get_predictor(path, task="sr", scale=4, tile=60, device="cpu")
    assert predictor.last_tile == 60  # it really ran in tiles
    assert whole.shape == tiled.shape == (280, 360, 3)
    assert np.abs(whole - tiled).max() < 1e-3
    assert np.abs(whole - up(x)).max() > 1e-2  # a random net, not the nearest one
    # compact_tiny (receptive field 10, exact) tiles with an overlap of 20: a smaller tile is raised,
    # with a warning
    with pytest.warns(UserWarning, match="tile 16 is too small.*using tile 41"):
        small = restore.upscale(x, model=path, tile=16, device="cpu")
    assert np.abs(whole - small).max() < 1e-3


@pytest.mark.parametrize("kind", ["numpy", "pil", "path"])
def test_images_are_written_tile_by_tile_into_their_bit_depth(kind, weights, tmp_path, monkeypatch):
    from restore.io.convert import to_model_input
    from restore.io.quantise import QuantisedImage

    path = weights["compact_tiny"]
    pixels = rand_u8(70, 90, 3, seed=12)
    image = {"numpy": pixels, "pil": Image.fromarray(pixels), "path": tmp_path / "in.png"}[kind]
    Image.fromarray(pixels).save(tmp_path / "in.png")
    predictor = api.get_predictor(path, task="sr", scale=4, tile=41, device="cpu")
    tensor = restore.upscale(torch.from_numpy(pixels).permute(2, 0, 1), model=path, tile=41, device="cpu")
    writes: list[tuple[int, int]] = []
    write = QuantisedImage.write

    def counted(self, block: torch.Tensor, top: int, left: int) -> None:
        writes.append((top, left))
        write(self, block, top, left)

    monkeypatch.setattr(QuantisedImage, "write", counted)
    out, alpha = api.restore_source(predictor, to_model_input(image))
    assert isinstance(out, QuantisedImage) and alpha is None and len(set(writes)) > 4  # tile by tile
    result = restore.upscale(image, model=path, tile=41, device="cpu")
    assert np.array_equal(np.asarray(result), tensor.permute(1, 2, 0).numpy())  # as the tensor path rounds
    assert isinstance(api.restore_source(predictor, to_model_input(torch.rand(1, 3, 8, 8)))[0], torch.Tensor)


def test_out_of_memory_halves_the_tile_through_the_api(weights, monkeypatch):
    path = weights["compact_tiny"]
    x = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(10))
    whole = restore.upscale(x, model=path, device="cpu")
    predictor = api.get_predictor(str(path), task="sr", scale=4, tile=64, device="cpu")
    inner = predictor.model.forward
    seen: list[tuple[int, int]] = []

    def forward(t: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(t.shape[-2:]))
        # tile 64 (crops 45 x 55, balanced) does not fit; the floor 41 (2 * overlap + 1: 37 x 38) does
        if max(t.shape[-2:]) > 50:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return inner(t)

    monkeypatch.setattr(predictor.model, "forward", forward)
    with pytest.warns(UserWarning, match="out of memory with tile 64; retrying with tile 41"):
        out = restore.upscale(x, model=str(path), tile=64, device="cpu")
    assert api.get_predictor(str(path), task="sr", scale=4, tile=64, device="cpu") is predictor
    assert predictor.last_tile == 41 < 64
    assert (45, 55) in seen and (37, 38) in seen
    assert (out - whole).abs().max() < 1e-3


# -- inpaint and deblur -----------------------------------------------------------------------------


def test_inpaint_keeps_known_pixels_exactly_for_every_mask_kind(tmp_path, weights):
    image = rand_u8(36, 44, 3, seed=11)
    hole = np.zeros((36, 44), dtype=bool)
    hole[8:20, 10:30] = True
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    masks = {
        "bool numpy": hole,
        "uint8 0/255 PNG path": tmp_path / "mask.png",
        "float tensor": torch.from_numpy(hole.astype(np.float32))[None],
    }
    results = {}
    for name, mask in masks.items():
        out = restore.inpaint(image, mask, model=weights["lama_small"], device="cpu")
        assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == image.shape, name
        np.testing.assert_array_equal(out[~hole], image[~hole], err_msg=name)
        assert (out[hole] != image[hole]).mean() > 0.5, name  # the hole was filled by the model
        results[name] = out
    first = results["bool numpy"]
    assert all(np.array_equal(first, out) for out in results.values())

    pil = restore.inpaint(Image.fromarray(image), tmp_path / "mask.png", model=weights["lama_small"])
    assert isinstance(pil, Image.Image) and pil.size == (44, 36)
    np.testing.assert_array_equal(np.asarray(pil), first)
    with pytest.raises(ValueError, match=r"mask is 10x12 \(HxW\) but the image is 36x44"):
        restore.inpaint(image, np.zeros((10, 12), dtype=bool), model=weights["lama_small"])


def test_deblur_returns_same_size_and_kind(weights):
    pixels = rand_u8(30, 34, 3, seed=12)
    out = restore.deblur(Image.fromarray(pixels), model=weights["nafnet_small"])
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (34, 30)
    x = torch.rand(3, 30, 34, generator=torch.Generator().manual_seed(12))
    y = restore.deblur(x, model=weights["nafnet_small"])
    assert y.shape == x.shape and y.dtype == x.dtype
    assert 0 <= float(y.min()) and float(y.max()) <= 1
    rgba = rand_u8(30, 34, 4, seed=13)
    out = restore.deblur(rgba, model=weights["nafnet_small"])
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])  # alpha kept as is (resized to its own size)
    with pytest.raises(ValueError, match=r"is a 'deblur' model \(nafnet_small\), but task 'sr' was asked"):
        restore.upscale(pixels, model=weights["nafnet_small"])


# -- errors -----------------------------------------------------------------------------------------


def test_bad_inputs_are_explained(nearest):
    with pytest.raises(ValueError, match=r"shape \(H, W\) or \(H, W, C\).*got shape \(3,\)"):
        restore.upscale(np.zeros((3,)), model=nearest)
    with pytest.raises(ValueError, match=r"if it is channels-first \(CHW\)"):
        restore.upscale(np.zeros((3, 8, 8), np.uint8), model=nearest)
    with pytest.raises(TypeError, match="unsupported dtype int64"):
        restore.upscale(np.zeros((8, 8, 3), np.int64), model=nearest)
    with pytest.raises(ValueError, match="empty image"):
        restore.upscale(np.zeros((0, 8, 3), np.uint8), model=nearest)
    with pytest.raises(ValueError, match=r"outside \[0, 1\].*max 255.*divide by 255"):
        restore.upscale(np.full((4, 4, 3), 255.0, np.float32), model=nearest)
    with pytest.raises(TypeError, match="must be a path .* got list"):
        restore.upscale([[0, 1]], model=nearest)
    with pytest.raises(ValueError, match="scale must be a positive int, got 0"):
        restore.upscale(np.zeros((4, 4, 3), np.uint8), scale=0, model=nearest)


def test_bad_models_are_explained(monkeypatch, tmp_path, nearest):
    monkeypatch.setattr(hub, "WEIGHTS_DIR", tmp_path)
    x = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown model 'sr_x4'. Did you mean 'sr-x4'"):
        restore.upscale(x, model="sr_x4")
    with pytest.raises(ValueError, match="upscales by 4, but scale=2 was asked"):
        restore.upscale(x, scale=2, model=nearest)
    with pytest.raises(ValueError, match="no bundled model for task 'sr' at scale 3"):
        restore.upscale(x, scale=3)
    with pytest.raises(FileNotFoundError, match="weights file not found: .*missing.safetensors"):
        restore.upscale(x, model=tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError, match="bundled model 'sr-x4'.*is missing"):
        restore.upscale(x)  # the bundled file is absent from this (patched) installation


def test_unsupported_precision_warns_and_runs_fp32(weights):
    image = rand_u8(24, 24, 3, seed=14)
    hole = np.zeros((24, 24), dtype=bool)
    hole[4:12, 4:12] = True
    reference = restore.inpaint(image, hole, model=weights["lama_small"], device="cpu", precision="fp32")
    with pytest.warns(UserWarning, match="'lama_small' does not support fp16 precision; running in fp32"):
        out = restore.inpaint(image, hole, model=weights["lama_small"], device="cpu", precision="fp16")
    predictor = api.get_predictor(weights["lama_small"], task="inpaint", device="cpu", precision="fp16")
    assert predictor.precision == "fp32"
    np.testing.assert_array_equal(out, reference)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        restore.inpaint(image, hole, model=weights["lama_small"], device="cpu", precision="fp16")  # cached
    with pytest.raises(ValueError, match="precision must be one of"):
        restore.deblur(image, model=weights["nafnet_small"], precision="int8")


def test_upscale_is_a_lazy_attribute_of_the_package():
    code = (
        "import sys, restore\n"
        "assert 'restore.api' not in sys.modules and 'torch' not in sys.modules\n"
        "f = restore.upscale\n"
        "import restore.api\n"
        "assert f is restore.api.upscale and restore.inpaint is restore.api.inpaint\n"
        "assert restore.deblur is restore.api.deblur\n"
        "assert {'upscale', 'inpaint', 'deblur'} <= set(restore.__all__)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    with pytest.raises(AttributeError, match="has no attribute 'upscal'"):
        restore.upscal  # noqa: B018
