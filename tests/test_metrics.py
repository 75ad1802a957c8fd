"""restore.metrics against its anchors: scikit-image's PSNR, SSIM and rgb2ycbcr, torchmetrics' PSNR,
BasicSR's Y-channel formula written out in numpy, the lpips package, and the published bicubic
baselines of Set5 / Set14 (these need ../shared/data and skip without it)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from restore import metrics
from restore.metrics import lpips_available, lpips_metric, psnr, rgb_to_y, sr_metrics, ssim

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IMAGES = SHARED_DATA / "images"


def _degraded_uint8(image: np.ndarray, seed: int, noise: float = 12.0) -> np.ndarray:
    """A natural uint8 HWC image blurred (3x3 box), with gaussian noise, rounded back to uint8."""
    x = torch.from_numpy(image.astype(np.float64)).permute(2, 0, 1)[None]
    x = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    gen = torch.Generator().manual_seed(seed)
    x = x + noise * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def _tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 HWC (or HW) -> float32 (1, C, H, W) in [0, 1]."""
    array = image.astype(np.float32) / 255.0
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()


@pytest.fixture(scope="module")
def natural_uint8() -> list[tuple[np.ndarray, np.ndarray]]:
    """(target, degraded) uint8 HWC pairs: astronaut 512x512, chelsea 300x451, coffee 400x600."""
    images = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()]
    return [(img, _degraded_uint8(img, seed)) for seed, img in enumerate(images)]


def _basicsr_y(rgb_uint8: np.ndarray) -> np.ndarray:
    """BasicSR's ``to_y_channel`` (``bgr2ycbcr(img / 255, y_only=True) * 255``) in float64, from the
    published coefficients: BGR weights (24.966, 128.553, 65.481), offset 16."""
    bgr = rgb_uint8[..., ::-1].astype(np.float64) / 255.0
    return bgr @ np.array([24.966, 128.553, 65.481]) + 16.0


def _skimage_ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255) -> float:
    """scikit-image's SSIM with the paper's settings. Its map is gaussian-filtered with 'reflect'
    padding and then cropped by (win_size - 1) // 2 = 5 pixels before averaging, which leaves exactly
    the positions where the 11x11 window fits: the same 'valid' region as ours."""
    return structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
        channel_axis=2 if a.ndim == 3 else None,
    )


# ---------------------------------------------------------------------------------------------
# Colour conversion and PSNR
# ---------------------------------------------------------------------------------------------


def test_rgb_to_y_matches_skimage_rgb2ycbcr():
    image = skimage.data.coffee()
    ours = rgb_to_y(torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255)[0, 0].numpy() * 255
    reference = rgb2ycbcr(image)[..., 0]  # MATLAB's rgb2ycbcr on [0, 255]-scaled output
    assert np.abs(ours - reference).max() < 1e-9
    assert 16 <= reference.min() and reference.max() <= 235


def test_psnr_matches_skimage_on_uint8_images(natural_uint8):
    for target, pred in natural_uint8:
        reference = peak_signal_noise_ratio(target, pred, data_range=255)
        exact = psnr(_tensor(pred), _tensor(target))  # 8-bit levels: quantize=True gives them back exactly
        assert exact.shape == (1,) and exact.dtype == torch.float64
        assert abs(exact.item() - reference) < 1e-10
        floats = psnr(_tensor(pred), _tensor(target), quantize=False)  # k/255 in float32: ~1e-7 off
        assert abs(floats.item() - reference) < 1e-5
        assert 20 < reference < 35


def test_psnr_matches_torchmetrics_per_image_on_float_values():
    tm = pytest.importorskip("torchmetrics.functional.image")
    torch.manual_seed(0)
    target = torch.rand(4, 3, 48, 40)
    pred = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    reference = tm.peak_signal_noise_ratio(
        pred.double(), target.double(), data_range=1.0, reduction="none", dim=(1, 2, 3)
    )
    ours = psnr(pred, target, quantize=False)
    assert ours.shape == (4,)
    assert torch.allclose(ours, reference, rtol=0, atol=1e-5)
    # data_range is the peak of the scale the images are on
    assert torch.allclose(psnr(pred * 255, target * 255, data_range=255, quantize=False), ours, atol=1e-9)
    mean = psnr(pred, target, quantize=False, reduction="mean")
    assert mean.ndim == 0 and torch.isclose(mean, reference.mean(), atol=1e-9)


