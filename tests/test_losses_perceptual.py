"""Perceptual losses against their references: ``vgg`` against BasicSR's definition computed by
hand on torchvision's VGG, ``lpips`` against the lpips package, ``gmsd`` / ``ms_gmsd`` /
``haarpsi`` against piq. Backbones use seeded random weights: nothing is downloaded."""

from __future__ import annotations

import warnings

import numpy as np
import piq
import pytest
import torch
import torch.nn.functional as F

import losses
from losses.gmsd import gmsd, haarpsi, multi_scale_gmsd
from losses.perceptual import (
    LPIPSLoss,
    PerceptualLoss,
    WeightsNotFoundError,
    gram_matrix,
    vgg_layer_names,
)

lpips = pytest.importorskip("lpips")


def _tensor(image: np.ndarray) -> torch.Tensor:
    array = image.astype(np.float32) / 255.0
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _pair(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two natural RGB crops ``(2, 3, size, size)`` and a noisy, blurred version of them."""
    import skimage.data

    target = torch.stack(
        [
            _tensor(skimage.data.astronaut()[60 : 60 + size, 180 : 180 + size]),
            _tensor(skimage.data.coffee()[120 : 120 + size, 200 : 200 + size]),
        ]
    )
    gen = torch.Generator().manual_seed(seed)
    noisy = target + 0.06 * torch.randn(target.shape, generator=gen)
    pred = F.avg_pool2d(noisy, 3, stride=1, padding=1, count_include_pad=False).clamp(0, 1)
    return pred, target


@pytest.fixture(scope="module")
def pair64() -> tuple[torch.Tensor, torch.Tensor]:
    return _pair(64)


_PACKAGE_LPIPS: dict[str, torch.nn.Module] = {}


def _package_lpips(net: str, ours: LPIPSLoss) -> torch.nn.Module:
    """lpips.LPIPS with the package's linear layers and OUR backbone weights copied in."""
    if net not in _PACKAGE_LPIPS:  # built once per net: the package builds the whole classifier too
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's deprecation of pretrained=
            _PACKAGE_LPIPS[net] = lpips.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False).eval()
    ref = _PACKAGE_LPIPS[net]
    own = ours.features.state_dict()
    # package keys: slice<k>.<torchvision index>.<param>; ours: <torchvision index>.<param>
    ref.net.load_state_dict({key: own[key.split(".", 1)[1]].clone() for key in ref.net.state_dict()})
    return ref


# --------------------------------------------------------------------------------------------
# LPIPS
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_lpips_matches_package_values_and_gradients(net):
    torch.manual_seed(0)
    ours = LPIPSLoss(net=net, weights="random", reduction="none")
    ref = _package_lpips(net, ours)
    for size in (64, 96):
        pred, target = _pair(size)
        x_ours = pred.clone().requires_grad_()
        x_ref = pred.clone().requires_grad_()
        value = ours(x_ours, target)
        expected = ref(x_ref, target, normalize=True).flatten()
        assert value.shape == (2,)
        assert float(expected.min()) > 1e-3  # a real distance, not a degenerate one
        assert torch.allclose(value, expected, rtol=1e-5, atol=1e-5), (size, value, expected)

        value.sum().backward()
        expected.sum().backward()
        # ours runs channels_last, the package the default layout: the float32 sums differ in order, and
        # at max-pool ties / ReLU kinks that round-off can pick another branch for single pixels
        # (measured at 96x96 with VGG: relative L2 distance to a float64 run 3.2e-3 for the package,
        # 1.4e-3 for ours; elsewhere < 1e-5 and 4e-4). So the gradients are compared as a whole.
        err = (x_ours.grad - x_ref.grad).norm() / x_ref.grad.norm()
        assert err < 5e-3, float(err)


