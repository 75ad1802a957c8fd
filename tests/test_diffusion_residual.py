"""Residual diffusion (SRDiff-style): the process diffuses ``scale * (image - base)`` where the base
is the bicubic upsample (SR) or the push-pull fill (inpainting); samplers must not clip it."""

from __future__ import annotations

import pytest
import torch

import restore.models as models
from restore.diffusion import DiffusionObjective, sample_inpaint_conditional, sample_sr
from restore.models.pushpull import push_pull_fill
from restore.models.sr3 import SR3UNet, sr_condition
from restore.train import TaskConfig
from restore.train.tasks import DiffusionTask, build_task

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"block_out_channels": (8, 16), "norm_num_groups": 4, "attention": False, "layers_per_block": 1}


def natural(natural_pair, size: int = 32) -> torch.Tensor:
    clean, _ = natural_pair
    first = clean[..., 64 : 64 + size, 96 : 96 + size]
    return torch.cat([first, clean[..., 160 : 160 + size, 32 : 32 + size]])


def hole_mask(n: int, size: int) -> torch.Tensor:
    mask = torch.zeros(n, 1, size, size)
    mask[..., size // 4 : 3 * size // 4, size // 4 : size // 2] = 1.0
    return mask


class ResidualOracle(SR3UNet):
    """A denoiser that knows the clean diffused variable ``target`` (already encoded)."""

    target: torch.Tensor | None = None

    def denoise(self, x_t, timesteps, condition=None):
        a = DiffusionObjective.from_model(self).alpha(timesteps).view(-1, 1, 1, 1)
        eps = (x_t - a.sqrt() * self.target) / (1 - a).sqrt()
        if self.prediction_type == "epsilon":
            return eps
        if self.prediction_type == "v_prediction":
            return a.sqrt() * eps - (1 - a).sqrt() * self.target
        return self.target.expand_as(x_t)


def test_base_encode_decode_round_trip(natural_pair):
    hr = natural(natural_pair)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    model = models.build("sr3_x4_tiny", **TINY, residual=True, residual_scale=4.0)
    condition = model.condition(lr)
    base = model.base(condition)
    torch.testing.assert_close(base, sr_condition(lr, 4))
    x0 = model.encode(hr * 2 - 1, base)
    torch.testing.assert_close(x0, 4.0 * (hr * 2 - 1 - sr_condition(lr, 4)))
    torch.testing.assert_close(model.decode(x0, base), hr * 2 - 1, rtol=0, atol=1e-6)
    plain = models.build("sr3_x4_tiny", **TINY)
    assert plain.base(plain.condition(lr)) is None and torch.equal(plain.encode(hr, None), hr)


@pytest.mark.parametrize("scheduler", ["ddim", "dpm"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_sr_samplers_return_base_plus_residual_unclipped(natural_pair, scheduler, prediction_type):
    hr = natural(natural_pair)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    model = ResidualOracle(
        **TINY, cond_channels=3, scale=4, residual=True, residual_scale=8.0, prediction_type=prediction_type
    )
    model.target = model.encode(hr * 2 - 1, sr_condition(lr, 4))
    assert float(model.target.abs().max()) > 1.5  # clipping x0 to [-1, 1] would show
    out = sample_sr(model, lr, steps=3, scheduler=scheduler, generator=0)
    torch.testing.assert_close(out, hr, rtol=0, atol=2e-4)


def test_residual_inpainting_is_conditioned_on_the_fill_and_returns_it_plus_the_residual(natural_pair):
    hr = natural(natural_pair)
    mask = hole_mask(2, 32)
    model = ResidualOracle(**TINY, cond_channels=4, scale=1, residual=True, prediction_type="v_prediction")
    condition = model.condition(hr * (1 - mask), mask)
    fill = push_pull_fill(hr * (1 - mask), mask)
    torch.testing.assert_close(condition, torch.cat([fill * 2 - 1, mask], dim=1))
    model.target = model.encode(hr * 2 - 1, fill * 2 - 1)
    assert float(model.target[mask.expand_as(hr) == 0].abs().max()) == 0  # known pixels: no residual
    out = sample_inpaint_conditional(model, hr * (1 - mask), mask, steps=3, scheduler="dpm", generator=0)
    torch.testing.assert_close(out, hr, rtol=0, atol=2e-4)
    # the garbage under the holes does not reach the result
    noisy = hr * (1 - mask) + mask * torch.rand_like(hr)
    again = sample_inpaint_conditional(model, noisy, mask, steps=3, scheduler="dpm", generator=0)
    torch.testing.assert_close(again, out, rtol=0, atol=1e-6)


def test_training_step_diffuses_the_residual(natural_pair):
    hr = natural(natural_pair)
    task = build_task(TaskConfig(name="diffusion_sr", scale=4, degradation="bicubic"))
    assert isinstance(task, DiffusionTask)
    pair = task.make_pair({"target": hr, "seed": torch.tensor([0, 1])}, torch.device("cpu"))
    torch.manual_seed(0)
    model = models.build(
        "sr3_x4_tiny", **TINY, residual=True, residual_scale=4.0, prediction_type="v_prediction"
    ).train()
    objective = DiffusionObjective.from_model(model)
    image = task.forward(model, pair)
    t = pair["timesteps"]
    base = sr_condition(pair["input"], 4)
    x0 = 4.0 * (pair["target"] * 2 - 1 - base)
    torch.testing.assert_close(pair["model_target"], objective.target(x0, pair["noise"], t))
    x_t = objective.noisy(x0, pair["noise"], t)
    predicted = base + objective.predicted_x0(pair["model_output"], x_t, t) / 4.0
    torch.testing.assert_close(image, ((predicted + 1) / 2).clamp(0, 1))
    image.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_residual_is_only_for_conditional_models_and_round_trips(tmp_path):
    with pytest.raises(ValueError, match="residual diffusion needs a conditional model"):
        models.build("ddpm_unconditional_tiny", **TINY, residual=True)
    with pytest.raises(ValueError, match="residual_scale must be a positive number"):
        models.build("sr3_x4_tiny", **TINY, residual=True, residual_scale=0)
    model = models.build("sr3_x4_tiny", **TINY, residual=True, residual_scale=4.0)
    path = tmp_path / "residual.safetensors"
    models.save(model, path)
    loaded = models.load(path)
    assert loaded.residual and loaded.residual_scale == 4.0
    lr = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(
        sample_sr(loaded.eval(), lr, steps=2, generator=3), sample_sr(model.eval(), lr, steps=2, generator=3)
    )
