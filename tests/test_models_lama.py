"""LaMa (FFC inpainting generator): spec, shapes, spandrel round trip, compositing, float32 FFTs, bf16."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import restore.models as models
from restore.models.lama import FourierUnit, irfft2_float32, rfft2_float32

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def hole_mask(n: int, h: int, w: int) -> torch.Tensor:
    """(n,1,h,w) float mask with a rectangular hole and a few scattered hole pixels (1 = hole)."""
    gen = torch.Generator().manual_seed(3)
    mask = (torch.rand(n, 1, h, w, generator=gen) > 0.9).float()
    mask[..., h // 4 : h // 2, w // 3 : 2 * w // 3] = 1.0
    return mask


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                module.weight.copy_(1 + 0.1 * torch.randn(c, generator=gen))
                module.bias.copy_(0.05 * torch.randn(c, generator=gen))


@pytest.fixture(scope="module")
def big_lama_pair():
    """Our big-lama (random weights, eval) and spandrel's model loaded from our state dict."""
    spandrel = pytest.importorskip("spandrel")
    torch.manual_seed(0)
    ours = models.build("lama").eval()
    randomize_batchnorm(ours)
    descriptor = spandrel.ModelLoader().load_from_state_dict(ours.state_dict())
    return ours, descriptor


@pytest.fixture
def small_lama() -> torch.nn.Module:
    torch.manual_seed(0)
    return models.build("lama_small")


@pytest.fixture
def image64(natural_pair) -> torch.Tensor:
    """(2,3,64,64) natural image crops."""
    clean, _ = natural_pair
    return torch.cat([clean[..., 64:128, 96:160], clean[..., 160:224, 32:96]])


def test_registered_specs():
    for name in ("lama", "lama_small"):
        spec = models.get_spec(name)
        assert spec.task == "inpaint"
        assert spec.inputs == ("image", "mask")
        assert (spec.scale, spec.in_channels, spec.out_channels) == (1, 3, 3)
        assert spec.size_multiple == 8
        assert spec.receptive_field == 128
        assert spec.supports_bf16 and not spec.supports_fp16
    small = models.build("lama_small")
    assert small.spec.size_multiple == 8 and small.spec.inputs == ("image", "mask")
    assert small.config == {"ngf": 32, "n_downsampling": 3, "n_blocks": 4}


def test_big_lama_parameter_count_and_keys_match_spandrel(big_lama_pair):
    ours, descriptor = big_lama_pair
    assert descriptor.architecture.id == "LaMa"
    assert (descriptor.input_channels, descriptor.output_channels) == (3, 3)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_ref = sum(p.numel() for p in descriptor.model.parameters())
    assert n_ours == n_ref
    assert 50.5e6 < n_ours < 51.5e6  # big-lama: 51M parameters (Suvorov et al. 2022, Table 1)
    assert set(ours.state_dict()) == set(descriptor.model.state_dict())


def test_big_lama_output_matches_spandrel(big_lama_pair):
    ours, descriptor = big_lama_pair
    ref = descriptor.model.eval()
    torch.manual_seed(1)
    image = torch.rand(2, 3, 48, 40)
    mask = hole_mask(2, 48, 40)
    with torch.no_grad():
        out = ours(image, mask)
        expected = ref(image, mask)
        raw = ours(image, mask, composite=False)
        raw_expected = ref.model(image * (1 - mask), mask)
    assert out.shape == (2, 3, 48, 40)
    assert raw.std() > 1e-3  # the generator's output is not saturated: the comparison means something
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(raw, raw_expected, atol=1e-5, rtol=0)


def test_shapes_and_range(small_lama, image64):
    mask = hole_mask(2, 64, 64)
    image = torch.nn.functional.pad(image64, (0, 16, 0, 0))[..., :48, :]  # (2,3,48,80), non-square
    mask = torch.nn.functional.pad(mask, (0, 16, 0, 0))[..., :48, :]
    small_lama.eval()
    with torch.no_grad():
        out = small_lama(image, mask)
        raw = small_lama(image, mask, composite=False)
    assert out.shape == raw.shape == (2, 3, 48, 80)
    assert out.dtype == torch.float32
    assert 0 <= float(raw.min()) and float(raw.max()) <= 1
    assert sum(p.numel() for p in small_lama.parameters()) == 3_449_667


def test_known_pixels_preserved_and_hole_content_ignored(small_lama, image64):
    small_lama.eval()
    mask = hole_mask(2, 64, 64)
    torch.manual_seed(2)
    scribbled = torch.where(mask.bool(), torch.rand_like(image64), image64)  # other pixels in the hole
    with torch.no_grad():
        out = small_lama(image64, mask)
        out_scribbled = small_lama(scribbled, mask)
        raw = small_lama(image64, mask, composite=False)
    known = ~mask.bool().expand_as(out)
    assert torch.equal(out[known], image64[known])  # known pixels come back bit-exact
    assert torch.equal(out[~known], raw[~known])  # the hole holds the generator's output
    assert torch.equal(out, out_scribbled)  # what was under the hole never reaches the output
    # A different hole changes the output only inside the union of the two holes.
    mask2 = mask.clone()
    mask2[..., 40:56, 8:24] = 1.0
    with torch.no_grad():
        out2 = small_lama(image64, mask2)
    outside = ~(mask.bool() | mask2.bool()).expand_as(out)
    assert torch.equal(out2[outside], out[outside])
    assert not torch.allclose(out2[~outside], out[~outside])


