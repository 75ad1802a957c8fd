"""SRResNet, RRDBNet, EDSR and SRVGGNetCompact: shapes, published sizes, keys, spandrel equivalence."""

from __future__ import annotations

import pytest
import torch

import restore.models as models

# Parameter counts of the published architectures (ESRGAN paper / BasicSR model zoo / EDSR paper,
# Real-ESRGAN's realesr-general-x4v3 and realesr-animevideov3 releases).
PUBLISHED_PARAMETERS = {
    ("rrdbnet", 4): 16_697_987,  # RealESRGAN_x4plus / ESRGAN_x4
    ("rrdbnet", 2): 16_703_171,  # RealESRGAN_x2plus (pixel-unshuffled 12-channel input)
    ("edsr", 4): 1_517_571,  # EDSR baseline x4 (paper: 1.5M)
    ("edsr", 2): 1_369_859,  # EDSR baseline x2 (paper: 1.37M)
    ("edsr_full", 4): 43_089_923,  # EDSR x4 (paper: 43M)
    ("srresnet", 4): 1_517_571,  # BasicSR MSRResNet_x4
    ("compact_general", 4): 1_213_296,  # realesr-general-x4v3
    ("compact", 4): 621_424,  # realesr-animevideov3
}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("name", "scale"), sorted(PUBLISHED_PARAMETERS))
def test_parameter_counts_match_the_published_architectures(name, scale):
    assert n_params(models.build(name, scale=scale)) == PUBLISHED_PARAMETERS[(name, scale)]


SMALL = {
    "srresnet": {"num_feat": 16, "num_block": 2},
    "rrdbnet_small": {"num_feat": 16, "num_block": 1},
    "edsr_tiny": {"num_feat": 16, "num_block": 2},
    "compact_tiny": {"num_feat": 16, "num_conv": 2},
}
SCALES = {
    "srresnet": (2, 3, 4),
    "rrdbnet_small": (1, 2, 4),
    "edsr_tiny": (2, 3, 4, 8),
    "compact_tiny": (1, 2, 3, 4),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_output_shape_and_spec_follow_the_scale(name):
    for scale in SCALES[name]:
        net = models.build(name, scale=scale, **SMALL[name])
        h, w = 12, 20
        out = net(torch.rand(2, 3, h, w))
        assert out.shape == (2, 3, h * scale, w * scale)
        assert net.spec.scale == scale and net.spec.task == "sr"
        assert net.config["scale"] == scale


def test_unsupported_scale_and_unknown_argument_are_clear_errors():
    with pytest.raises(ValueError, match=r"model 'edsr': scale must be one of \(2, 3, 4, 8\), got 5"):
        models.build("edsr", scale=5)
    with pytest.raises(TypeError, match="has no argument 'num_blocks'.*Did you mean 'num_block'"):
        models.build("edsr", num_blocks=4)
    with pytest.raises(KeyError, match="Did you mean 'rrdbnet'"):
        models.build("rrdbnett")


def test_rrdbnet_unshuffle_variant_rejects_odd_sizes():
    net = models.build("rrdbnet_small", scale=2, **SMALL["rrdbnet_small"])
    assert net.spec.size_multiple == 2
    with pytest.raises(ValueError, match="divisible by 2"):
        net(torch.rand(1, 3, 11, 12))


def test_rrdbnet_state_dict_keys_are_the_real_esrgan_release_keys():
    net = models.build("rrdbnet", num_block=2)
    keys = set(net.state_dict())
    convs = ("conv_first", "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last")
    expected = {f"{m}.{p}" for m in convs for p in ("weight", "bias")}
    for b in range(2):
        for r in (1, 2, 3):
            for c in range(1, 6):
                expected |= {f"body.{b}.rdb{r}.conv{c}.weight", f"body.{b}.rdb{r}.conv{c}.bias"}
    assert keys == expected
    assert net.state_dict()["body.0.rdb1.conv5.weight"].shape == (64, 64 + 4 * 32, 3, 3)
    x2 = models.build("rrdbnet", scale=2, num_block=1)
    assert x2.state_dict()["conv_first.weight"].shape == (64, 12, 3, 3)  # RealESRGAN_x2plus


def test_compact_and_edsr_keys_follow_their_releases():
    compact = models.build("compact", num_conv=2)
    assert list(compact.state_dict()) == [
        "body.0.weight", "body.0.bias", "body.1.weight",
        "body.2.weight", "body.2.bias", "body.3.weight",
        "body.4.weight", "body.4.bias", "body.5.weight",
        "body.6.weight", "body.6.bias",
    ]
    assert compact.state_dict()["body.6.weight"].shape == (3 * 16, 64, 3, 3)
    edsr = models.build("edsr", num_block=1)
    assert list(edsr.state_dict()) == [
        "conv_first.weight", "conv_first.bias", "body.0.conv1.weight", "body.0.conv1.bias",
        "body.0.conv2.weight", "body.0.conv2.bias", "conv_after_body.weight", "conv_after_body.bias",
        "upsample.0.weight", "upsample.0.bias", "upsample.2.weight", "upsample.2.bias",
        "conv_last.weight", "conv_last.bias",
    ]


@pytest.mark.parametrize(
    ("name", "overrides", "architecture"),
    [
        ("rrdbnet_small", {"scale": 4}, "ESRGAN"),
        ("rrdbnet_small", {"scale": 2}, "ESRGAN"),
        ("compact_tiny", {"scale": 4}, "Compact"),
        ("compact_tiny", {"scale": 2}, "Compact"),
    ],
)
def test_spandrel_reads_our_state_dict_as_the_original_architecture(name, overrides, architecture):
    from spandrel import ModelLoader

    torch.manual_seed(0)
    net = models.build(name, **overrides).eval()
    descriptor = ModelLoader().load_from_state_dict(net.state_dict())
    assert descriptor.architecture.id == architecture
    assert descriptor.scale == overrides["scale"]
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(descriptor.model.eval()(x), net(x), rtol=0, atol=1e-5)


def test_edsr_mean_shift_makes_a_zero_network_return_the_input_mean_free_upsampling():
    # With every conv zeroed, EDSR outputs exactly the DIV2K mean (the shift is undone at the end).
    net = models.build("edsr_tiny", **SMALL["edsr_tiny"])
    for p in net.parameters():
        torch.nn.init.zeros_(p)
    out = net(torch.rand(1, 3, 6, 6))
    expected = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1).expand_as(out)
    torch.testing.assert_close(out, expected)


def test_residual_nets_start_near_their_skip_connection():
    # SRResNet predicts a residual over bilinear upsampling and Compact over nearest; with the last
    # conv zeroed the output is exactly that interpolation.
    x = torch.rand(1, 3, 8, 8)
    srresnet = models.build("srresnet", **SMALL["srresnet"])
    torch.nn.init.zeros_(srresnet.conv_last.weight)
    torch.nn.init.zeros_(srresnet.conv_last.bias)
    bilinear = torch.nn.functional.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    torch.testing.assert_close(srresnet(x), bilinear)
    compact = models.build("compact_tiny", **SMALL["compact_tiny"])
    torch.nn.init.zeros_(compact.body[-1].weight)
    torch.nn.init.zeros_(compact.body[-1].bias)
    torch.testing.assert_close(compact(x), torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest"))
