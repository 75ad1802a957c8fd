"""Diffusion models through the API, the hub and the CLI: restore.upscale / restore.inpaint with
``steps``, ``seed`` and ``scheduler``, tiling, and the DiffusionSampler wrapper.

The models are the tiny registered SR3 UNets with random weights saved to .safetensors (what
``restore.models.save`` writes for a trained one); every output is compared with the sampler of
restore.diffusion called directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import restore
import restore.models as models
from restore import api, hub
from restore.cli import main
from restore.diffusion import SCHEDULERS, repaint, sample_inpaint_conditional, sample_sr
from restore.infer.diffusion_sampler import SR_BLEND_RADIUS, DiffusionSampler

pytestmark = pytest.mark.usefixtures("one_thread")
NAMES = ("sr3_x4_tiny", "diffusion_inpaint_tiny", "ddpm_unconditional_tiny", "compact_tiny")


@pytest.fixture(autouse=True)
def empty_cache():
    api._predictors.clear()
    yield
    api._predictors.clear()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    return {name: models.save(models.build(name), folder / f"{name}.safetensors") for name in NAMES}


def natural(height: int, width: int) -> torch.Tensor:
    """A crop of a natural image (1, 3, height, width) in [0, 1]."""
    import skimage.data

    array = skimage.data.astronaut()[100 : 100 + 4 * height : 4, 150 : 150 + 4 * width : 4]
    return torch.from_numpy(array.astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()


def hole_mask(height: int, width: int) -> torch.Tensor:
    mask = torch.zeros(1, 1, height, width)
    mask[..., height // 4 : height // 2, width // 3 : 3 * width // 4] = 1
    return mask


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal up to float rounding (the Predictor runs channels_last on the CPU; the x0 estimate of the
    first step divides by sqrt(a_t) ~ 0.006, which magnifies rounding: 1.2e-4 seen)."""
    torch.testing.assert_close(a, b, atol=1e-3, rtol=0)


# ----------------------------------------------------------------------------- upscale


def test_upscale_runs_the_sr3_sampler_deterministically_per_seed(weights):
    path = weights["sr3_x4_tiny"]
    lr = natural(24, 24)
    first = restore.upscale(lr, model=path, steps=2, seed=0)  # tile=None: memory probe, one pass
    again = restore.upscale(lr, model=path, steps=2, seed=0, tile=64)
    other = restore.upscale(lr, model=path, steps=2, seed=1, tile=64)
    assert first.shape == (1, 3, 96, 96) and first.dtype == torch.float32
    assert torch.equal(first, again)
    assert (first - other).abs().mean() > 0.01
    model = models.load(path).eval()
    close(first, sample_sr(model, lr, 2, "ddim", generator=0))
    close(other, sample_sr(model, lr, 2, "ddim", generator=1))
    # the defaults are 20 DDIM steps and seed 0; DPM-Solver++ on request
    predictor = api.get_predictor(path, task="sr", scale=4)
    assert (predictor.model.steps, predictor.model.seed, predictor.model.scheduler) == (20, 0, "ddim")
    dpm = restore.upscale(lr, model=path, steps=2, scheduler="dpm", tile=64)
    close(dpm, sample_sr(model, lr, 2, "dpm", generator=0))


def test_large_inputs_are_tiled_and_each_tile_is_seeded_the_same(weights):
    path = weights["sr3_x4_tiny"]
    lr = natural(40, 40)
    predictor = api.get_predictor(path, task="sr", scale=4, tile=32, steps=2, seed=0)
    out = predictor(lr)
    assert predictor.last_tile == 32 and out.shape == (1, 3, 160, 160)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert torch.equal(predictor(lr), out)
    assert torch.equal(restore.upscale(lr, model=path, steps=2, seed=0, tile=32), out)
    # the first 8 input columns and rows are covered by the top-left tile only: there the output is
    # that tile's own sample with the seed's noise
    model = models.load(path).eval()
    corner = sample_sr(model, lr[..., :32, :32], 2, "ddim", generator=0)
    close(out[..., :32, :32], corner[..., :32, :32])
    # a tile inside the blending overlap (2 * 8 + 8 input pixels) is raised to the smallest useful one
    with pytest.warns(UserWarning, match="too small"):
        small = api.get_predictor(path, task="sr", scale=4, tile=16, steps=2, seed=0)
    assert small.tile == 49 and small.overlap == 3 * SR_BLEND_RADIUS


