"""Discriminators: VGG-style (SRGAN/ESRGAN), U-Net with spectral norm (Real-ESRGAN), PatchGAN (pix2pix).

References: the published layer lists and forward passes, rewritten below with plain torch.nn
(BasicSR's ``VGGStyleDiscriminator``, Real-ESRGAN's ``UNetDiscriminatorSN`` with
``torch.nn.utils.spectral_norm``, pix2pix's ``NLayerDiscriminator`` with its ``get_norm_layer``).
Our modules must have the same parameter counts and state-dict keys, load each other's weights
(strict), and give the same outputs.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import losses
import restore.models as models
from restore.models.patchgan import NLayerDiscriminator, patchgan_output_size, patchgan_receptive_field
from restore.models.unet_discriminator import Float32SpectralNorm, UNetDiscriminatorSN, add_spectral_norm
from restore.models.vgg_discriminator import VGGStyleDiscriminator

NAMES = ("vgg_discriminator", "unet_discriminator", "patchgan", "patchgan_conditional")


# ---------------------------------------------------------------------------------------------
# references: the published architectures, layer by layer


class RefVGGStyleDiscriminator(nn.Module):
    """BasicSR ``basicsr/archs/discriminator_arch.py::VGGStyleDiscriminator``, written out."""

    def __init__(self, num_in_ch: int, num_feat: int, input_size: int = 128) -> None:
        super().__init__()
        self.input_size = input_size
        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat, affine=True)
        self.conv1_0 = nn.Conv2d(num_feat, num_feat * 2, 3, 1, 1, bias=False)
        self.bn1_0 = nn.BatchNorm2d(num_feat * 2, affine=True)
        self.conv1_1 = nn.Conv2d(num_feat * 2, num_feat * 2, 4, 2, 1, bias=False)
        self.bn1_1 = nn.BatchNorm2d(num_feat * 2, affine=True)
        self.conv2_0 = nn.Conv2d(num_feat * 2, num_feat * 4, 3, 1, 1, bias=False)
        self.bn2_0 = nn.BatchNorm2d(num_feat * 4, affine=True)
        self.conv2_1 = nn.Conv2d(num_feat * 4, num_feat * 4, 4, 2, 1, bias=False)
        self.bn2_1 = nn.BatchNorm2d(num_feat * 4, affine=True)
        self.conv3_0 = nn.Conv2d(num_feat * 4, num_feat * 8, 3, 1, 1, bias=False)
        self.bn3_0 = nn.BatchNorm2d(num_feat * 8, affine=True)
        self.conv3_1 = nn.Conv2d(num_feat * 8, num_feat * 8, 4, 2, 1, bias=False)
        self.bn3_1 = nn.BatchNorm2d(num_feat * 8, affine=True)
        self.conv4_0 = nn.Conv2d(num_feat * 8, num_feat * 8, 3, 1, 1, bias=False)
        self.bn4_0 = nn.BatchNorm2d(num_feat * 8, affine=True)
        self.conv4_1 = nn.Conv2d(num_feat * 8, num_feat * 8, 4, 2, 1, bias=False)
        self.bn4_1 = nn.BatchNorm2d(num_feat * 8, affine=True)
        if input_size == 256:
            self.conv5_0 = nn.Conv2d(num_feat * 8, num_feat * 8, 3, 1, 1, bias=False)
            self.bn5_0 = nn.BatchNorm2d(num_feat * 8, affine=True)
            self.conv5_1 = nn.Conv2d(num_feat * 8, num_feat * 8, 4, 2, 1, bias=False)
            self.bn5_1 = nn.BatchNorm2d(num_feat * 8, affine=True)
        self.linear1 = nn.Linear(num_feat * 8 * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        feat = self.lrelu(self.bn1_0(self.conv1_0(feat)))
        feat = self.lrelu(self.bn1_1(self.conv1_1(feat)))
        feat = self.lrelu(self.bn2_0(self.conv2_0(feat)))
        feat = self.lrelu(self.bn2_1(self.conv2_1(feat)))
        feat = self.lrelu(self.bn3_0(self.conv3_0(feat)))
        feat = self.lrelu(self.bn3_1(self.conv3_1(feat)))
        feat = self.lrelu(self.bn4_0(self.conv4_0(feat)))
        feat = self.lrelu(self.bn4_1(self.conv4_1(feat)))
        if self.input_size == 256:
            feat = self.lrelu(self.bn5_0(self.conv5_0(feat)))
            feat = self.lrelu(self.bn5_1(self.conv5_1(feat)))
        feat = feat.view(feat.size(0), -1)
        feat = self.lrelu(self.linear1(feat))
        return self.linear2(feat)


class RefUNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN ``realesrgan/archs/discriminator_arch.py::UNetDiscriminatorSN``, written out."""

    def __init__(self, num_in_ch: int, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.skip_connection = skip_connection
        norm = nn.utils.spectral_norm
        self.conv0 = nn.Conv2d(num_in_ch, num_feat, kernel_size=3, stride=1, padding=1)
        self.conv1 = norm(nn.Conv2d(num_feat, num_feat * 2, 4, 2, 1, bias=False))
        self.conv2 = norm(nn.Conv2d(num_feat * 2, num_feat * 4, 4, 2, 1, bias=False))
        self.conv3 = norm(nn.Conv2d(num_feat * 4, num_feat * 8, 4, 2, 1, bias=False))
        self.conv4 = norm(nn.Conv2d(num_feat * 8, num_feat * 4, 3, 1, 1, bias=False))
        self.conv5 = norm(nn.Conv2d(num_feat * 4, num_feat * 2, 3, 1, 1, bias=False))
        self.conv6 = norm(nn.Conv2d(num_feat * 2, num_feat, 3, 1, 1, bias=False))
        self.conv7 = norm(nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False))
        self.conv8 = norm(nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(num_feat, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = F.leaky_relu(self.conv0(x), negative_slope=0.2, inplace=True)
        x1 = F.leaky_relu(self.conv1(x0), negative_slope=0.2, inplace=True)
        x2 = F.leaky_relu(self.conv2(x1), negative_slope=0.2, inplace=True)
        x3 = F.leaky_relu(self.conv3(x2), negative_slope=0.2, inplace=True)
        x3 = F.interpolate(x3, scale_factor=2, mode="bilinear", align_corners=False)
        x4 = F.leaky_relu(self.conv4(x3), negative_slope=0.2, inplace=True)
        if self.skip_connection:
            x4 = x4 + x2
        x4 = F.interpolate(x4, scale_factor=2, mode="bilinear", align_corners=False)
        x5 = F.leaky_relu(self.conv5(x4), negative_slope=0.2, inplace=True)
        if self.skip_connection:
            x5 = x5 + x1
        x5 = F.interpolate(x5, scale_factor=2, mode="bilinear", align_corners=False)
        x6 = F.leaky_relu(self.conv6(x5), negative_slope=0.2, inplace=True)
        if self.skip_connection:
            x6 = x6 + x0
        out = F.leaky_relu(self.conv7(x6), negative_slope=0.2, inplace=True)
        out = F.leaky_relu(self.conv8(out), negative_slope=0.2, inplace=True)
        return self.conv9(out)


class RefIdentity(nn.Module):
    def forward(self, x):
        return x


def ref_norm_layer(norm_type: str):
    """pix2pix ``models/networks.py::get_norm_layer``."""
    if norm_type == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm_type == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)

    def norm_layer(x):
        return RefIdentity()

    return norm_layer


class RefNLayerDiscriminator(nn.Module):
    """pix2pix ``models/networks.py::NLayerDiscriminator``, written out."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm_layer=nn.BatchNorm2d) -> None:
        super().__init__()
        if type(norm_layer) is functools.partial:
            use_bias = norm_layer.func == nn.InstanceNorm2d
        else:
            use_bias = norm_layer == nn.InstanceNorm2d
        kw, padw = 4, 1
        sequence = [nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev = nf_mult
            nf_mult = min(2**n, 8)
            sequence += [
                nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kw, stride=2, padding=padw, bias=use_bias),
                norm_layer(ndf * nf_mult),
                nn.LeakyReLU(0.2, True),
            ]
        nf_mult_prev = nf_mult
        nf_mult = min(2**n_layers, 8)
        sequence += [
            nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kw, stride=1, padding=padw, bias=use_bias),
            norm_layer(ndf * nf_mult),
            nn.LeakyReLU(0.2, True),
        ]
        sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*sequence)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@functools.cache
def photos() -> torch.Tensor:
    """Three scikit-image photos (astronaut, coffee, chelsea), 256x256 crops, (3, 3, 256, 256) in [0,1]."""
    from skimage import data

    crops = [p[:256, :256].copy() for p in (data.astronaut(), data.coffee(), data.chelsea())]
    return torch.stack([torch.from_numpy(p).permute(2, 0, 1).float() / 255 for p in crops])


def natural_images(size: int, n: int = 2) -> torch.Tensor:
    """The first ``n`` of :func:`photos`, area-resized to (n, 3, size, size)."""
    return F.interpolate(photos()[:n], size=(size, size), mode="area")


def small(name: str) -> nn.Module:
    """A registered discriminator with few features (fast CPU tests)."""
    width = {"vgg_discriminator": {"num_feat": 8}, "unet_discriminator": {"num_feat": 8}}
    torch.manual_seed(0)
    return models.build(name, **width.get(name, {"ndf": 8}))


def call(model: nn.Module, x: torch.Tensor, **kwargs):
    """Run a discriminator; conditional PatchGANs get a half-size condition derived from ``x``."""
    if getattr(model, "condition_channels", 0):
        return model(x, F.avg_pool2d(x, 2), **kwargs)
    return model(x, **kwargs)


def input_size(name: str) -> int:
    return 128 if name == "vgg_discriminator" else 32


# ---------------------------------------------------------------------------------------------
# registry


def test_registered_specs():
    assert set(NAMES) <= set(models.available(task="discriminator"))
    for name in NAMES:
        spec = models.get_spec(name)
        assert (spec.task, spec.scale, spec.in_channels, spec.out_channels) == ("discriminator", 1, 3, 1)
    assert models.get_spec("unet_discriminator").size_multiple == 8
    assert models.get_spec("unet_discriminator").receptive_field == 32
    assert models.get_spec("patchgan").receptive_field == 35
    assert models.get_spec("patchgan").inputs == ("image",)
    assert models.get_spec("patchgan_conditional").inputs == ("image", "condition")
    assert models.get_spec("patchgan_conditional").config["condition_channels"] == 3
    vgg = models.build("vgg_discriminator", input_size=256, num_feat=8)
    assert vgg.spec.size_multiple == 256 and vgg.config["input_size"] == 256
    patch = models.build("patchgan", n_layers=2, ndf=8)
    assert patch.spec.receptive_field == patchgan_receptive_field(2) // 2 == 17


# ---------------------------------------------------------------------------------------------
# parameter counts and keys against the published architectures


def test_parameter_counts_equal_the_published_architectures():
    assert count(models.build("vgg_discriminator")) == count(RefVGGStyleDiscriminator(3, 64, 128))
    vgg256 = models.build("vgg_discriminator", input_size=256)
    assert count(vgg256) == count(RefVGGStyleDiscriminator(3, 64, 256))
    assert count(models.build("unet_discriminator")) == count(RefUNetDiscriminatorSN(3, 64))
    for norm in ("batch", "instance", "none"):
        ours = models.build("patchgan", norm=norm)
        assert count(ours) == count(RefNLayerDiscriminator(3, 64, 3, ref_norm_layer(norm))), norm
        conditional = models.build("patchgan_conditional", norm=norm)
        assert count(conditional) == count(RefNLayerDiscriminator(6, 64, 3, ref_norm_layer(norm))), norm
    # The pix2pix release's training log: "[Network D] Total number of parameters : 2.769 M"
    # (conditional D on 3 + 3 channels, batch norm, printed with %.3f).
    assert f"{count(models.build('patchgan_conditional')) / 1e6:.3f}" == "2.769"
    assert count(models.build("patchgan_conditional")) == 2_768_705


UNET_RELEASE_KEYS = ["conv0.weight", "conv0.bias"] + [
    f"conv{i}.weight_{s}" for i in range(1, 9) for s in ("orig", "u", "v")
] + ["conv9.weight", "conv9.bias"]


def vgg_release_keys(stages: int) -> list[str]:
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = ["conv0_0.weight", "conv0_0.bias", "conv0_1.weight"] + [f"bn0_1.{s}" for s in bn]
    for i in range(1, stages):
        keys += [f"conv{i}_0.weight"] + [f"bn{i}_0.{s}" for s in bn]
        keys += [f"conv{i}_1.weight"] + [f"bn{i}_1.{s}" for s in bn]
    return keys + ["linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias"]


def test_state_dict_keys_are_the_releases():
    unet = models.build("unet_discriminator")
    assert sorted(unet.state_dict()) == sorted(UNET_RELEASE_KEYS)
    assert sorted(unet.state_dict()) == sorted(RefUNetDiscriminatorSN(3, 64).state_dict())
    for size, stages in ((128, 5), (256, 6)):
        vgg = models.build("vgg_discriminator", input_size=size, num_feat=8)
        assert sorted(vgg.state_dict()) == sorted(vgg_release_keys(stages))
        assert sorted(vgg.state_dict()) == sorted(RefVGGStyleDiscriminator(3, 8, size).state_dict())
    for norm in ("batch", "instance", "none"):
        ours = models.build("patchgan", norm=norm, ndf=8)
        ref = RefNLayerDiscriminator(3, 8, 3, ref_norm_layer(norm))
        assert list(ours.state_dict()) == list(ref.state_dict()), norm
    keys = set(models.build("patchgan", ndf=8).state_dict())
    assert {"model.0.bias", "model.3.running_mean", "model.9.weight", "model.11.bias"} <= keys
    assert "model.2.bias" not in keys  # no conv bias before batch norm, as in the release


# ---------------------------------------------------------------------------------------------
# outputs equal the references with the same weights


def reference_pair(kind: str) -> tuple[nn.Module, nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if kind == "vgg":
        ours, ref = VGGStyleDiscriminator(3, 8, 128), RefVGGStyleDiscriminator(3, 8, 128)
        x = natural_images(128)
    elif kind == "vgg256":
        ours, ref = VGGStyleDiscriminator(3, 4, 256), RefVGGStyleDiscriminator(3, 4, 256)
        x = natural_images(256)
    elif kind == "unet":
        ours, ref, x = UNetDiscriminatorSN(3, 8), RefUNetDiscriminatorSN(3, 8), natural_images(48)
    elif kind == "unet_noskip":
        ours = UNetDiscriminatorSN(3, 8, skip_connection=False)
        ref, x = RefUNetDiscriminatorSN(3, 8, skip_connection=False), natural_images(32)
    else:
        norm = kind.split("_")[1]
        ours = NLayerDiscriminator(3, 8, 3, norm=norm)
        ref, x = RefNLayerDiscriminator(3, 8, 3, ref_norm_layer(norm)), natural_images(64, 3)
    return ours, ref, x


REFERENCE_KINDS = ("vgg", "vgg256", "unet", "unet_noskip", "patch_batch", "patch_instance", "patch_none")


@pytest.mark.parametrize("kind", REFERENCE_KINDS)
def test_outputs_equal_the_reference_with_the_same_weights(kind):
    ours, ref, x = reference_pair(kind)
    # The release's weights load into ours (strict), also as a plain dict without torch's
    # metadata (as from a safetensors file).
    ours.load_state_dict(dict(ref.state_dict()), strict=True)
    for mode in ("train", "eval"):  # train: batch statistics and a power-iteration step
        ours.train(mode == "train")
        ref.train(mode == "train")
        with torch.no_grad():
            expected = ref(x.clone())
            got = ours(x.clone())
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # The updated buffers (running statistics, spectral-norm u and v) agree too, and ours load back.
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=1e-5, atol=1e-6, msg=key)
    ref.load_state_dict(ours.state_dict(), strict=True)


# ---------------------------------------------------------------------------------------------
# shapes and input checks


@pytest.mark.parametrize("size", [128, 256])
def test_vgg_output_shape(size):
    model = models.build("vgg_discriminator", input_size=size, num_feat=4)
    assert model(torch.rand(3, 3, size, size)).shape == (3, 1)


@pytest.mark.parametrize("hw", [(32, 32), (48, 64), (40, 72), (8, 16)])
def test_unet_output_shape(hw):
    model = small("unet_discriminator")
    assert model(torch.rand(2, 3, *hw)).shape == (2, 1, *hw)


@pytest.mark.parametrize(("size", "side"), [(256, 30), (64, 6), (70, 6), (24, 1), (33, 2)])
def test_patchgan_output_shape(size, side):
    assert patchgan_output_size(size, 3) == side
    model = small("patchgan")
    assert model(torch.rand(2, 3, size, size + 8)).shape == (2, 1, side, patchgan_output_size(size + 8, 3))


def test_input_errors_are_clear():
    with pytest.raises(ValueError, match="input_size must be one of"):
        models.build("vgg_discriminator", input_size=192)
    vgg = small("vgg_discriminator")
    with pytest.raises(ValueError, match="fixed input_size=128"):
        vgg(torch.rand(1, 3, 96, 96))
    with pytest.raises(ValueError, match=r"x must be \(N, 3, 128, 128\)"):
        vgg(torch.rand(1, 1, 128, 128))
    unet = small("unet_discriminator")
    with pytest.raises(ValueError, match="multiples of 8.*36x40"):
        unet(torch.rand(1, 3, 36, 40))
    with pytest.raises(ValueError, match=r"x must be \(N, 3, H, W\)"):
        unet(torch.rand(3, 32, 32))
    patch = small("patchgan")
    with pytest.raises(ValueError, match="at least 24x24"):
        patch(torch.rand(1, 3, 20, 64))
    with pytest.raises(ValueError, match=r"image must be \(N, 3, H, W\)"):
        patch(torch.rand(1, 4, 32, 32))
    with pytest.raises(ValueError, match="norm must be one of"):
        models.build("patchgan", norm="group")


# ---------------------------------------------------------------------------------------------
# features for the feature-matching loss


def test_return_features_counts_and_shapes():
    x = natural_images(128)
    vgg = small("vgg_discriminator")
    logits, feats = vgg(x, return_features=True)
    assert [tuple(f.shape) for f in feats] == [
        (2, 8, 64, 64), (2, 16, 32, 32), (2, 32, 16, 16), (2, 64, 8, 8), (2, 64, 4, 4)
    ]
    vgg256 = models.build("vgg_discriminator", input_size=256, num_feat=4)
    _, feats = vgg256(natural_images(256), return_features=True)
    assert [f.shape[-1] for f in feats] == [128, 64, 32, 16, 8, 4] and feats[-1].shape[1] == 32

    x = natural_images(32)
    unet = small("unet_discriminator")
    logits, feats = unet(x, return_features=True)
    assert [tuple(f.shape[1:]) for f in feats] == [
        (8, 32, 32), (16, 16, 16), (32, 8, 8), (64, 4, 4), (32, 8, 8), (16, 16, 16), (8, 32, 32),
        (8, 32, 32), (8, 32, 32),
    ]

    patch = small("patchgan")
    logits, feats = patch(natural_images(64), return_features=True)
    assert [tuple(f.shape[1:]) for f in feats] == [(8, 32, 32), (16, 16, 16), (32, 8, 8), (64, 7, 7)]
    assert logits.shape == (2, 1, 6, 6)

    for name in NAMES:  # the same logits with and without features (eval: no batch statistics)
        model = small(name).eval()
        x = natural_images(input_size(name))
        with torch.no_grad():
            plain = call(model, x)
            with_feats, feats = call(model, x, return_features=True)
        torch.testing.assert_close(with_feats, plain, rtol=0, atol=0)
        assert all(torch.isfinite(f).all() for f in feats)


def test_features_feed_the_feature_matching_loss():
    fm = losses.create("feature_matching")
    for name in NAMES:
        model = small(name)
        real = natural_images(input_size(name))
        fake = (real + 0.1 * torch.randn_like(real)).clamp(0, 1).requires_grad_(True)
        _, real_feats = call(model, real, return_features=True)
        _, fake_feats = call(model, fake, return_features=True)
        loss = fm(fake_features=fake_feats, real_features=real_feats)
        loss.backward()
        assert loss.ndim == 0 and float(loss.detach()) > 0
        assert fake.grad is not None and fake.grad.abs().sum() > 0
        model.eval()
        with torch.no_grad():
            _, a = call(model, real, return_features=True)
            _, b = call(model, real.clone(), return_features=True)
        assert float(fm(fake_features=a, real_features=b)) == 0.0


# ---------------------------------------------------------------------------------------------
# spectral norm and receptive fields


def test_unet_has_spectral_norm_on_conv1_to_conv8():
    unet = small("unet_discriminator")
    params = dict(unet.named_parameters())
    for i in range(1, 9):
        assert f"conv{i}.weight_orig" in params and f"conv{i}.weight" not in params
        hooks = list(getattr(unet, f"conv{i}")._forward_pre_hooks.values())
        assert any(isinstance(h, Float32SpectralNorm) for h in hooks)
    for i in (0, 9):
        assert f"conv{i}.weight" in params and f"conv{i}.weight_orig" not in params
    # Warm-up power iterations at construction (eval mode), then one per training forward, keep the
    # largest singular value of each effective weight at 1.
    for training, steps in ((False, 1), (True, 20)):
        unet.train(training)
        with torch.no_grad():
            for _ in range(steps):
                unet(torch.rand(1, 3, 8, 8))
        for i in range(1, 9):
            sigma = torch.linalg.matrix_norm(getattr(unet, f"conv{i}").weight.flatten(1), ord=2)
            assert abs(float(sigma) - 1.0) < 0.05, (training, i, float(sigma))
    # Without the warm-up (torch's random u, v), eval-mode sigma is far off.
    torch.manual_seed(0)
    conv = add_spectral_norm(nn.Conv2d(16, 32, 3, bias=False), warmup_iterations=0).eval()
    with torch.no_grad():
        conv(torch.rand(1, 16, 8, 8))
    assert float(torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)) > 2


DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")),
]


@pytest.mark.parametrize("device", DEVICES)
def test_spectral_norm_runs_in_float32_under_autocast(device):
    # Under CUDA autocast torch.mv runs in half precision; torch's own hook then gives weights off
    # by ~1e-3 (measured on an H100: 8e-4 in float16, 1.6e-3 in bfloat16). Ours stays exact.
    unet = small("unet_discriminator").to(device).eval()
    x = natural_images(32).to(device)
    unet(x)
    reference = {i: getattr(unet, f"conv{i}").weight.clone() for i in range(1, 9)}
    half = torch.bfloat16 if device == "cpu" else torch.float16
    with torch.autocast(device, dtype=half):
        out = unet(x)
    assert torch.isfinite(out).all()
    for i in range(1, 9):
        weight = getattr(unet, f"conv{i}").weight
        assert weight.dtype == torch.float32
        torch.testing.assert_close(weight, reference[i], rtol=0, atol=0)


def test_patchgan_spectral_norm():
    patch = models.build("patchgan", ndf=8, norm="none", spectral_norm=True)
    convs = [m for m in patch.model if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5
    keys = set(patch.state_dict())
    for index in (0, 2, 5, 8, 11):
        assert {f"model.{index}.weight_orig", f"model.{index}.weight_u", f"model.{index}.weight_v"} <= keys
        assert f"model.{index}.weight" not in keys
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
        assert abs(float(sigma) - 1.0) < 0.05
    assert patch(natural_images(32)).shape == (2, 1, 2, 2)


def gradient_rows(model: nn.Module, size: int, positions: list[int]) -> list[tuple[int, int]]:
    """For each ``c``, the first and last input rows that the gradient of logit (c, c) reaches.

    One backward pass: sample ``k`` of a batch of ``len(positions)`` selects logit ``positions[k]``
    (no batch statistics in eval mode, so the samples are independent).
    """
    torch.manual_seed(0)
    x = torch.rand(len(positions), 3, size, size, requires_grad=True)
    out = model(x)
    torch.stack([out[k, 0, c, c] for k, c in enumerate(positions)]).sum().backward()
    spans = []
    for k in range(len(positions)):
        rows = (x.grad[k].abs().sum((0, 2)) > 0).nonzero().flatten()
        spans.append((int(rows.min()), int(rows.max())))
    return spans


def test_receptive_fields():
    unet = small("unet_discriminator").eval()
    positions = list(range(32, 40))  # every position modulo 8, 32 px from the border
    spans = gradient_rows(unet, 72, positions)
    radius = max(max(c - first, last - c) for c, (first, last) in zip(positions, spans, strict=True))
    assert radius == unet.receptive_field == 32
    patch = small("patchgan").eval()
    ((first, last),) = gradient_rows(patch, 96, [5])  # an interior logit
    assert last - first + 1 == patchgan_receptive_field(3) == 70
    assert patch.receptive_field == 35


# ---------------------------------------------------------------------------------------------
# conditional PatchGAN


def test_conditional_patchgan_uses_the_condition():
    model = small("patchgan_conditional").eval()
    image = natural_images(64)
    low = F.avg_pool2d(image, 4)
    with torch.no_grad():
        out = model(image, low)
        other = model(image, low.flip(0))
        upsampled = model(image, F.interpolate(low, size=(64, 64), mode="bilinear", align_corners=False))
        by_hand = model.model(torch.cat([image, F.interpolate(low, size=(64, 64), mode="bilinear")], 1))
    assert out.shape == (2, 1, 6, 6)
    assert (out - other).abs().max() > 0.05 * out.abs().max()  # the condition matters
    torch.testing.assert_close(out, upsampled, rtol=0, atol=0)  # a low-res condition is resized bilinearly
    torch.testing.assert_close(out, by_hand, rtol=0, atol=0)  # and concatenated after the image


def test_conditional_patchgan_errors():
    conditional = small("patchgan_conditional")
    image = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"conditional \(condition_channels=3\): pass condition"):
        conditional(image)
    with pytest.raises(ValueError, match=r"condition must be \(N, 3, h, w\)"):
        conditional(image, torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="condition batch size 1 differs from image batch size 2"):
        conditional(image, torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"unconditional \(condition_channels=0\)"):
        small("patchgan")(image, torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="condition_channels must be >= 0"):
        models.build("patchgan", condition_channels=-1)
    gray = models.build("patchgan", in_channels=1, condition_channels=2, ndf=8)
    assert gray(torch.rand(1, 1, 32, 32), torch.rand(1, 2, 16, 16)).shape == (1, 1, 2, 2)


# ---------------------------------------------------------------------------------------------
# gradients, mixed precision, GAN losses


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_the_input_and_r1_trains_the_discriminator(name):
    model = small(name)
    real = natural_images(input_size(name)).requires_grad_(True)
    logits = call(model, real)
    penalty = losses.create("r1", gamma=10.0)(real_logits=logits, real=real)
    assert torch.isfinite(penalty) and float(penalty.detach()) > 0
    penalty.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_forward_backward_finite_and_close(name):
    model = small(name)
    x = natural_images(input_size(name))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # training mode: batch statistics, power iteration
        out = call(model, x.clone().requires_grad_(True))
    out.float().mean().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())

    model.eval()  # eval: the same normalisation in both runs, so they can be compared
    results = []
    for enabled in (False, True):
        model.zero_grad()
        inp = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            out = call(model, inp)
        out.float().sum().backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters()])
        assert torch.isfinite(out).all() and torch.isfinite(grads).all() and torch.isfinite(inp.grad).all()
        results.append((out.float().detach(), grads, inp.grad.flatten()))
    (out32, g32, x32), (out16, g16, x16) = results
    assert (out16 - out32).abs().max() <= 0.05 * out32.abs().max()
    assert (g16 - g32).norm() <= 0.05 * g32.norm()
    # Input gradients pass back through every layer in bf16: same direction, a few % off.
    assert F.cosine_similarity(x16, x32, dim=0) > 0.95


@pytest.mark.parametrize("name", NAMES)
def test_discriminator_step_with_the_gan_loss(name):
    model = small(name)
    criterion = losses.create("gan", side="discriminator")
    real = natural_images(input_size(name))
    fake = (0.5 * real + 0.5 * F.avg_pool2d(real, 5, 1, 2)).detach()  # blurred "generator output"
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    history = []
    for _ in range(4):
        loss = criterion(fake_logits=call(model, fake), real_logits=call(model, real))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(history)))
    assert history[0] == pytest.approx(2 * 0.6931, abs=0.3)  # BCE of near-zero logits, both sides
    assert history[-1] < history[0]  # the discriminator learns to tell them apart