def test_lpips_reductions_and_zero_at_identity(pair64):
    pred, target = pair64
    torch.manual_seed(1)
    per_image = LPIPSLoss(weights="random", reduction="none")(pred, target)
    torch.manual_seed(1)
    mean = LPIPSLoss(weights="random")(pred, target)
    torch.manual_seed(1)
    total = LPIPSLoss(weights="random", reduction="sum")(pred, target)
    assert torch.allclose(mean, per_image.mean()) and torch.allclose(total, per_image.sum())

    torch.manual_seed(1)
    loss = LPIPSLoss(weights="random")
    x = target.clone().requires_grad_()
    value = loss(x, target)
    value.backward()
    assert float(value) == 0.0
    assert torch.isfinite(x.grad).all()


def test_lpips_all_zero_features_give_finite_gradients_where_package_gives_nan():
    # The cause, in the package: normalize_tensor = x / (sqrt(sum x^2) + eps) -> d sqrt at 0 = inf.
    zero = torch.zeros(1, 8, 4, 4, requires_grad=True)
    other = torch.rand(1, 8, 4, 4)
    (lpips.normalize_tensor(zero) - lpips.normalize_tensor(other)).square().sum().backward()
    assert torch.isnan(zero.grad).any()

    torch.manual_seed(0)
    ours = LPIPSLoss(net="alex", weights="random")
    with torch.no_grad():
        ours.features[0].bias.fill_(-1e3)  # first ReLU off everywhere: all-zero features
    ref = _package_lpips("alex", ours)
    pred, target = torch.zeros(2, 3, 64, 64, requires_grad=True), torch.zeros(2, 3, 64, 64)
    assert (ours.extract(target)[0] == 0).all()

    with pytest.raises(RuntimeError, match="SqrtBackward0.*nan"):
        with torch.autograd.detect_anomaly(check_nan=True):
            ref(pred, target, normalize=True).sum().backward()

    pred.grad = None
    with torch.autograd.detect_anomaly(check_nan=True):
        value = ours(pred, target)
        value.backward()
    assert float(value) == 0.0
    assert torch.isfinite(pred.grad).all()

    # without the bias trick (features not zero): also finite, and zero, at pred == target == 0
    torch.manual_seed(0)
    plain = LPIPSLoss(net="squeeze", weights="random")
    pred.grad = None
    plain(pred, target).backward()
    assert torch.isfinite(pred.grad).all()


def test_lpips_linear_weights_from_package_file_path_or_random(tmp_path, pair64):
    pred, target = pair64
    torch.manual_seed(2)
    packaged = LPIPSLoss(net="alex", weights="random")
    state = torch.load(f"{lpips.__path__[0]}/weights/v0.1/alex.pth", map_location="cpu", weights_only=True)
    assert torch.equal(packaged.lins[0].weight, state["lin0.model.1.weight"])
    torch.save(state, tmp_path / "lin.pth")
    torch.manual_seed(2)
    from_path = LPIPSLoss(net="alex", weights="random", lin_weights=tmp_path / "lin.pth")
    assert torch.equal(from_path(pred, target), packaged(pred, target))
    torch.manual_seed(2)
    random_lins = LPIPSLoss(net="alex", weights="random", lin_weights="random")
    assert not torch.equal(random_lins.lins[0].weight, packaged.lins[0].weight)


def test_lpips_backbone_weights_from_local_files(tmp_path, pair64):
    from safetensors.torch import save_file

    pred, target = pair64
    torch.manual_seed(3)
    source = LPIPSLoss(net="squeeze", weights="random")
    state = {f"features.{k}": v.clone() for k, v in source.features.state_dict().items()}
    torch.save(state, tmp_path / "squeeze.pth")
    save_file(state, str(tmp_path / "squeeze.safetensors"))
    expected = source(pred, target)
    for name in ("squeeze.pth", "squeeze.safetensors"):
        torch.manual_seed(99)  # a different random init that the file must overwrite
        loaded = LPIPSLoss(net="squeeze", weights=tmp_path / name)
        assert torch.equal(loaded(pred, target), expected)


def test_lpips_argument_checks():
    with pytest.raises(ValueError, match="alex"):
        LPIPSLoss(net="alexnet_", weights="random")
    with pytest.raises(ValueError, match="0.1"):
        LPIPSLoss(version="0.0", weights="random")
    with pytest.raises(ValueError, match="reduction"):
        LPIPSLoss(weights="random", reduction="avg")


