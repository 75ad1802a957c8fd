"""SwinIR: shapes, parameter counts against the published SwinIR-light, and equality with spandrel's
copy of the original architecture (outputs and gradients) loaded from our state dict."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import restore.models as models
from restore.models.swinir import SwinIR, shifted_window_mask, window_attention, window_attention_fused

# SwinIR-light at x2/x3/x4. The paper (Table 3) counts 878K/886K/897K without the 24 relative position
# bias tables (24 * 225 * 6 = 32,400 parameters); papers comparing with it cite 910K/918K/930K.
LIGHT_WITHOUT_BIAS_TABLES = {2: 878_000, 3: 886_000, 4: 897_000}
LIGHT_TOTAL = {2: 910_000, 3: 918_000, 4: 930_000}


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def randomized(name: str, seed: int = 0, **overrides) -> nn.Module:
    """A built model in eval mode with every parameter perturbed, so no part of it is a no-op
    (at init LayerNorms are identities and the position bias is ~0)."""
    torch.manual_seed(seed)
    net = models.build(name, **overrides).eval()
    with torch.no_grad():
        for pname, p in net.named_parameters():
            p.add_(torch.randn_like(p) * (0.5 if "relative_position_bias_table" in pname else 0.03))
    return net


def spandrel_copy(net: nn.Module):
    """spandrel's descriptor for our state dict (spandrel detects the architecture and config)."""
    import spandrel

    state = {k: v.clone() for k, v in net.state_dict().items()}
    descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    descriptor.model.eval()
    return descriptor


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(37, 29), (8, 8), (5, 3)])
def test_output_shape_any_input_size(scale, size):
    net = models.build("swinir_tiny", scale=scale).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 3, size[0] * scale, size[1] * scale)
    assert torch.isfinite(y).all()


def test_restoration_and_classical_variants_shapes():
    x = torch.rand(1, 3, 19, 21)
    with torch.no_grad():
        assert models.build("swinir_tiny", scale=1, upsampler="")(x).shape == (1, 3, 19, 21)
        assert models.build("swinir_tiny", scale=3, upsampler="pixelshuffle")(x).shape == (1, 3, 57, 63)
        gray = models.build("swinir_tiny", scale=2, in_channels=1)
        assert gray(torch.rand(1, 1, 10, 9)).shape == (1, 1, 20, 18)
    assert gray.spec.in_channels == gray.spec.out_channels == 1


def test_padding_is_reflect_then_crop():
    """An input already reflect-padded to the window multiple gives the same output, cropped."""
    net = randomized("swinir_tiny", scale=2)
    x = torch.rand(1, 3, 37, 29)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 3), mode="reflect")  # 40 x 32
    with torch.no_grad():
        assert torch.allclose(net(x), net(padded)[..., :74, :58], atol=1e-6)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_light_parameter_count_matches_spandrel_and_paper(scale):
    from spandrel.architectures.SwinIR import SwinIR as Reference

    net = models.build("swinir_light", scale=scale)
    reference = Reference(
        img_size=64, embed_dim=60, depths=[6, 6, 6, 6], num_heads=[6, 6, 6, 6], window_size=8,
        mlp_ratio=2.0, upscale=scale, img_range=1.0, upsampler="pixelshuffledirect", resi_connection="1conv",
    )  # fmt: skip
    count = n_params(net)
    assert count == n_params(reference)
    assert {k: v.shape for k, v in net.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }
    tables = sum(p.numel() for name, p in net.named_parameters() if "relative_position_bias_table" in name)
    assert tables == 24 * 15 * 15 * 6
    assert round(count, -3) == LIGHT_TOTAL[scale]
    assert round(count - tables, -3) == LIGHT_WITHOUT_BIAS_TABLES[scale]


def test_light_round_trip_through_spandrel():
    net = randomized("swinir_light", scale=4)
    descriptor = spandrel_copy(net)
    assert descriptor.architecture.id == "SwinIR" and descriptor.scale == 4
    x = torch.rand(1, 3, 13, 11)
    with torch.no_grad():
        ours, theirs = net(x), descriptor.model(x)
    assert ours.shape == theirs.shape == (1, 3, 52, 44)
    assert (ours - theirs).abs().max() < 1e-5