@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_y_matches_basicsr_formula(natural_uint8, crop):
    for target, pred in natural_uint8:
        ty, py = _basicsr_y(target), _basicsr_y(pred)
        if crop:
            ty, py = ty[crop:-crop, crop:-crop], py[crop:-crop, crop:-crop]
        reference = 10 * np.log10(255.0**2 / np.mean((ty - py) ** 2))
        ours = psnr(_tensor(pred), _tensor(target), y_channel=True, crop_border=crop)
        assert abs(ours.item() - reference) < 1e-9


def test_psnr_quantizes_to_8_bits_before_scoring():
    torch.manual_seed(0)
    target = torch.randint(0, 256, (2, 3, 16, 16)).float() / 255
    pred = target + 0.4 / 255 * (2 * torch.rand_like(target) - 1)  # rounds back to the target
    assert torch.isinf(psnr(pred, target)).all()
    assert torch.isfinite(psnr(pred, target, quantize=False)).all()
    # out-of-range values saturate like a uint8 cast
    over = target.clone()
    over[:, :, 0, 0] = 1.7
    clipped = target.clone()
    clipped[:, :, 0, 0] = 1.0
    assert torch.equal(psnr(over, target), psnr(clipped, target))


def test_psnr_identical_images_is_inf_and_ssim_is_one():
    x = _tensor(skimage.data.chelsea()[:64, :64])
    assert torch.isinf(psnr(x, x)).all()
    assert torch.equal(ssim(x, x), torch.ones(1, dtype=torch.float64))


def test_gray_image_scored_on_its_values_not_on_compressed_y():
    """A 1-channel image is used as it is under y_channel (MATLAB, BasicSR); the same image
    replicated to RGB has Y = 16 + 219/255 g, whose errors are 219/255 as large: +20 log10(255/219)."""
    gray = skimage.data.camera()[100:164, 100:164]
    target, pred = _tensor(gray), _tensor(_degraded_uint8(np.repeat(gray[..., None], 3, 2), 0)[..., :1])
    one = psnr(pred, target, y_channel=True)
    three = psnr(pred.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1), y_channel=True)
    pred_u8 = (pred[0, 0] * 255).round().byte().numpy()
    assert one.item() == pytest.approx(peak_signal_noise_ratio(gray, pred_u8, data_range=255), abs=1e-9)
    assert (three - one).item() == pytest.approx(20 * np.log10(255 / 219), abs=1e-9)


# ---------------------------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------------------------


def test_ssim_rgb_matches_skimage_per_channel_mean(natural_uint8):
    for target, pred in natural_uint8:
        reference = _skimage_ssim(pred, target)
        ours = ssim(_tensor(pred), _tensor(target))
        assert ours.shape == (1,) and ours.dtype == torch.float64
        assert abs(ours.item() - reference) < 1e-4
        assert 0.2 < reference < 0.95


def test_ssim_y_channel_with_crop_matches_skimage_on_basicsr_y(natural_uint8):
    crop = 4
    for target, pred in natural_uint8:
        ty = _basicsr_y(target)[crop:-crop, crop:-crop]
        py = _basicsr_y(pred)[crop:-crop, crop:-crop]
        reference = _skimage_ssim(py, ty)
        ours = ssim(_tensor(pred), _tensor(target), y_channel=True, crop_border=crop)
        assert abs(ours.item() - reference) < 1e-4


def test_ssim_batch_and_data_range(natural_uint8):
    crops = [(t[:96, :128], p[:96, :128]) for t, p in natural_uint8]
    target = torch.cat([_tensor(t) for t, _ in crops])
    pred = torch.cat([_tensor(p) for _, p in crops])
    ours = ssim(pred, target)
    reference = torch.tensor([_skimage_ssim(p, t) for t, p in crops], dtype=torch.float64)
    assert ours.shape == (3,)
    assert torch.allclose(ours, reference, atol=1e-4)
    assert torch.allclose(ssim(pred * 255, target * 255, data_range=255), ours, atol=1e-12)
    assert torch.isclose(ssim(pred, target, reduction="mean"), reference.mean(), atol=1e-4)


def test_ssim_float_values_match_skimage_without_quantizing():
    torch.manual_seed(0)
    target = torch.rand(1, 3, 40, 40, dtype=torch.float64)
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    a, b = (x[0].permute(1, 2, 0).numpy() for x in (pred, target))
    reference = _skimage_ssim(a, b, data_range=1.0)
    assert abs(ssim(pred, target, quantize=False).item() - reference) < 1e-10