# --------------------------------------------------------------------------------------------
# VGG perceptual / style loss
# --------------------------------------------------------------------------------------------

# BasicSR's basicsr/archs/vgg_arch.py NAMES
BASICSR_VGG19 = [
    "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
    "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4", "pool3",
    "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4", "pool4",
    "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4", "pool5",
]  # fmt: skip
BASICSR_VGG16 = [
    "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
    "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "pool3",
    "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "pool4",
    "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "pool5",
]  # fmt: skip


def _torchvision_vgg19_features(state: dict) -> torch.nn.Sequential:
    """torchvision's own VGG19 feature stack (what torchvision.models.vgg19 builds), its first
    layers loaded with ``state``."""
    from torchvision.models.vgg import cfgs, make_layers

    depth = 1 + max(int(key.split(".")[0]) for key in state)
    cfg, modules = [], 0
    for entry in cfgs["E"]:  # the shortest prefix of VGG19's config that holds ``depth`` modules
        if modules >= depth:
            break
        cfg.append(entry)
        modules += 1 if entry == "M" else 2
    features = make_layers(cfg, batch_norm=False)
    features[:depth].load_state_dict(state)
    return features.eval()


def _normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


@pytest.fixture(scope="module")
def esrgan_loss() -> PerceptualLoss:
    torch.manual_seed(0)
    return PerceptualLoss(weights="random")  # ESRGAN: conv5_4, l1


def test_vgg_layer_names_match_basicsr():
    import torchvision

    with torch.device("meta"):
        vgg19 = torchvision.models.vgg19().features
        vgg16 = torchvision.models.vgg16().features
        vgg16_bn = torchvision.models.vgg16_bn().features
    assert vgg_layer_names(vgg19) == BASICSR_VGG19
    assert vgg_layer_names(vgg16) == BASICSR_VGG16
    assert BASICSR_VGG19.index("conv5_4") == 34 and isinstance(vgg19[34], torch.nn.Conv2d)
    assert isinstance(vgg19[35], torch.nn.ReLU)
    assert BASICSR_VGG16.index("conv5_3") == 28 and isinstance(vgg16[28], torch.nn.Conv2d)
    bn_names = vgg_layer_names(vgg16_bn)
    assert bn_names[:4] == ["conv1_1", "bn1_1", "relu1_1", "conv1_2"]
    assert isinstance(vgg16_bn[bn_names.index("bn3_2")], torch.nn.BatchNorm2d)

    torch.manual_seed(0)
    assert len(PerceptualLoss(layer_weights={"relu2_2": 1.0}, weights="random").features) == 9
    assert len(PerceptualLoss(network="vgg16", weights="random").features) == 29  # up to conv5_3