@pytest.mark.parametrize(
    ("overrides", "size"),
    [
        ({"scale": 4}, (37, 29)),
        ({"scale": 3}, (32, 32)),  # exactly img_size: spandrel uses its stored masks
        ({"scale": 2, "upsampler": "pixelshuffle"}, (29, 37)),
        ({"scale": 1, "upsampler": "", "resi_connection": "3conv"}, (37, 29)),
        ({"scale": 2, "in_channels": 1, "img_size": 64}, (24, 17)),
    ],
)
def test_spandrel_round_trip_same_output(overrides, size):
    net = randomized("swinir_tiny", **overrides)
    descriptor = spandrel_copy(net)
    reference = descriptor.model
    assert descriptor.architecture.id == "SwinIR"
    assert descriptor.scale == net.spec.scale == overrides["scale"]
    assert descriptor.input_channels == descriptor.output_channels == net.in_channels
    assert n_params(reference) == n_params(net)
    x = torch.rand(2, net.in_channels, *size)
    with torch.no_grad():
        ours, theirs = net(x), reference(x)
    assert ours.shape == theirs.shape
    assert ours.std() > 0.1  # not a flat image: every part of the network contributes
    assert (ours - theirs).abs().max() < 1e-5  # measured 0.4e-6 to 1.4e-6
    # the comparison is sensitive: another position bias in one shifted block changes the output by
    # 2.5e-4 to 6.5e-3 (the 3conv restoration model, whose bottleneck damps its blocks, is the lowest)
    with torch.no_grad():
        table = reference.layers[0].residual_group.blocks[1].attn.relative_position_bias_table
        table.copy_(0.5 * torch.randn_like(table))
        assert (net(x) - reference(x)).abs().max() > 1e-4


def test_training_path_matches_spandrel_outputs_and_gradients():
    """With gradients the explicit attention runs (inference on CPU uses SDPA): check it too."""
    net = randomized("swinir_tiny", scale=2)
    reference = spandrel_copy(net).model
    torch.manual_seed(1)
    x = torch.rand(1, 3, 21, 18)
    weight = torch.randn(1, 3, 42, 36)
    results = []
    for model in (net, reference):
        xi = x.clone().requires_grad_()
        y = model(xi)
        (y * weight).mean().backward()
        results.append((y.detach(), xi.grad, {k: p.grad for k, p in model.named_parameters()}))
    (y, gx, ours), (ry, rx, theirs) = results
    assert (y - ry).abs().max() < 1e-5
    assert ours.keys() == theirs.keys()
    assert torch.allclose(gx, rx, rtol=1e-4, atol=1e-9)
    for name in ours:
        assert (ours[name] - theirs[name]).abs().max() <= 1e-4 * theirs[name].abs().max() + 1e-10, name


def test_fused_and_explicit_window_attention_agree():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2 * 4, 3, 16, 5) for _ in range(3))  # 2 images x 4 windows, 3 heads
    mask = shifted_window_mask(8, 8, 4, 2)  # 4 windows of 16 tokens
    for bias in (torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16) + mask.unsqueeze(1)):
        explicit = window_attention(q, k, v, bias, 5**-0.5)
        fused = window_attention_fused(q, k, v, bias, 5**-0.5)
        assert explicit.shape == fused.shape == (8, 3, 16, 5)
        assert (explicit - fused).abs().max() < 1e-5


def test_shifted_window_mask_matches_original():
    """The vectorised mask equals the original's loop over 3x3 regions (spandrel's calculate_mask)."""
    reference = spandrel_copy(models.build("swinir_tiny")).model
    block = reference.layers[0].residual_group.blocks[1]
    for h, w in [(32, 32), (40, 16), (8, 8)]:
        assert torch.equal(shifted_window_mask(h, w, 8, 4), block.calculate_mask((h, w)))


