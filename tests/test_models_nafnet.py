"""NAFNet (deblurring): spec, odd sizes, spandrel round trip, receptive field, LayerNorm2d, bf16."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import restore.models as models
from restore.models.nafnet import NAFBlock, layer_norm_2d, nafnet_receptive_field

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def randomize_blocks(model: torch.nn.Module, seed: int = 0, std: float = 0.2) -> None:
    """Non-zero residual scales and perturbed norms (fresh NAFBlocks are the identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, NAFBlock):
                for p in (module.beta, module.gamma):
                    p.copy_(std * torch.randn(p.shape, generator=gen))
                for norm in (module.norm1, module.norm2):
                    norm.weight.add_(0.1 * torch.randn(norm.weight.shape, generator=gen))
                    norm.bias.add_(0.1 * torch.randn(norm.bias.shape, generator=gen))


@pytest.fixture
def small() -> torch.nn.Module:
    torch.manual_seed(0)
    model = models.build("nafnet_small")
    randomize_blocks(model)
    return model


def test_registered_specs():
    for name, radius in (("nafnet", 279), ("nafnet_small", 71)):
        spec = models.get_spec(name)
        assert spec.task == "deblur"
        assert (spec.scale, spec.in_channels, spec.out_channels, spec.size_multiple) == (1, 3, 3, 1)
        assert spec.inputs == ("image",)
        assert spec.receptive_field == radius
        cfg = spec.config
        reach = nafnet_receptive_field(cfg["enc_blk_nums"], cfg["middle_blk_num"], cfg["dec_blk_nums"])
        assert reach == radius
    built = models.build("nafnet_small")
    assert built.spec.receptive_field == 71 and built.spec.size_multiple == 1


@pytest.mark.parametrize("size", [(37, 29), (17, 33), (1, 1), (64, 48)])
def test_odd_sizes_keep_shape(small, size):
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        out = small.eval()(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_padding_does_not_leak_into_the_crop(small):
    """Output on an odd input equals the cropped output on its zero-padded version (original behaviour)."""
    torch.manual_seed(1)
    x = torch.rand(1, 3, 37, 29)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 11))  # 48 x 32: multiples of 16
    with torch.no_grad():
        out = small.eval()(x)
        out_padded = small(padded)[..., :37, :29]
    torch.testing.assert_close(out, out_padded, atol=1e-6, rtol=0)


def test_full_nafnet_parameter_count_matches_spandrel():
    spandrel = pytest.importorskip("spandrel")
    torch.manual_seed(0)
    ours = models.build("nafnet")
    descriptor = spandrel.ModelLoader().load_from_state_dict(ours.state_dict())
    assert descriptor.architecture.id == "NAFNet"
    n_ours = sum(p.numel() for p in ours.parameters())
    assert n_ours == sum(p.numel() for p in descriptor.model.parameters())
    assert 17.05e6 < n_ours < 17.15e6  # NAFNet-GoPro-width32: 17.11M (Chen et al. 2022)
    assert set(ours.state_dict()) == set(descriptor.model.state_dict())


def test_small_nafnet_output_matches_spandrel(small):
    spandrel = pytest.importorskip("spandrel")
    descriptor = spandrel.ModelLoader().load_from_state_dict(small.state_dict())
    assert descriptor.architecture.id == "NAFNet"
    assert (descriptor.scale, descriptor.input_channels, descriptor.output_channels) == (1, 3, 3)
    ref = descriptor.model.eval()
    assert sum(p.numel() for p in ref.parameters()) == sum(p.numel() for p in small.parameters()) == 1_256_115
    torch.manual_seed(2)
    x = torch.rand(2, 3, 37, 45)
    with torch.no_grad():
        out = small.eval()(x)
        expected = ref(x)
    assert (out - x).abs().mean() > 1e-2  # the blocks do something: the comparison means something
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_receptive_field_is_the_reach_of_the_convolutions(small):
    """With SCA's global pooling switched off, one output pixel depends on inputs within exactly 71 px."""
    with torch.no_grad():
        for module in small.modules():
            if isinstance(module, NAFBlock):
                module.sca[1].weight.zero_()  # SCA then scales by its bias: no global dependence
    x = torch.rand(1, 3, 160, 160, requires_grad=True)
    small.eval()(x)[0, :, 80, 80].sum().backward()
    reached = (x.grad[0].abs().sum(0) > 0).nonzero()
    lo, hi = reached.min(0).values, reached.max(0).values
    radius = small.receptive_field
    assert radius == 71
    assert (lo >= 80 - radius).all() and (hi <= 80 + radius).all()
    assert int(hi.max()) == 80 + radius  # the bound is reached (2x2 stride-2 convs reach one side)