def test_vgg_feature_term_equals_hand_computation_at_conv5_4(esrgan_loss, pair64):
    pred, target = pair64
    features = _torchvision_vgg19_features(esrgan_loss.features.state_dict())
    with torch.no_grad():
        expected = (features[:35](_normalise(pred)) - features[:35](_normalise(target))).abs().mean()
        value = esrgan_loss(pred, target)
    assert float(expected) > 0
    assert torch.allclose(value, expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("criterion", ["l1", "l2", "fro"])
def test_vgg_multi_layer_perceptual_and_style_terms_equal_hand_computation(criterion, pair64):
    pred, target = pair64
    layer_weights = {"relu1_2": 0.3, "conv2_1": 1.0, "pool2": 0.5, "relu3_2": 2.0}
    indices = {name: BASICSR_VGG19.index(name) for name in layer_weights}
    torch.manual_seed(4)
    loss = PerceptualLoss(
        layer_weights, perceptual_weight=0.7, style_weight=50.0, criterion=criterion, weights="random"
    )
    features = _torchvision_vgg19_features(loss.features.state_dict())

    def taps(x):
        out, h = {}, _normalise(x)
        for i, layer in enumerate(features):
            h = layer(h)
            for name, index in indices.items():
                if index == i:
                    out[name] = h.clone()  # torchvision's ReLUs are in place
        return out

    def distance(a, b):
        if criterion == "l1":
            return (a - b).abs().mean()
        if criterion == "l2":
            return (a - b).square().mean()
        return torch.sqrt((a - b).square().sum())

    def gram(f):
        n, c, h, w = f.shape
        f = f.reshape(n, c, h * w)
        return f @ f.transpose(1, 2) / (c * h * w)

    with torch.no_grad():
        fp, ft = taps(pred), taps(target)
        percep = sum(distance(fp[k], ft[k]) * w for k, w in layer_weights.items())
        style = sum(distance(gram(fp[k]), gram(ft[k])) * w for k, w in layer_weights.items())
        value = loss(pred, target)
        assert torch.allclose(gram_matrix(fp["conv2_1"]), gram(fp["conv2_1"]))
    expected = 0.7 * percep + 50.0 * style
    assert float(percep) > 0 and float(style) > 0
    assert torch.allclose(value, expected, rtol=1e-5, atol=0)


def test_vgg_backbone_is_frozen_and_stays_in_eval(esrgan_loss, pair64):
    pred, target = pair64
    assert sum(p.numel() for p in esrgan_loss.parameters()) > 0
    assert not any(p.requires_grad for p in esrgan_loss.parameters())
    esrgan_loss.train()
    assert not esrgan_loss.features.training
    x = pred.clone().requires_grad_()
    t = target.clone().requires_grad_()
    esrgan_loss(x, t).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert t.grad is None  # BasicSR: the target's features are computed without gradient
    assert all(p.grad is None for p in esrgan_loss.parameters())


@pytest.mark.parametrize("criterion", ["l1", "l2", "fro"])
def test_vgg_zero_with_finite_gradient_at_identity(criterion, pair64):
    _, target = pair64
    torch.manual_seed(5)
    loss = PerceptualLoss(
        {"relu2_2": 1.0, "conv3_1": 1.0}, style_weight=1.0, criterion=criterion, weights="random"
    )
    x = target.clone().requires_grad_()
    value = loss(x, target)
    value.backward()
    assert float(value) == 0.0
    assert torch.isfinite(x.grad).all()


def test_missing_imagenet_weights_raise_an_error_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsNotFoundError) as info:
        PerceptualLoss()
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "vgg19-dcbb9e9d.pth" in message
    assert str(tmp_path / "checkpoints") in message
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in message
    assert "weights=" in message and "allow_download" in message

    with pytest.raises(WeightsNotFoundError, match="alexnet-owt-7be5be79.pth"):
        LPIPSLoss(net="alex")
    with pytest.raises(WeightsNotFoundError, match="squeezenet1_1-b8a52dc0.pth"):
        losses.create("lpips", net="squeeze")
    with pytest.raises(WeightsNotFoundError, match="vgg16-397923af.pth"):
        losses.build({"vgg": {"network": "vgg16"}})