def test_sampling_options_are_refused_for_other_models(weights):
    lr = natural(8, 8)
    plain = weights["compact_tiny"]
    for option in ({"steps": 2}, {"seed": 0}, {"scheduler": "ddim"}):
        name = next(iter(option))
        with pytest.raises(ValueError, match=f"{name} set the sampling of diffusion models; model '{plain}'"):
            restore.upscale(lr, model=plain, **option)
    assert restore.upscale(lr, model=plain).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        restore.upscale(lr, model=weights["sr3_x4_tiny"], steps=0)
    with pytest.raises(ValueError, match="scheduler must be one of"):
        restore.upscale(lr, model=weights["sr3_x4_tiny"], scheduler="euler")


def test_bf16_sampling_is_finite(weights):
    lr = natural(16, 16)
    fp32 = restore.upscale(lr, model=weights["sr3_x4_tiny"], steps=2, tile=64)
    bf16 = restore.upscale(lr, model=weights["sr3_x4_tiny"], steps=2, tile=64, precision="bf16")
    assert torch.isfinite(bf16).all()
    assert (bf16 - fp32).abs().mean() < 0.05


# ----------------------------------------------------------------------------- inpaint


def test_mask_conditional_inpainting_keeps_known_pixels(weights):
    path = weights["diffusion_inpaint_tiny"]
    image, mask = natural(32, 32), hole_mask(32, 32)
    out = restore.inpaint(image, mask, model=path, steps=2, seed=0)
    known = 1 - mask
    assert torch.equal(out * known, image * known)
    assert torch.equal(restore.inpaint(image, mask, model=path, steps=2, seed=0), out)
    model = models.load(path).eval()
    close(out, sample_inpaint_conditional(model, image, mask, 2, "ddim", generator=0))
    # uint8 in, uint8 out: the known pixels are the input's bytes
    array = (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    filled = restore.inpaint(array, mask[0, 0].numpy() > 0.5, model=path, steps=2)
    holes = mask[0, 0].numpy() > 0.5
    assert filled.dtype == np.uint8 and np.array_equal(filled[~holes], array[~holes])


def test_an_unconditional_model_inpaints_with_repaint(weights):
    path = weights["ddpm_unconditional_tiny"]
    image, mask = natural(32, 32), hole_mask(32, 32)
    out = restore.inpaint(image, mask, model=path, steps=3, seed=5)
    known = 1 - mask
    assert torch.equal(out * known, image * known)
    model = models.load(path).eval()
    close(out, repaint(model, image, mask, 3, generator=5))
    with pytest.raises(ValueError, match="inpaints with RePaint, which has its own scheduler"):
        restore.inpaint(image, mask, model=path, scheduler="ddim")


# ----------------------------------------------------------------------------- hub, wrapper, CLI


def test_the_hub_lets_a_diffusion_model_serve_its_own_task_only(weights):
    sr3 = hub.load_model(weights["sr3_x4_tiny"], task="sr", scale=4)
    assert sr3.spec.task == "diffusion" and sr3.spec.scale == 4
    assert hub.load_model(weights["sr3_x4_tiny"], task="diffusion").spec.name == "sr3_x4_tiny"
    assert hub.load_model(weights["diffusion_inpaint_tiny"], task="inpaint").spec.inputs == ("image", "mask")
    assert hub.load_model(weights["ddpm_unconditional_tiny"], task="inpaint").cond_channels == 0
    with pytest.raises(ValueError, match="upscales by 4, but scale=2"):
        hub.load_model(weights["sr3_x4_tiny"], task="sr", scale=2)
    with pytest.raises(ValueError, match="super-resolution diffusion model .* task 'inpaint'"):
        hub.load_model(weights["sr3_x4_tiny"], task="inpaint")
    with pytest.raises(ValueError, match="mask-conditional inpainting diffusion model .* task 'sr'"):
        hub.load_model(weights["diffusion_inpaint_tiny"], task="sr")
    with pytest.raises(ValueError, match="is a 'diffusion' model .* task 'deblur'"):
        hub.load_model(weights["sr3_x4_tiny"], task="deblur")


def test_diffusion_sampler_spec_and_errors():
    torch.manual_seed(0)
    sr3 = models.build("sr3_x4_tiny")
    sampler = DiffusionSampler(sr3, steps=3, seed=7)
    spec = sampler.spec
    assert (spec.task, spec.scale, spec.inputs) == ("sr", 4, ("image",))
    assert spec.receptive_field == SR_BLEND_RADIUS
    assert (spec.size_multiple, spec.supports_bf16) == (sr3.spec.size_multiple, sr3.spec.supports_bf16)
    assert "steps=3" in repr(sampler) and "seed=7" in repr(sampler)
    lr = natural(8, 8)
    assert torch.equal(sampler(lr), sample_sr(sr3.eval(), lr, 3, "ddim", generator=7))
    inpainter = DiffusionSampler(models.build("diffusion_inpaint_tiny"), task="inpaint")
    spec = inpainter.spec
    assert (spec.task, spec.scale, spec.inputs, spec.receptive_field) == ("inpaint", 1, ("image", "mask"), 64)
    assert DiffusionSampler(models.build("ddpm_unconditional_tiny")).task == "inpaint"
    with pytest.raises(ValueError, match="serves 'sr', not 'inpaint'"):
        DiffusionSampler(sr3, task="inpaint")
    with pytest.raises(ValueError, match="needs a diffusion model"):
        DiffusionSampler(models.build("compact_tiny"))
    with pytest.raises(ValueError, match="inpainting needs a mask"):
        inpainter(natural(8, 8))


def test_cli_passes_steps_seed_and_scheduler(weights, tmp_path, capsys):
    from PIL import Image

    source = tmp_path / "in.png"
    lr = natural(12, 12)
    Image.fromarray((lr[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(source)
    target = tmp_path / "out.png"
    model = str(weights["sr3_x4_tiny"])
    argv = ["upscale", str(source), str(target), "--model", model, "--steps", "2", "--seed", "3"]
    assert main([*argv, "--scheduler", "dpm", "--no-progress"]) == 0
    with Image.open(target) as im:
        written = np.asarray(im)
    api._predictors.clear()
    expected = restore.upscale(str(source), model=model, steps=2, seed=3, scheduler="dpm")
    assert written.shape == (48, 48, 3) and np.array_equal(written, expected)
    plain = str(weights["compact_tiny"])
    assert main(["upscale", str(source), str(tmp_path / "x.png"), "--model", plain, "--seed", "1"]) == 2
    assert "seed set the sampling of diffusion models" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # not an option of deblur (no diffusion model serves it)
        main(["deblur", str(source), str(tmp_path / "y.png"), "--steps", "2"])


def test_the_cli_scheduler_choices_are_the_samplers():
    from restore.infer import image_commands

    assert image_commands.SCHEDULERS == SCHEDULERS


# ----------------------------------------------------------------------------- the bundled models


def test_bundled_diffusion_models_work_offline_by_name():
    """`restore.upscale(img, model="diffusion-x4", steps=..., seed=...)` and
    `restore.inpaint(img, mask, model="diffusion")` run the shipped residual models."""
    lr = natural(24, 24)
    sr = restore.upscale(lr, model="diffusion-x4", steps=3, seed=0)
    assert sr.shape == (1, 3, 96, 96)
    assert torch.equal(sr, restore.upscale(lr, model="diffusion-x4", steps=3, seed=0))
    net = hub.load_model("diffusion-x4", task="sr", scale=4)
    assert net.residual and net.spec.name == "sr3_x4_tiny"
    close(sr, sample_sr(net, lr, 3, "ddim", generator=0))
    # a residual model adds detail to the bicubic upsample: its output stays near it
    bicubic = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic").clamp(0, 1)
    assert float((sr - bicubic).abs().mean()) < 0.05

    image, mask = natural(64, 64), hole_mask(64, 64)
    filled = restore.inpaint(image * (1 - mask), mask, model="diffusion", steps=3, seed=0)
    assert torch.equal(filled * (1 - mask), image * (1 - mask))
    inpainter = hub.load_model("diffusion", task="inpaint")
    assert inpainter.residual and inpainter.cond_channels == 4
    close(filled, sample_inpaint_conditional(inpainter, image * (1 - mask), mask, 3, "ddim", generator=0))
    hole_error = float(((filled - image).abs() * mask).sum() / (3 * mask.sum()))
    assert hole_error < 0.15  # a fill, not noise: holes of a natural image within 0.15 on average
