"""Predictor: device and precision policy, channels_last, validation, tiling and out-of-memory memory."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
from torch import nn

import restore.models as models
from restore.infer import Predictor, default_precision, resolve_precision
from restore.infer.tiling import default_overlap
from restore.models.registry import attach_spec


class Recorder(nn.Module):
    """Wraps a model and records what its forward sees: layout, dtype, autocast, inference mode."""

    def __init__(self, inner: nn.Module, spec_changes: dict | None = None, oom_above: int | None = None):
        super().__init__()
        self.inner = inner
        self.oom_above = oom_above
        self.seen: list[dict] = []
        attach_spec(self, dataclasses.replace(inner.spec, **(spec_changes or {})))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[0]
        self.seen.append(
            {
                "channels_last": x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1,
                "contiguous": x.is_contiguous(),
                "dtype": x.dtype,
                "device": x.device.type,
                "autocast": torch.is_autocast_enabled(x.device.type),
                "autocast_dtype": torch.get_autocast_dtype(x.device.type),
                "inference": torch.is_inference_mode_enabled(),
                "shape": tuple(x.shape),
            }
        )
        if self.oom_above is not None and max(x.shape[-2:]) > self.oom_above:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return self.inner(*inputs)


def compact(**spec_changes) -> Recorder:
    torch.manual_seed(0)
    return Recorder(models.build("compact_tiny"), spec_changes)


def image(h: int = 24, w: int = 20, n: int = 1, c: int = 3) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(5))


def test_cpu_default_is_float32_channels_last_in_inference_mode():
    model = compact()
    predictor = Predictor(model, device="cpu")
    assert predictor.precision == "fp32" and predictor.dtype == torch.float32 and predictor.channels_last
    assert model.inner.body[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not model.training
    x = image()
    out = predictor(x)
    seen = model.seen[-1]
    assert seen["channels_last"] and not seen["contiguous"]  # channels_last, not the default layout
    assert seen["dtype"] == torch.float32 and not seen["autocast"] and seen["inference"]
    assert x.is_contiguous()  # the caller's tensor is untouched
    assert out.shape == (1, 3, 96, 80) and out.dtype == torch.float32 and out.device == x.device
    assert predictor.last_tile is None  # a small image: one pass


def test_default_device_follows_cuda_availability():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert Predictor(compact()).device.type == expected
    with pytest.raises(ValueError, match="device"):
        Predictor(compact(), device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Predictor(compact(), device="cuda")


def test_output_equals_the_plain_model_and_is_not_clamped():
    torch.manual_seed(0)
    plain = models.build("edsr_tiny").eval()
    with torch.no_grad():
        plain.conv_last.bias += 2.0 * plain.img_range  # outputs shifted by +2: far outside [0, 1]
    x = image(33, 29, n=2)
    with torch.no_grad():
        expected = plain(x)  # contiguous float32
    out = Predictor(plain, device="cpu")(x)
    assert out.min() > 1.5
    diff = (out - expected).abs().max().item()
    assert diff < 1e-5, diff


def test_explicit_tile_matches_the_whole_image_and_is_rounded_to_the_size_multiple():
    torch.manual_seed(0)
    plain = models.build("rrdbnet_small", scale=2).eval()
    x = image(64, 90)
    with torch.no_grad():
        expected = plain(x)
    predictor = Predictor(plain, device="cpu", tile=81, tile_batch=2)
    assert predictor.tile == 80 and predictor.overlap == default_overlap(24, 2) == 60
    out = predictor(x)
    assert predictor.last_tile == 80
    diff = (out - expected).abs().max().item()
    assert diff < 1e-5, diff


@pytest.mark.parametrize("name", ["compact_tiny", "edsr_tiny"])  # sub-pixel and tensor tile outputs
def test_write_gets_the_quantised_image_the_tensor_output_gives(name):
    from restore.io.quantise import QuantisedImage, quantise

    torch.manual_seed(0)
    predictor = Predictor(models.build(name).eval(), device="cpu", tile=41)
    x = image(70, 90)
    expected = quantise(predictor(x)[0].permute(1, 2, 0).clamp(0, 1), 8)
    written = QuantisedImage(280, 360, bit_depth=8, gray=False, alpha=False)
    layouts = set()

    def write(block: torch.Tensor, top: int, left: int) -> None:
        layouts.add(block.is_contiguous(memory_format=torch.channels_last) and not block.is_contiguous())
        written.write(block, top, left)

    assert predictor(x, write=write) is None
    assert predictor.last_tile == 41  # tiled: written tile by tile
    assert torch.equal(written.pixels, expected)
    # the compact network's tile centres come in HWC strips (its features interleaved for them)
    assert layouts == ({True} if name == "compact_tiny" else {False})


def test_auto_tile_under_a_small_memory_budget(monkeypatch):
    model = compact()
    predictor = Predictor(model, device="cpu", tile_batch=1)
    x = image(67, 93)
    per_pixel = predictor.bytes_per_pixel()
    assert per_pixel > 4 * 32  # at least one float32 feature map of 32 channels per pixel
    # A budget for one 60x60 tile per forward (tile_batch 1): tiles of 60.
    monkeypatch.setattr(Predictor, "memory_budget", lambda self: (60 * 60 + 1) * per_pixel)
    assert predictor.choose_tile((x,)) == 60
    model.seen.clear()
    out = predictor(x)
    # at most 60, balanced: 2 x 2 tiles of 44 x 57 cover 67 x 93 with the overlap of 20
    assert predictor.last_tile == 60 and {s["shape"][-2:] for s in model.seen} == {(44, 57)}
    with torch.no_grad():
        expected = model.inner(x)
    assert (out - expected).abs().max() < 1e-5
    # A budget the whole image fits: one pass.
    monkeypatch.setattr(Predictor, "memory_budget", lambda self: 67 * 93 * per_pixel + 1)
    assert predictor.choose_tile((x,)) is None
    # Never below the useful minimum 2 * overlap + 1 = 57.
    monkeypatch.setattr(Predictor, "memory_budget", lambda self: 1.0)
    assert predictor.choose_tile((x,)) == 2 * predictor.overlap + 1


def test_cpu_super_resolution_tiles_images_beyond_one_and_a_half_cache_tiles(monkeypatch):
    from restore.infer import predictor as predictor_module

    monkeypatch.setattr(predictor_module, "CPU_CACHE_TILE", 100)
    monkeypatch.setattr(Predictor, "memory_budget", lambda self: 2.0**40)  # everything fits
    sr = Predictor(compact(), device="cpu")
    assert sr.cache_tile() == 100 and predictor_module.CPU_ONE_PASS_TILES == 1.5
    assert sr.choose_tile((image(120, 125),)) is None  # 15000 pixels: one pass
    assert sr.choose_tile((image(120, 126),)) == 100  # 15120 > 1.5 tiles of 100 x 100
    assert sr.choose_tile((image(60, 130, n=2),)) is None  # per image: two of 7800 pixels
    assert sr.choose_tile((image(120, 126, n=2),)) == 100
    # never below 4 overlaps, however small the cache tile
    monkeypatch.setattr(predictor_module, "CPU_CACHE_TILE", 8)
    assert sr.cache_tile() == 4 * sr.overlap == 80
    # a model that needs the whole image (inpainting) gets one pass whenever it fits
    whole = Predictor(compact(task="inpaint"), device="cpu")
    assert whole.cache_tile() is None and whole.choose_tile((image(300, 400),)) is None


def test_out_of_memory_fallback_is_remembered():
    torch.manual_seed(0)
    model = Recorder(models.build("compact_tiny"), oom_above=70)
    predictor = Predictor(model, device="cpu")
    assert predictor.overlap == 20  # exact tiling: 2 * receptive field 10, no ramp
    x = image(61, 75)
    with pytest.warns(UserWarning, match="out of memory"):
        out = predictor(x)
    assert predictor.last_tile == 41  # 75 -> 37, raised to the minimum 2 * overlap (20) + 1
    with torch.no_grad():
        assert (out - model.inner(x)).abs().max() < 1e-5
    model.seen.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no new halving: the tile that worked is used directly
        predictor(x)
    assert {s["shape"][-2:] for s in model.seen} == {(41, 39)}  # tile 41, balanced on 61 x 75


def test_bf16_refused_with_a_warning_when_the_model_does_not_support_it():
    model = compact(supports_bf16=False, name="no_bf16_net")
    with pytest.warns(UserWarning, match="no_bf16_net.*bf16"):
        predictor = Predictor(model, device="cpu", precision="bf16")
    assert predictor.precision == "fp32"
    predictor(image())
    assert not model.seen[-1]["autocast"]
    with pytest.warns(UserWarning, match="no_fp16_net.*fp16"):
        Predictor(compact(supports_fp16=False, name="no_fp16_net"), device="cpu", precision="float16")


def test_bf16_runs_under_autocast_with_float32_weights_and_output():
    model = compact()
    predictor = Predictor(model, device="cpu", precision="bfloat16")
    assert predictor.precision == "bf16"
    x = image()
    out = predictor(x)
    seen = model.seen[-1]
    assert seen["autocast"] and seen["autocast_dtype"] == torch.bfloat16 and seen["dtype"] == torch.float32
    assert model.inner.body[0].weight.dtype == torch.float32 and out.dtype == torch.float32
    with torch.no_grad():
        expected = model.inner(x)
    rel = ((out - expected).norm() / expected.norm()).item()
    assert 0 < rel < 1e-2, rel


def native_bf16(monkeypatch, instructions: str | None = "amx_bf16") -> None:
    """Make the CPU policy see these native bf16 instructions (None: none)."""
    import restore.infer.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "cpu_bf16_instructions", lambda: instructions)


CPU_BF16 = {"compact", "compact_general", "compact_tiny", "edsr", "edsr_full", "edsr_tiny", "rrdbnet",
            "rrdbnet_small", "srresnet"}


@pytest.mark.parametrize("instructions", ["amx_bf16", "avx512_bf16"])
def test_cpu_default_is_bf16_for_declared_conv_networks_on_native_bf16_cpus(monkeypatch, instructions):
    assert {name for name in models.available() if models.get_spec(name).cpu_bf16} == CPU_BF16
    native_bf16(monkeypatch, instructions)
    cpu = torch.device("cpu")
    for name in models.available():
        expected = torch.bfloat16 if name in CPU_BF16 else torch.float32
        assert default_precision(models.get_spec(name), cpu) == expected, name
    no_bf16 = dataclasses.replace(models.get_spec("compact_tiny"), supports_bf16=False)
    assert default_precision(no_bf16, cpu) == torch.float32
    # A diffusion UNet served as "sr" by its sampler keeps float32 (the sampler copies its spec).
    served = dataclasses.replace(models.get_spec("sr3_x4_tiny"), task="sr")
    assert default_precision(served, cpu) == torch.float32
    native_bf16(monkeypatch, None)
    assert default_precision(models.get_spec("compact_tiny"), cpu) == torch.float32


def test_native_bf16_default_runs_autocast_bf16_close_to_float32(monkeypatch):
    native_bf16(monkeypatch)
    model = compact()
    predictor = Predictor(model, device="cpu")
    assert predictor.precision == "bf16" and predictor.channels_last
    x = image(40, 36)
    out = predictor(x)
    seen = model.seen[-1]
    assert seen["autocast"] and seen["autocast_dtype"] == torch.bfloat16 and seen["inference"]
    assert out.dtype == torch.float32 and out.shape == (1, 3, 160, 144)
    with torch.no_grad():
        expected = model.inner(x)
    error = (out - expected).abs()
    # bf16 features, float32 skip and output: well under one 8-bit level on average
    assert 0 < error.mean().item() < 1e-3 and error.max().item() < 2e-2
    tiled = Predictor(compact(), device="cpu", tile=24)(x)  # exact tiling holds in bf16 too
    assert (tiled - out).abs().max().item() < 1e-3
    assert Predictor(compact(), device="cpu", precision="fp32").precision == "fp32"  # explicit wins


def test_cpu_bf16_instructions_reads_the_capabilities(monkeypatch):
    import restore.infer.predictor as predictor_module

    monkeypatch.undo()  # drop the autouse stand-in: the real probe
    detect = predictor_module.cpu_bf16_instructions.__wrapped__  # without its cache
    assert detect() == predictor_module.cpu_bf16_instructions()
    assert detect() in (None, "amx_bf16", "avx512_bf16")
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True}, raising=False)
    monkeypatch.setattr(torch.cpu, "_init_amx", lambda: True, raising=False)
    assert detect() == "amx_bf16"
    monkeypatch.setattr(torch.cpu, "_init_amx", lambda: False)  # the kernel refuses the tile state
    assert detect() is None
    both = {"amx_bf16": True, "avx512_bf16": True}  # Sapphire Rapids has both: AVX512-BF16 remains
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: both)
    assert detect() == "avx512_bf16"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": False, "avx512_bf16": True})
    assert detect() == "avx512_bf16"  # AMD Zen 4 / Intel Cooper Lake
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": False, "avx2": True})
    assert detect() is None
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)  # no oneDNN
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True})
    assert detect() is None
    monkeypatch.undo()
    monkeypatch.delattr(torch.cpu, "get_capabilities")  # an older PyTorch cannot tell
    assert detect() is None


def test_precision_names_and_policy(monkeypatch):
    spec = models.get_spec("compact_tiny")
    cpu = torch.device("cpu")
    names = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
             "BFloat16": torch.bfloat16, "fp16": torch.float16, torch.float16: torch.float16}
    for name, dtype in names.items():
        assert resolve_precision(name, spec, cpu) == dtype
    with pytest.raises(ValueError, match="precision.*'int8'"):
        resolve_precision("int8", spec, cpu)
    assert default_precision(spec, cpu) == torch.float32
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert default_precision(spec, cuda) == torch.bfloat16
    no_bf16 = dataclasses.replace(spec, supports_bf16=False)
    assert default_precision(no_bf16, cuda) == torch.float16
    assert default_precision(dataclasses.replace(no_bf16, supports_fp16=False), cuda) == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert default_precision(spec, cuda) == torch.float16  # pre-Ampere GPU


def test_input_validation_messages():
    predictor = Predictor(compact(), device="cpu")
    with pytest.raises(ValueError, match="expects 3 input channels, got 1"):
        predictor(image(c=1))
    with pytest.raises(ValueError, match="4-D"):
        predictor(image()[0])
    with pytest.raises(ValueError, match="empty"):
        predictor(torch.rand(0, 3, 8, 8))
    with pytest.raises(ValueError, match="float"):
        predictor((image() * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"1 input\(s\) \(image\), got 2"):
        predictor(image(), image())
    with pytest.raises(ValueError, match="tile"):
        Predictor(compact(), device="cpu", tile=0)
    with pytest.raises(TypeError, match="ModelSpec"):
        Predictor(nn.Conv2d(3, 3, 3), device="cpu")


def test_inpainting_model_takes_image_and_mask():
    torch.manual_seed(0)
    lama = models.build("lama_small").eval()
    x, mask = models.example_inputs(lama, 1, 32)
    predictor = Predictor(lama, device="cpu")
    with torch.no_grad():
        expected = lama(x, mask)
    out = predictor(x, mask)
    assert (out - expected).abs().max() < 1e-5
    with pytest.raises(ValueError, match="mask must have 1 channel"):
        predictor(x, x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_model_cpu_input_returns_on_the_input_device():
    model = compact()
    predictor = Predictor(model, device="cuda", precision="fp32")
    x = image(64, 80)
    out = predictor(x)
    assert out.device.type == "cpu" and model.seen[-1]["device"] == "cuda"
    with torch.no_grad():
        expected = model.inner.cpu()(x)
    assert (out - expected).abs().max() < 1e-4