def test_imagenet_weights_are_read_from_the_torch_hub_cache(tmp_path, monkeypatch, pair64):
    pred, target = pair64
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    torch.manual_seed(6)
    source = PerceptualLoss({"conv2_2": 1.0}, weights="random")
    (tmp_path / "checkpoints").mkdir()
    # a torchvision-style state dict (features.* and a classifier entry that is ignored)
    state = {f"features.{k}": v.clone() for k, v in source.features.state_dict().items()}
    state["classifier.0.bias"] = torch.zeros(4)
    torch.save(state, tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth")
    torch.manual_seed(7)
    loaded = PerceptualLoss({"conv2_2": 1.0})
    assert torch.equal(loaded(pred, target), source(pred, target))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_vgg_loads_a_local_weights_file(tmp_path, suffix, esrgan_loss, pair64):
    from safetensors.torch import save_file

    pred, target = pair64
    path = tmp_path / f"vgg19{suffix}"
    state = {k: v.clone() for k, v in esrgan_loss.features.state_dict().items()}  # features-only keys
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    torch.manual_seed(8)
    loaded = PerceptualLoss(weights=path)
    assert torch.equal(loaded(pred, target), esrgan_loss(pred, target))
    injected = PerceptualLoss(weights=state)  # a state dict already in memory
    assert torch.equal(injected(pred, target), esrgan_loss(pred, target))

    with pytest.raises(FileNotFoundError):
        PerceptualLoss(weights=tmp_path / "absent.pth")
    with pytest.raises(ValueError, match="lack"):
        torch.save({"0.weight": state["0.weight"]}, tmp_path / "partial.pth")
        PerceptualLoss(weights=tmp_path / "partial.pth")


def test_vgg_argument_checks():
    with pytest.raises(ValueError, match="conv5_4"):
        PerceptualLoss({"conv5_5": 1.0}, weights="random")
    with pytest.raises(ValueError, match="conv5_3"):
        PerceptualLoss({"conv5_4": 1.0}, network="vgg16", weights="random")
    with pytest.raises(ValueError, match="criterion"):
        PerceptualLoss(criterion="l3", weights="random")
    with pytest.raises(ValueError, match="both 0"):
        PerceptualLoss(perceptual_weight=0.0, weights="random")
    with pytest.raises(ValueError, match="network"):
        PerceptualLoss(network="vgg20", weights="random")
    with pytest.raises(ValueError, match="Did you mean 'imagenet'"):
        PerceptualLoss(weights="ImageNet")


# --------------------------------------------------------------------------------------------
# Mixed precision: backbone under autocast, distances in float32
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("vgg", {}),
        ("vgg", {"layer_weights": {"relu2_2": 1.0, "conv4_4": 0.5}, "style_weight": 10.0}),
        ("lpips", {"net": "alex"}),
        ("lpips", {"net": "vgg"}),
        ("lpips", {"net": "squeeze"}),
    ],
)
def test_perceptual_under_cpu_autocast_is_finite_and_close_to_float32(name, kwargs, pair64):
    pred, target = pair64
    torch.manual_seed(9)
    loss = losses.create(name, weights="random", **kwargs)
    reference = float(loss(pred, target))
    for dtype in (torch.bfloat16, torch.float16):
        x = pred.clone().requires_grad_()
        with torch.autocast("cpu", dtype=dtype):
            value = loss(x, target)
        value.backward()
        assert value.dtype == torch.float32
        assert torch.isfinite(value) and torch.isfinite(x.grad).all()
        assert abs(float(value) - reference) <= 0.05 * reference, (dtype, float(value), reference)


def test_registry_metadata():
    for name in ("vgg", "lpips"):
        spec = losses.get(name)
        assert (spec.kind, spec.modality, spec.input_range) == ("perceptual", "image", "[0,1]")
        assert spec.needs_weights and not spec.fp32 and spec.lower_is_better
    for name in ("gmsd", "ms_gmsd", "haarpsi"):
        spec = losses.get(name)
        assert (spec.kind, spec.modality, spec.input_range) == ("perceptual", "image", "[0,1]")
        assert spec.fp32 and not spec.needs_weights and spec.lower_is_better
        assert spec.inputs == ("pred", "target")


# --------------------------------------------------------------------------------------------
# GMSD, MS-GMSD, HaarPSI against piq
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def natural_odd() -> tuple[torch.Tensor, torch.Tensor]:
    """Natural RGB crops of odd size (2, 3, 97, 75) and a noisy, blurred version (no flat patches)."""
    import skimage.data

    target = torch.stack(
        [_tensor(skimage.data.chelsea()[40:137, 100:175]), _tensor(skimage.data.coffee()[150:247, 250:325])]
    )
    gen = torch.Generator().manual_seed(10)
    noisy = target + 0.05 * torch.randn(target.shape, generator=gen)
    pred = F.avg_pool2d(noisy, 3, stride=1, padding=1, count_include_pad=False).clamp(0.001, 0.999)
    return pred, target


