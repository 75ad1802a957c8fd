"""restore.evaluate (SR benchmark evaluation) and the ``restore eval`` command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from restore.cli import main
from restore.degrade import imresize
from restore.evaluate import DatasetLayoutError, evaluate_sr, find_sr_pairs
from restore.metrics import lpips_metric, sr_metrics

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SR_DATA = SHARED_DATA / "images"
needs_data = pytest.mark.skipif(
    not (SR_DATA / "Set5" / "HR").is_dir(), reason=f"SR benchmark data not found in {SR_DATA}"
)

# Published PSNR-Y of MATLAB bicubic (SRCNN / VDSR / EDSR tables): Set5, Set14, BSD100
PUBLISHED_BICUBIC = {4: (28.42, 26.00, 25.96), 2: (33.66, 30.24, 29.56)}


# ---------------------------------------------------------------------------------------------
# Synthetic folders in the Set5 layout
# ---------------------------------------------------------------------------------------------


def _u8(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> HWC / HW uint8 (round half up, as the protocol)."""
    a = torch.floor(x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return a[..., 0] if a.shape[-1] == 1 else a


def _tensor(a: np.ndarray) -> torch.Tensor:
    """HWC / HW uint8 -> (1, C, H, W) float in [0, 1]."""
    t = torch.from_numpy(a.astype(np.float32) / 255)
    return (t[None] if t.ndim == 2 else t.permute(2, 0, 1))[None].contiguous()


def _write(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def _make_dataset(root: Path, images: dict[str, np.ndarray], scales=(2,)) -> Path:
    """HR/<name>.png and LR_bicubic/X<s>/<name>.png = MATLAB bicubic of the top-left modcrop."""
    for name, hr in images.items():
        _write(root / "HR" / f"{name}.png", hr)
        for s in scales:
            h, w = hr.shape[0] // s * s, hr.shape[1] // s * s
            lr = imresize(_tensor(hr[:h, :w]), scale=1 / s, quantize=True)[0]
            _write(root / "LR_bicubic" / f"X{s}" / f"{name}.png", _u8(lr))
    return root


@pytest.fixture
def rgb_dataset(tmp_path: Path) -> Path:
    import skimage.data

    images = {
        "astronaut": skimage.data.astronaut()[100:167, 180:250],  # 67x70: modcrop to 66x70 at x2
        "coffee": skimage.data.coffee()[150:214, 200:264],
    }
    return _make_dataset(tmp_path / "rgb", images, scales=(2, 4))


@pytest.fixture
def gray_dataset(tmp_path: Path) -> Path:
    import skimage.data

    return _make_dataset(tmp_path / "gray", {"camera": skimage.data.camera()[200:265, 180:250]})


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def _bilinear(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


# ---------------------------------------------------------------------------------------------
# Layout errors
# ---------------------------------------------------------------------------------------------


def _break(root: Path, how: str) -> tuple[int, str]:
    """Damage a valid folder; returns (scale to ask, a phrase the error must contain)."""
    import shutil

    if how == "no HR":
        shutil.rmtree(root / "HR")
        return 2, "HR/ missing"
    if how == "no LR":
        shutil.rmtree(root / "LR_bicubic")
        return 2, "LR_bicubic/X2/ missing"
    if how == "no scale":
        return 3, "has no scale x3: folder"
    if how == "LR without HR":
        _write(root / "LR_bicubic" / "X2" / "orphan.png", np.zeros((8, 8, 3), np.uint8))
        return 2, "without an HR partner"
    if how == "HR without LR":
        (root / "LR_bicubic" / "X2" / "coffee.png").unlink()
        return 2, "without an LR file"
    if how == "size":
        _write(root / "LR_bicubic" / "X2" / "coffee.png", np.zeros((20, 32, 3), np.uint8))
        return 2, "size mismatch at x2"
    raise AssertionError(how)


HOWS = ("no HR", "no LR", "no scale", "LR without HR", "HR without LR", "size")


@pytest.mark.parametrize("how", HOWS)
def test_layout_errors_name_what_is_wrong(rgb_dataset: Path, how: str):
    scale, phrase = _break(rgb_dataset, how)
    with pytest.raises(DatasetLayoutError, match=phrase) as info:
        evaluate_sr(rgb_dataset, scale, "bicubic")
    message = str(info.value)
    if how == "no scale":
        assert "x2, x4" in message  # the scales the folder has
    if how == "LR without HR":
        assert "orphan.png" in message
    if how == "HR without LR":
        assert "coffee.png" in message


@pytest.mark.parametrize("how", HOWS)
def test_cli_exits_2_on_layout_errors(rgb_dataset: Path, tmp_path: Path, how: str, capsys):
    scale, phrase = _break(rgb_dataset, how)
    out = tmp_path / "scores.json"
    code = main(["eval", str(rgb_dataset), "--scale", str(scale), "--model", "bicubic", "--json", str(out)])
    assert code == 2
    assert phrase in capsys.readouterr().err
    assert not out.exists()


def test_cli_checks_every_folder_before_running(rgb_dataset: Path, tmp_path: Path, capsys):
    code = main(["eval", str(rgb_dataset), str(tmp_path / "nowhere"), "--scale", "2", "--model", "bicubic"])
    captured = capsys.readouterr()
    assert code == 2 and "dataset folder not found" in captured.err
    assert "astronaut" not in captured.out  # nothing was evaluated


def test_missing_folder_and_bad_arguments(tmp_path: Path, rgb_dataset: Path):
    with pytest.raises(DatasetLayoutError, match="dataset folder not found"):
        find_sr_pairs(tmp_path / "missing", 2)
    with pytest.raises(ValueError, match="scale must be a positive int"):
        evaluate_sr(rgb_dataset, 0, "bicubic")
    with pytest.raises(ValueError, match="max_images"):
        evaluate_sr(rgb_dataset, 2, "bicubic", max_images=0)
    with pytest.raises(ValueError, match=r"expected \(1, 3, 66, 70\)"):
        evaluate_sr(rgb_dataset, 2, lambda x: x)  # not upscaled


# ---------------------------------------------------------------------------------------------
# Values: the protocol of restore.metrics on the same arrays
# ---------------------------------------------------------------------------------------------


def test_rows_equal_restore_metrics_on_the_same_arrays(rgb_dataset: Path):
    result = evaluate_sr(rgb_dataset, 2, _bilinear)
    assert [r.name for r in result.rows] == ["astronaut", "coffee"]
    for row in result.rows:
        hr = _tensor(_read(rgb_dataset / "HR" / f"{row.name}.png"))
        lr = _tensor(_read(rgb_dataset / "LR_bicubic" / "X2" / f"{row.name}.png"))
        hr = hr[..., : lr.shape[-2] * 2, : lr.shape[-1] * 2]  # top-left modcrop
        expected = sr_metrics(_bilinear(lr).clamp(0, 1), hr, 2)
        assert row.psnr_y == pytest.approx(float(expected["psnr_y"][0]), abs=1e-12)
        assert row.ssim_y == pytest.approx(float(expected["ssim_y"][0]), abs=1e-12)
        assert row.lpips is None and not row.gray
    assert result.means["psnr_y"] == pytest.approx(sum(r.psnr_y for r in result.rows) / 2, abs=1e-12)
    assert result.metric_names == ["psnr_y", "ssim_y"]


def test_bicubic_is_matlab_imresize_on_the_uint8_lr(rgb_dataset: Path):
    result = evaluate_sr(rgb_dataset, 4, "bicubic", max_images=1)
    assert len(result.rows) == 1 and result.method == "bicubic"
    hr = _tensor(_read(rgb_dataset / "HR" / "astronaut.png"))
    lr = _tensor(_read(rgb_dataset / "LR_bicubic" / "X4" / "astronaut.png"))
    hr = hr[..., : lr.shape[-2] * 4, : lr.shape[-1] * 4]
    expected = sr_metrics(imresize(lr, scale=4, quantize=True), hr, 4)
    assert result.rows[0].psnr_y == pytest.approx(float(expected["psnr_y"][0]), abs=1e-12)


def test_a_module_goes_through_the_predictor(rgb_dataset: Path):
    import restore.models as models

    torch.manual_seed(0)
    net = models.build("compact_tiny", scale=2).eval()
    result = evaluate_sr(rgb_dataset, 2, net)
    assert result.method == "compact_tiny"
    for row in result.rows:
        hr = _tensor(_read(rgb_dataset / "HR" / f"{row.name}.png"))
        lr = _tensor(_read(rgb_dataset / "LR_bicubic" / "X2" / f"{row.name}.png"))
        with torch.no_grad():
            out = net(lr).clamp(0, 1)
        expected = sr_metrics(out, hr[..., : out.shape[-2], : out.shape[-1]], 2)
        # channels_last / tiling may move a value across an 8-bit rounding edge: tiny differences
        assert row.psnr_y == pytest.approx(float(expected["psnr_y"][0]), abs=2e-3)
    with pytest.raises(ValueError, match="upscales by 2, but scale=4"):
        evaluate_sr(rgb_dataset, 4, net)


def test_lpips_column_equals_lpips_metric(rgb_dataset: Path):
    result = evaluate_sr(rgb_dataset, 2, _bilinear, lpips=True, lpips_weights="random")
    assert result.metric_names == ["psnr_y", "ssim_y", "lpips"]
    for row in result.rows:
        hr = _tensor(_read(rgb_dataset / "HR" / f"{row.name}.png"))
        lr = _tensor(_read(rgb_dataset / "LR_bicubic" / "X2" / f"{row.name}.png"))
        out = _bilinear(lr).clamp(0, 1)
        pair = (out, hr[..., : out.shape[-2], :])
        quantized = [torch.floor(t * 255 + 0.5)[..., 2:-2, 2:-2] / 255 for t in pair]
        expected = float(lpips_metric(*quantized, weights="random")[0])
        assert row.lpips == pytest.approx(expected, rel=1e-5)


def test_lpips_required_but_missing_is_a_clear_error(rgb_dataset: Path, tmp_path: Path):
    from losses.perceptual import WeightsNotFoundError

    missing = tmp_path / "no_such_backbone.pth"
    with pytest.raises(WeightsNotFoundError, match="no_such_backbone.pth"):
        evaluate_sr(rgb_dataset, 2, "bicubic", lpips=True, lpips_weights=missing)
    result = evaluate_sr(rgb_dataset, 2, "bicubic", lpips=None, lpips_weights=missing)  # auto: skipped
    assert all(r.lpips is None for r in result.rows) and "lpips" not in result.means


# ---------------------------------------------------------------------------------------------
# Grayscale files: scored on their gray values
# ---------------------------------------------------------------------------------------------


def _manual_gray_psnr(pred_u8: np.ndarray, hr_u8: np.ndarray, border: int) -> float:
    a = pred_u8[border:-border, border:-border].astype(np.float64)
    b = hr_u8[border:-border, border:-border].astype(np.float64)
    return 10 * math.log10(255.0**2 / np.mean((a - b) ** 2))


def test_gray_image_is_scored_on_its_gray_values(gray_dataset: Path):
    from skimage.metrics import structural_similarity

    result = evaluate_sr(gray_dataset, 2, "bicubic")
    row = result.rows[0]
    assert row.gray
    hr = _read(gray_dataset / "HR" / "camera.png")
    lr = _read(gray_dataset / "LR_bicubic" / "X2" / "camera.png")
    assert hr.ndim == 2 and lr.ndim == 2  # mode L files
    hr = hr[: lr.shape[0] * 2, : lr.shape[1] * 2]
    up = _u8(imresize(_tensor(lr), scale=2, quantize=True)[0])
    assert row.psnr_y == pytest.approx(_manual_gray_psnr(up, hr, 2), abs=1e-9)
    expected_ssim = structural_similarity(
        up[2:-2, 2:-2].astype(np.float64),
        hr[2:-2, 2:-2].astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert row.ssim_y == pytest.approx(expected_ssim, abs=1e-9)
    # Scoring the same file as RGB (Y = 16 + 219/255 gray) compresses the errors: 20 log10(255/219)
    as_rgb = sr_metrics(_tensor(up).expand(-1, 3, -1, -1), _tensor(hr).expand(-1, 3, -1, -1), 2)
    assert float(as_rgb["psnr_y"][0]) - row.psnr_y == pytest.approx(20 * math.log10(255 / 219), abs=0.02)


def test_gray_image_with_a_colour_output_uses_bt601_luma(gray_dataset: Path):
    def tinted(x: torch.Tensor) -> torch.Tensor:  # the input is the gray LR replicated to RGB
        assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
        out = imresize(x, scale=2, quantize=True)
        return out + torch.tensor([0.03, -0.01, 0.05]).view(1, 3, 1, 1)

    row = evaluate_sr(gray_dataset, 2, tinted).rows[0]
    hr = _read(gray_dataset / "HR" / "camera.png")
    lr = _read(gray_dataset / "LR_bicubic" / "X2" / "camera.png")
    hr = hr[: lr.shape[0] * 2, : lr.shape[1] * 2]
    rgb = tinted(_tensor(lr).expand(-1, 3, -1, -1)).clamp(0, 1)[0].double().numpy()
    gray = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]  # what `restore upscale` saves for gray input
    gray_u8 = np.clip(np.floor(gray * 255 + 0.5), 0, 255)
    assert row.psnr_y == pytest.approx(_manual_gray_psnr(gray_u8, hr, 2), abs=1e-6)


# ---------------------------------------------------------------------------------------------
# The published bicubic baselines and the bundled model (real benchmark data)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    """float64 SSIM on 100 images: one thread is faster than two on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@needs_data
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("scale", (4, 2))
@pytest.mark.parametrize("index, dataset", [(0, "Set5"), (1, "Set14"), (2, "BSD100")])
def test_reproduces_the_published_bicubic_baselines(scale: int, index: int, dataset: str):
    result = evaluate_sr(SR_DATA / dataset, scale, "bicubic", lpips=False)
    assert len(result.rows) == {"Set5": 5, "Set14": 14, "BSD100": 100}[dataset]
    assert result.means["psnr_y"] == pytest.approx(PUBLISHED_BICUBIC[scale][index], abs=0.02)
    if dataset == "Set14":
        assert [r.name for r in result.rows if r.gray] == ["bridge"]


@needs_data
def test_bundled_model_beats_bicubic_on_set5():
    model = evaluate_sr(SR_DATA / "Set5", 4, "sr-x4", lpips=False, max_images=2)
    bicubic = evaluate_sr(SR_DATA / "Set5", 4, "bicubic", lpips=False, max_images=2)
    assert model.method == "sr-x4 (compact_tiny)" and [r.name for r in model.rows] == ["baby", "bird"]
    assert model.means["psnr_y"] > bicubic.means["psnr_y"] + 1.0


# ---------------------------------------------------------------------------------------------
# Output: JSON, markdown, the command
# ---------------------------------------------------------------------------------------------


def test_result_json_and_markdown(gray_dataset: Path):
    result = evaluate_sr(gray_dataset, 2, "bicubic")
    data = json.loads(result.to_json())
    assert data["scale"] == 2 and data["method"] == "bicubic" and data["images"] == 1
    assert data["mean"]["psnr_y"] == result.means["psnr_y"]
    assert data["rows"][0]["name"] == "camera" and data["rows"][0]["gray"] is True
    markdown = result.to_markdown()
    assert "| camera (gray) |" in markdown and f"**{result.means['psnr_y']:.2f}**" in markdown


def test_cli_prints_rows_and_means_and_writes_json(rgb_dataset: Path, gray_dataset: Path, tmp_path, capsys):
    out = tmp_path / "out" / "scores.json"
    args = ["eval", str(rgb_dataset), str(gray_dataset), "--scale", "2", "--model", "bicubic"]
    assert main([*args, "--json", str(out), "--no-lpips"]) == 0
    text = capsys.readouterr().out
    for name in ("astronaut", "coffee", "* camera", "mean"):
        assert name in text
    data = json.loads(out.read_text())
    assert data["scale"] == 2 and data["method"] == "bicubic" and len(data["results"]) == 2
    for stored, folder in zip(data["results"], (rgb_dataset, gray_dataset), strict=True):
        direct = evaluate_sr(folder, 2, "bicubic", lpips=False)
        assert stored["mean"] == pytest.approx(direct.means, abs=1e-12)
        psnrs = [r["psnr_y"] for r in stored["rows"]]
        assert psnrs == pytest.approx([r.psnr_y for r in direct.rows], abs=1e-12)

    assert main([*args[:2], "--scale", "2", "--model", "bicubic", "--markdown", "--max-images", "1"]) == 0
    text = capsys.readouterr().out
    assert "| astronaut |" in text and "| coffee |" not in text and "| **mean** |" in text
    assert main([*args, "--max-images", "0"]) == 2
    assert "--max-images" in capsys.readouterr().err


def test_cli_model_errors_exit_2(rgb_dataset: Path, capsys):
    assert main(["eval", str(rgb_dataset), "--scale", "2", "--model", "sr-x4"]) == 2
    assert "upscales by 4, but scale=2" in capsys.readouterr().err
    assert main(["eval", str(rgb_dataset), "--scale", "2", "--model", str(rgb_dataset / "none.pth")]) == 2
    assert capsys.readouterr().err.startswith("restore eval: ")