# ---------------------------------------------------------------------------------------------
# Border crop
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_crop_border_ignores_the_border_and_only_the_border(natural_uint8, metric):
    target_u8, pred_u8 = natural_uint8[1]
    target, pred = _tensor(target_u8[:64, :80]), _tensor(pred_u8[:64, :80])
    crop = 3
    base = metric(pred, target, crop_border=crop, y_channel=True)
    changed = pred.clone()
    changed[..., :crop, :] = 0.0
    changed[..., -crop:, :] = 1.0
    changed[..., :, :crop] = 0.5
    changed[..., :, -crop:] = 0.0
    assert torch.equal(metric(changed, target, crop_border=crop, y_channel=True), base)
    uncropped = metric(changed, target, crop_border=0, y_channel=True)
    assert not torch.equal(uncropped, metric(pred, target, y_channel=True))
    inside = pred.clone()
    inside[..., crop, crop + 5] = 1.0 - inside[..., crop, crop + 5]  # first row inside the border
    assert not torch.equal(metric(inside, target, crop_border=crop, y_channel=True), base)


# ---------------------------------------------------------------------------------------------
# Mixed precision
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_gives_the_same_values(natural_uint8, dtype):
    target_u8, pred_u8 = natural_uint8[0]
    target, pred = _tensor(target_u8[:96, :96]), _tensor(pred_u8[:96, :96])

    def scores():
        floats = dict(quantize=False)
        return psnr(pred, target, **floats), ssim(pred, target, **floats), sr_metrics(pred, target, 4)

    plain = scores()
    with torch.autocast("cpu", dtype=dtype):
        mixed = scores()
    assert torch.equal(mixed[0], plain[0]) and torch.equal(mixed[1], plain[1])
    assert all(torch.equal(mixed[2][k], plain[2][k]) for k in ("psnr_y", "ssim_y"))
    assert mixed[0].dtype == mixed[1].dtype == torch.float64


# ---------------------------------------------------------------------------------------------
# sr_metrics and the published bicubic baselines
# ---------------------------------------------------------------------------------------------


def test_sr_metrics_is_the_protocol(natural_uint8):
    target_u8, pred_u8 = natural_uint8[2]
    target, pred = _tensor(target_u8[:100, :120]), _tensor(pred_u8[:100, :120]) + 0.001
    result = sr_metrics(pred, target, 3)
    ty, py = _basicsr_y(target_u8[:100, :120])[3:-3, 3:-3], _basicsr_y(pred_u8[:100, :120])[3:-3, 3:-3]
    assert set(result) == {"psnr_y", "ssim_y"}
    assert abs(result["psnr_y"].item() - 10 * np.log10(255.0**2 / np.mean((ty - py) ** 2))) < 1e-9
    assert abs(result["ssim_y"].item() - _skimage_ssim(py, ty)) < 1e-4
    assert sr_metrics(pred, target, 3, reduction="mean")["psnr_y"].ndim == 0


# Bicubic baselines as published in the SR literature (SRCNN/VDSR/EDSR tables): MATLAB bicubic,
# PSNR / SSIM on Y, ``scale`` pixels cropped. (dataset, scale, PSNR dB, SSIM)
PUBLISHED_BICUBIC = [
    ("Set5", 2, 33.66, 0.9299),
    ("Set5", 3, 30.39, 0.8682),
    ("Set5", 4, 28.42, 0.8104),
    ("Set14", 2, 30.24, 0.8688),
    ("Set14", 3, 27.55, 0.7742),
    ("Set14", 4, 26.00, 0.7027),
]  # BSD100 (x2/x3/x4: 29.56/27.21/25.96 dB) reproduces too but takes ~5 s per scale: not a unit test


def _bicubic_scores(dataset: str, scale: int) -> tuple[float, float]:
    from restore.degrade import imresize
    from restore.io.image import list_images, read_image

    psnrs, ssims = [], []
    for lr_path in list_images(IMAGES / dataset / "LR_bicubic" / f"X{scale}"):
        # mode="keep": a grayscale file (Set14's bridge) stays 1 channel and is scored on its values
        lr = read_image(lr_path, mode="keep")[None]
        hr = read_image(IMAGES / dataset / "HR" / lr_path.name, mode="keep")[None]
        hr = hr[..., : lr.shape[-2] * scale, : lr.shape[-1] * scale]  # top-left modcrop
        up = imresize(lr, scale=scale, quantize=True)  # MATLAB imresize on a uint8 image
        result = sr_metrics(up, hr, scale)
        psnrs.append(result["psnr_y"].item())
        ssims.append(result["ssim_y"].item())
    return float(np.mean(psnrs)), float(np.mean(ssims))