def test_size_and_mask_validation(small_lama):
    image = torch.rand(1, 3, 36, 32)
    with pytest.raises(ValueError, match="multiples of 8"):
        small_lama(image, torch.zeros(1, 1, 36, 32))
    with pytest.raises(ValueError, match="at least 16"):
        small_lama(torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="mask must be"):
        small_lama(torch.rand(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="image must be"):
        small_lama(torch.rand(1, 4, 32, 32), torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="ratio_gin"):
        models.build("lama_small", ratio=1.0)


def test_fourier_branch_reaches_the_whole_image(small_lama):
    """The FFC global path links opposite corners of a 128x128 image, beyond the convolutions' reach.

    lama_small's convolutions reach 84 px (stem 3 + downsamplings 1+2+4 + 8 convs at stride 8 = 64
    + upsamplings 4+2+1 + output 3); corner to corner is 127 px. With the Fourier units' spectral
    convolutions zeroed (eval mode, default BN statistics: the unit then outputs 0) the corners are
    independent.
    """
    small_lama.eval()
    image = torch.rand(1, 3, 128, 128, requires_grad=True)
    mask = torch.zeros(1, 1, 128, 128)
    small_lama(image, mask, composite=False)[0, :, 127, 127].sum().backward()
    assert image.grad[0, :, 0, 0].abs().sum() > 0
    with torch.no_grad():
        for module in small_lama.modules():
            if isinstance(module, FourierUnit):
                module.conv_layer.weight.zero_()
    image.grad = None
    small_lama(image, mask, composite=False)[0, :, 127, 127].sum().backward()
    assert image.grad[0, :, 0, 0].abs().sum() == 0
    assert image.grad[0, :, 127 - 40 :, 127 - 40 :].abs().sum() > 0


def test_fft_helpers_are_float32_and_invert():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 12, 10).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spectrum = rfft2_float32(x)
        back = irfft2_float32(spectrum, (12, 10))
    assert spectrum.dtype == torch.complex64 and spectrum.shape == (2, 4, 12, 6)
    assert back.dtype == torch.float32
    torch.testing.assert_close(back, x.float(), atol=1e-5, rtol=0)


def test_fft_runs_in_float32_under_bf16_autocast(small_lama, image64, monkeypatch):
    calls: list[tuple[str, torch.dtype, bool]] = []
    rfftn, irfftn = torch.fft.rfftn, torch.fft.irfftn

    def recording_rfftn(x, *args, **kwargs):
        calls.append(("rfftn", x.dtype, torch.is_autocast_enabled("cpu")))
        return rfftn(x, *args, **kwargs)

    def recording_irfftn(x, *args, **kwargs):
        calls.append(("irfftn", x.dtype, torch.is_autocast_enabled("cpu")))
        return irfftn(x, *args, **kwargs)

    monkeypatch.setattr(torch.fft, "rfftn", recording_rfftn)
    monkeypatch.setattr(torch.fft, "irfftn", recording_irfftn)
    unit_dtypes: list[tuple[torch.dtype, torch.dtype]] = []
    hooks = [
        m.register_forward_hook(lambda _m, args, out: unit_dtypes.append((args[0].dtype, out.dtype)))
        for m in small_lama.modules()
        if isinstance(m, FourierUnit)
    ]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = small_lama(image64, hole_mask(2, 64, 64))
    for hook in hooks:
        hook.remove()
    assert torch.isfinite(out).all()
    n_units = 2 * 4  # two FFC layers per block, 4 blocks in lama_small
    assert sorted(calls) == sorted(
        [("rfftn", torch.float32, False)] * n_units + [("irfftn", torch.complex64, False)] * n_units
    )
    assert unit_dtypes == [(torch.bfloat16, torch.bfloat16)] * n_units  # cast back to the input dtype


def test_pure_bfloat16_model_runs(small_lama, image64):
    """A model converted with .bfloat16() (no autocast) still does its FFTs in float32."""
    model = small_lama.eval().bfloat16()
    with torch.no_grad():
        out = model(image64.bfloat16(), hole_mask(2, 64, 64).bfloat16())
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_bf16_autocast_forward_backward_close_to_float32(small_lama, image64):
    """Train-mode forward + backward under CPU bf16 autocast: finite, close to float32.

    Measured (seeds 0-3, MSE loss): output max |diff| 0.013-0.017 (mean 0.0025-0.0026), gradient
    cosine similarity 0.995-0.997 (relative error ~0.1; with an L1 loss the cosine drops to
    0.98-0.99 from sign flips). bf16 keeps 8 mantissa bits (relative step 2^-8 = 0.004) through
    ~25 convolution + batch-norm layers, and the random-init, train-mode-BN network is itself that
    sensitive: rounding only the *input* to bf16 in a float32 run already moves the gradient cosine
    to 0.995-0.997. Tolerances: output max 0.04, mean 0.006; gradient cosine > 0.98.
    """
    mask = hole_mask(2, 64, 64)
    small_lama.train()

    def step(autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
        small_lama.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = small_lama(image64, mask, composite=False)
        (out.float() - image64).pow(2).mean().backward()
        grads = torch.cat([p.grad.flatten() for p in small_lama.parameters()])
        return out.detach().float(), grads

    out32, grad32 = step(False)
    out16, grad16 = step(True)
    assert torch.isfinite(out16).all() and torch.isfinite(grad16).all()
    diff = (out16 - out32).abs()
    assert float(diff.max()) < 0.04 and float(diff.mean()) < 0.006
    assert torch.nn.functional.cosine_similarity(grad16, grad32, dim=0) > 0.98