def test_layer_norm_2d_matches_torch_and_keeps_float32_statistics():
    torch.manual_seed(3)
    weight, bias = torch.randn(8), torch.randn(8)
    x = torch.randn(2, 8, 5, 7)
    channels_last = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (8,), weight, bias, 1e-6)
    expected = channels_last.permute(0, 3, 1, 2)
    torch.testing.assert_close(layer_norm_2d(x, weight, bias), expected, atol=1e-5, rtol=1e-5)
    # Large offset, small spread: statistics computed in bf16 would lose the spread entirely.
    x16 = (300 + 4 * torch.randn(2, 8, 5, 7)).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer_norm_2d(x16, weight, bias)
    assert y.dtype == torch.bfloat16
    x64 = x16.double()
    mu = x64.mean(1, keepdim=True)
    ref = (x64 - mu) / ((x64 - mu).pow(2).mean(1, keepdim=True) + 1e-6).sqrt()
    ref = weight.double().view(1, -1, 1, 1) * ref + bias.double().view(1, -1, 1, 1)
    # Only the final rounding to bf16 remains: relative error <= 2^-8 of each value.
    assert ((y.double() - ref).abs() <= ref.abs() * 2**-8 + 1e-6).all()


def test_bf16_autocast_forward_backward_close_to_float32(small, natural_pair):
    """Train-mode forward + backward under CPU bf16 autocast on a blurred natural image (41x37).

    Measured (seeds 0-3, MSE loss): output max |diff| 0.0034-0.0049 (mean 0.0008-0.0011) on outputs
    of std 0.17-0.31; gradient relative error 0.003-0.022, almost all of it in ``ending.weight``,
    whose gradient sums bf16 feature x residual products over every pixel. bf16's relative step is
    2^-8 = 0.004; LayerNorm statistics stay float32. Tolerances: output max 0.015, mean 0.003;
    gradient relative error 0.05.
    """
    clean, blurred = natural_pair
    x, target = blurred[..., 100:141, 60:97], clean[..., 100:141, 60:97]
    small.train()

    def step(autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
        small.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = small(x)
        (out.float() - target).pow(2).mean().backward()
        return out.detach().float(), torch.cat([p.grad.flatten() for p in small.parameters()])

    out32, grad32 = step(False)
    out16, grad16 = step(True)
    assert out16.shape == x.shape
    assert torch.isfinite(out16).all() and torch.isfinite(grad16).all()
    diff = (out16 - out32).abs()
    assert float(diff.max()) < 0.015 and float(diff.mean()) < 0.003
    assert float((grad16 - grad32).norm() / grad32.norm()) < 0.05


def test_argument_validation():
    with pytest.raises(ValueError, match="enc_blk_nums and dec_blk_nums"):
        models.build("nafnet_small", dec_blk_nums=[1, 1])
    with pytest.raises(ValueError, match="width"):
        models.build("nafnet_small", width=0)
    with pytest.raises(ValueError, match=r"input must be \(N,3,H,W\)"):
        models.build("nafnet_small")(torch.rand(1, 1, 16, 16))