def _camera_pair() -> tuple[torch.Tensor, torch.Tensor]:
    import skimage.data

    target = _tensor(skimage.data.camera()[200:296, 180:276]).unsqueeze(0)
    gen = torch.Generator().manual_seed(11)
    pred = (target + 0.04 * torch.randn(target.shape, generator=gen)).clamp(0.001, 0.999)
    return pred, target


FUNCTIONS = [
    ("gmsd", lambda x, y, **kw: gmsd(x, y, **kw), lambda x, y, **kw: piq.gmsd(x, y, **kw)),
    (
        "ms_gmsd",
        lambda x, y, **kw: multi_scale_gmsd(x, y, **kw),
        lambda x, y, **kw: piq.multi_scale_gmsd(x, y, **kw),
    ),
    (
        "ms_gmsd_c",
        lambda x, y, **kw: multi_scale_gmsd(x, y, chromatic=True, **kw),
        lambda x, y, **kw: piq.multi_scale_gmsd(x, y, chromatic=True, **kw),
    ),
    ("haarpsi", lambda x, y, **kw: haarpsi(x, y, **kw), lambda x, y, **kw: piq.haarpsi(x, y, **kw)),
]


@pytest.mark.parametrize("name, ours, ref", FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_gradient_similarity_functions_match_piq_values_and_gradients(
    name, ours, ref, data_range, natural_odd
):
    pred, target = (t * data_range for t in natural_odd)
    x_ours = pred.clone().requires_grad_()
    x_ref = pred.clone().requires_grad_()
    value = ours(x_ours, target, data_range=data_range, reduction="none")
    expected = ref(x_ref, target, data_range=data_range, reduction="none")
    assert value.shape == (2,)
    assert torch.allclose(value, expected, rtol=0, atol=1e-5), (value, expected)
    value.sum().backward()
    expected.sum().backward()
    assert torch.isfinite(x_ref.grad).all()  # piq is finite here: no flat patch, no identity
    assert torch.allclose(x_ours.grad, x_ref.grad, rtol=1e-4, atol=1e-4 * float(x_ref.grad.abs().max()))


def test_gradient_similarity_grayscale_matches_piq():
    pred, target = _camera_pair()
    for name, ours, ref in FUNCTIONS:
        if name == "ms_gmsd_c":
            with pytest.raises(ValueError, match="RGB"):
                ours(pred, target)
            continue
        x_ours, x_ref = pred.clone().requires_grad_(), pred.clone().requires_grad_()
        value, expected = ours(x_ours, target), ref(x_ref, target)
        assert abs(float(value) - float(expected)) <= 1e-5, name
        value.backward()
        expected.backward()
        assert torch.allclose(
            x_ours.grad, x_ref.grad, rtol=1e-4, atol=1e-4 * float(x_ref.grad.abs().max())
        ), name


@pytest.mark.parametrize(
    "name, kwargs, ref_cls, ref_kwargs",
    [
        ("gmsd", {}, piq.GMSDLoss, {}),
        (
            "gmsd",
            {"reduction": "sum", "data_range": 2.0},
            piq.GMSDLoss,
            {"reduction": "sum", "data_range": 2.0},
        ),
        ("ms_gmsd", {}, piq.MultiScaleGMSDLoss, {}),
        (
            "ms_gmsd",
            {"chromatic": True, "scale_weights": [1.0, 2.0, 1.0]},
            piq.MultiScaleGMSDLoss,
            {"chromatic": True, "scale_weights": torch.tensor([1.0, 2.0, 1.0])},
        ),
        ("haarpsi", {}, piq.HaarPSILoss, {}),
        (
            "haarpsi",
            {"subsample": False, "reduction": "none"},
            piq.HaarPSILoss,
            {"subsample": False, "reduction": "none"},
        ),
    ],
)
def test_gradient_similarity_modules_match_piq_losses(name, kwargs, ref_cls, ref_kwargs, natural_odd):
    pred, target = natural_odd
    value = losses.create(name, **kwargs)(pred, target)
    expected = ref_cls(**ref_kwargs)(pred, target)
    assert value.shape == expected.shape
    assert torch.allclose(value, expected, rtol=0, atol=1e-5), (value, expected)


@pytest.mark.parametrize("name", ["gmsd", "ms_gmsd", "haarpsi"])
def test_gradient_similarity_zero_at_identity_with_finite_gradient(name, natural_odd):
    _, target = natural_odd
    x = target.clone().requires_grad_()
    value = losses.create(name)(x, target)
    value.backward()
    assert abs(float(value)) <= 1e-5
    assert torch.isfinite(x.grad).all()
    if name != "haarpsi":
        assert float(value) == 0.0
        # piq's deviation is sqrt(0) at identity: its gradient is NaN there
        x_ref = target.clone().requires_grad_()
        {"gmsd": piq.gmsd, "ms_gmsd": piq.multi_scale_gmsd}[name](x_ref, target).backward()
        assert not torch.isfinite(x_ref.grad).all()


def test_gmsd_flat_patches_give_finite_gradients_where_piq_gives_nan(natural_odd):
    pred, target = natural_odd
    pred = pred.clone()
    pred[:, :, 20:40, 20:40] = 0.0  # a flat (black) patch: zero gradient magnitude, sqrt(0)
    x_ours, x_ref = pred.clone().requires_grad_(), pred.clone().requires_grad_()
    value, expected = gmsd(x_ours, target), piq.gmsd(x_ref, target)
    assert abs(float(value) - float(expected)) <= 1e-6
    value.backward()
    expected.backward()
    assert not torch.isfinite(x_ref.grad).all()
    assert torch.isfinite(x_ours.grad).all()
    finite = torch.isfinite(x_ref.grad)
    assert torch.allclose(x_ours.grad[finite], x_ref.grad[finite], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name", ["gmsd", "ms_gmsd", "haarpsi"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_gradient_similarity_under_autocast_runs_in_float32(name, dtype, natural_odd):
    pred, target = natural_odd
    loss = losses.create(name)
    reference = loss(pred, target)
    x = pred.clone().requires_grad_()
    with torch.autocast("cpu", dtype=dtype):
        value = loss(x, target)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(x.grad).all()
    assert torch.allclose(value, reference, rtol=1e-6, atol=1e-7)


def test_gradient_similarity_argument_checks(natural_odd):
    pred, target = natural_odd
    with pytest.raises(ValueError, match="at least 33x33"):
        multi_scale_gmsd(pred[..., :20, :20], target[..., :20, :20], scale_weights=[1.0] * 5)
    with pytest.raises(ValueError, match="shape"):
        gmsd(pred, target[:, :, :50])
    with pytest.raises(ValueError, match="scale_weights"):
        losses.create("ms_gmsd", scale_weights=[-1.0, 1.0])
    with pytest.raises(ValueError, match="3 scales"):
        losses.create("haarpsi", scales=2)
    with pytest.raises(ValueError, match="\\(N, 1, H, W\\)"):
        gmsd(pred[:, :2], target[:, :2])


def test_frozen_backbone_stays_out_of_checkpoints_and_reloads():
    torch.manual_seed(0)
    loss_set = losses.build({"lpips": {"weights": "random"}, "vgg": {"weights": "random"}})
    state = loss_set.state_dict()
    assert not any(".features." in key for key in state)
    assert any(".lins." in key for key in state)  # LPIPS's linear layers are part of the metric
    other = losses.build({"lpips": {"weights": "random"}, "vgg": {"weights": "random"}})
    result = other.load_state_dict(state)
    assert not result.missing_keys and not result.unexpected_keys
    # a full state dict (with the backbone) still loads into the backbone
    lpips_loss = losses.create("lpips", weights="random").loss
    full = {f"features.{k}": v + 1 for k, v in lpips_loss.features.state_dict().items()}
    full.update({f"lins.{k}": v for k, v in lpips_loss.lins.state_dict().items()})
    lpips_loss.load_state_dict(full)
    first_key = next(iter(lpips_loss.features.state_dict()))
    assert torch.equal(lpips_loss.features.state_dict()[first_key], full[f"features.{first_key}"])