@pytest.mark.parametrize(
    ("dtype", "out_tol", "grad_tol"),
    [
        # bf16 keeps 8 mantissa bits (relative rounding 2^-9 = 0.2%); through ~10 matmul/conv layers
        # we measured 0.38% relative output error (max 0.009 on [0,1] pixels; the same for inference
        # through SDPA) and 0.6-0.65% relative gradient error. fp16 (11 bits): 0.05% output, 0.4-0.45%
        # gradients. Tolerances are 4-6x those. (On an H100, SwinIR-light x4 under autocast gave
        # 0.67% (bf16) and 0.08% (fp16) relative output error, the same as the original code.)
        (torch.bfloat16, 0.015, 0.03),
        (torch.float16, 0.003, 0.02),
    ],
)
def test_autocast_forward_backward_close_to_float32(natural_pair, dtype, out_tol, grad_tol):
    torch.manual_seed(0)
    net = models.build("swinir_tiny", scale=2)
    image = natural_pair[0][..., 100:132, 120:156]  # 32 x 36 crop of astronaut
    weight = torch.randn(1, 3, 64, 72)

    def run(autocast: bool):
        net.zero_grad()
        x = image.clone().requires_grad_()
        with torch.autocast("cpu", dtype=dtype, enabled=autocast):
            y = net(x)
        (y.float() * weight).mean().backward()
        grads = torch.cat([p.grad.flatten() for p in net.parameters()])
        return y.float().detach(), x.grad, grads

    y32, gx32, gp32 = run(False)
    y16, gx16, gp16 = run(True)
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype):  # inference: the SDPA path
        y16_inference = net(image).float()
    for t in (y16, gx16, gp16, y16_inference):
        assert torch.isfinite(t).all()

    def rel(a, b):
        return float((a - b).norm() / b.norm())

    assert rel(y16, y32) < out_tol
    assert rel(y16_inference, y32) < out_tol
    assert rel(gx16, gx32) < grad_tol
    assert rel(gp16, gp32) < grad_tol


def test_drop_path_only_in_training():
    torch.manual_seed(0)
    net = models.build("swinir_tiny", scale=2, drop_path_rate=0.5)
    plain = models.build("swinir_tiny", scale=2)
    plain.load_state_dict(net.state_dict())
    x = torch.rand(4, 3, 16, 16)
    net.eval()
    plain.eval()
    with torch.no_grad():
        assert torch.equal(net(x), plain(x))
        net.train()
        torch.manual_seed(1)
        assert not torch.allclose(net(x), plain(x))


def test_registered_specs():
    light = models.build("swinir_light", scale=2)
    assert light.spec.scale == 2 and light.spec.task == "sr"
    assert light.spec.size_multiple == 1 and light.spec.receptive_field == 32
    assert light.spec.supports_fp16 and light.spec.supports_bf16
    assert light.config["embed_dim"] == 60 and light.config["upsampler"] == "pixelshuffledirect"
    tiny = models.get_spec("swinir_tiny")
    assert tiny.scale == 4 and tiny.cls is SwinIR
    assert models.build("swinir_tiny", window_size=4, img_size=16).spec.receptive_field == 16


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"upsampler": "nearest"}, "upsampler must be one of"),
        ({"upsampler": "", "scale": 2}, "scale must be 1 with upsampler ''"),
        ({"upsampler": "pixelshuffle", "scale": 5}, "scale must be one of \\(2, 3, 4, 8\\)"),
        ({"num_heads": [4, 4]}, "num_heads must be positive ints dividing embed_dim=30"),
        ({"num_heads": [3]}, "depths and num_heads must be non-empty and of equal length"),
        ({"img_size": 36}, "img_size must be a multiple of window_size=8"),
        ({"resi_connection": "2conv"}, "resi_connection must be one of"),
        ({"scale": 0}, "scale must be a positive int"),
    ],
)
def test_bad_arguments_raise_value_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        models.build("swinir_tiny", **overrides)