@pytest.mark.parametrize(("dataset", "scale", "published_psnr", "published_ssim"), PUBLISHED_BICUBIC)
def test_bicubic_baselines_reproduce_published_numbers(dataset, scale, published_psnr, published_ssim):
    if not (IMAGES / dataset / "LR_bicubic" / f"X{scale}").is_dir():
        pytest.skip(f"needs {IMAGES / dataset} (../shared/data)")
    measured_psnr, measured_ssim = _bicubic_scores(dataset, scale)
    assert abs(measured_psnr - published_psnr) <= 0.02, measured_psnr
    assert abs(measured_ssim - published_ssim) <= 0.002, measured_ssim


# ---------------------------------------------------------------------------------------------
# LPIPS
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alexnet_state() -> dict[str, torch.Tensor]:
    """Seeded random torchvision AlexNet ``features`` weights (nothing is downloaded)."""
    import torchvision

    torch.manual_seed(0)
    return {k: v.clone() for k, v in torchvision.models.alexnet(weights=None).features.state_dict().items()}


def test_lpips_metric_matches_lpips_package(alexnet_state):
    lpips = pytest.importorskip("lpips")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference_net = lpips.LPIPS(pretrained=True, net="alex", pnet_rand=True, verbose=False).eval()
    reference_net.net.load_state_dict(
        {key: alexnet_state[key.split(".", 1)[1]] for key in reference_net.net.state_dict()}
    )
    images = [skimage.data.astronaut()[100:164, 180:244], skimage.data.coffee()[120:184, 200:264]]
    target = torch.cat([_tensor(x) for x in images])
    pred = torch.cat([_tensor(_degraded_uint8(x, i)) for i, x in enumerate(images)])
    with torch.no_grad():
        reference = reference_net(pred, target, normalize=True).flatten()
    ours = lpips_metric(pred, target, weights=alexnet_state)
    assert ours.shape == (2,)
    assert torch.allclose(ours, reference, rtol=1e-4, atol=1e-6)
    assert (ours > 0).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = lpips_metric(pred, target, weights=alexnet_state)
    assert mixed.dtype == torch.float32 and torch.allclose(mixed, ours, rtol=1e-5, atol=1e-7)
    assert torch.isclose(lpips_metric(pred, target, weights=alexnet_state, reduction="mean"), ours.mean())


def test_lpips_without_weights_raises_and_available_says_so(tmp_path, monkeypatch):
    from losses.perceptual import WeightsNotFoundError, torchvision_weights_path

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))  # an empty torch.hub cache
    monkeypatch.setattr(metrics, "_LPIPS_CACHE", {})
    assert lpips_available() is False
    assert lpips_available(net="no_such_net") is False
    assert lpips_available(weights=tmp_path / "missing.pth") is False
    assert lpips_available(weights="random") is True
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(WeightsNotFoundError, match="alexnet"):
        lpips_metric(x, x)
    path = torchvision_weights_path("alexnet")
    assert path.parent == tmp_path / "checkpoints"
    path.parent.mkdir()
    path.touch()
    assert lpips_available() is True


# ---------------------------------------------------------------------------------------------
# Table and argument checks
# ---------------------------------------------------------------------------------------------


def test_metric_table():
    assert metrics.available_metrics("image") == ["lpips", "psnr", "ssim"]
    assert metrics.get_metric("psnr").fn is psnr and metrics.get_metric("ssim").fn is ssim
    assert metrics.get_metric("psnr").higher_is_better and metrics.get_metric("ssim").higher_is_better
    lpips_spec = metrics.get_metric("lpips")
    assert not lpips_spec.higher_is_better and lpips_spec.needs_weights and lpips_spec.fn is lpips_metric
    assert not metrics.get_metric("psnr").needs_weights
    with pytest.raises(KeyError, match="Did you mean 'ssim'"):
        metrics.get_metric("sism")


def test_argument_checks():
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(x, x[..., :16])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ssim(x[0], x[0])
    with pytest.raises(ValueError, match="crop_border"):
        psnr(x, x, crop_border=-1)
    with pytest.raises(ValueError, match="crop_border=11 leaves 10x10"):
        ssim(x, x, crop_border=11)
    with pytest.raises(ValueError, match="y_channel"):
        psnr(torch.rand(1, 2, 8, 8), torch.rand(1, 2, 8, 8), y_channel=True)
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=0)
    with pytest.raises(ValueError, match="reduction"):
        ssim(x, x, reduction="sum")
    with pytest.raises(ValueError, match="scale"):
        sr_metrics(x, x, 0)
    with pytest.raises(ValueError, match="rgb_to_y"):
        rgb_to_y(torch.rand(1, 1, 8, 8))
