"""restore.diffusion: DDPM objective against diffusers and the formulas, losses, samplers with an oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import losses
import restore.models as models
from losses.pixel import pseudo_huber_loss
from restore.diffusion import (
    DiffusionObjective,
    denoising_loss,
    make_scheduler,
    min_snr_weights,
    p2_weights,
    repaint,
    sample_inpaint_conditional,
    sample_sr,
    scheduled_huber_c,
    scheduled_pseudo_huber,
    x0_loss,
)
from restore.diffusion.objective import x0_from_output
from restore.models.sr3 import SR3UNet

pytestmark = pytest.mark.usefixtures("one_thread")

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
TINY = {"block_out_channels": (8, 16), "norm_num_groups": 4, "attention": False}


def ddpm_alphas(schedule: str = "linear") -> torch.Tensor:
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule=schedule).alphas_cumprod.double()


def astronaut_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 16x16 crops of a natural image (HR) and their 4x4 box-downsampled LR, in [0, 1]."""
    import skimage.data

    img = torch.from_numpy(skimage.data.astronaut()[::8, ::8][:32, :32].astype(np.float32) / 255)
    img = img.permute(2, 0, 1)[None]
    hr = torch.cat([img[..., :16, :16], img[..., 16:, 16:]])
    return hr, torch.nn.functional.avg_pool2d(hr, 4)


# --- objective ------------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["linear", "squaredcos_cap_v2"])
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_predicted_x0_and_eps_invert_the_forward_process(prediction_type, schedule):
    objective = DiffusionObjective(beta_schedule=schedule, prediction_type=prediction_type)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(5, 3, 8, 8, generator=gen) * 2 - 1
    noise = torch.randn(5, 3, 8, 8, generator=gen)
    t = torch.tensor([0, 1, 250, 700, 999])
    x_t = objective.noisy(x0, noise, t)
    target = objective.target(x0, noise, t)
    x0_err = (objective.predicted_x0(target, x_t, t) - x0).abs().flatten(1).amax(1)
    eps_err = (objective.predicted_eps(target, x_t, t) - noise).abs().flatten(1).amax(1)
    # Float32 rounding of x_t is amplified by 1/sqrt(a_t) when epsilon is the output: exact to 1e-5
    # wherever sqrt(a_t) >= 0.1, and to 1e-6/sqrt(a_t) (one part in 10^6 of the x_t scale) beyond.
    tol = torch.clamp(1e-6 / objective.alpha(t).sqrt(), min=1e-5)
    assert (x0_err <= tol).all(), (x0_err, tol)
    assert (eps_err <= tol).all(), (eps_err, tol)


def test_forward_process_and_v_target_equal_diffusers():
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=1000, prediction_type="v_prediction")
    objective = DiffusionObjective(prediction_type="v_prediction")
    gen = torch.Generator().manual_seed(1)
    x0, noise = torch.rand(4, 3, 8, 8, generator=gen) * 2 - 1, torch.randn(4, 3, 8, 8, generator=gen)
    t = torch.tensor([0, 17, 500, 999])
    x_t, v = scheduler.add_noise(x0, noise, t), scheduler.get_velocity(x0, noise, t)
    torch.testing.assert_close(objective.noisy(x0, noise, t), x_t, rtol=0, atol=1e-6)
    torch.testing.assert_close(objective.target(x0, noise, t), v, rtol=0, atol=1e-6)
    a = ddpm_alphas()[t]
    torch.testing.assert_close(objective.snr(t).double(), a / (1 - a), rtol=1e-6, atol=0)
    assert torch.equal(DiffusionObjective(prediction_type="epsilon").target(x0, noise, t), noise)
    torch.testing.assert_close(DiffusionObjective(prediction_type="sample").target(x0, noise, t), x0)


def test_prepare_is_reproducible_and_consistent():
    objective = DiffusionObjective()
    x0 = torch.rand(3, 3, 8, 8) * 2 - 1
    a = objective.prepare(x0, torch.Generator().manual_seed(5))
    b = objective.prepare(x0, torch.Generator().manual_seed(5))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["timesteps"].dtype == torch.long and ((0 <= a["timesteps"]) & (a["timesteps"] < 1000)).all()
    torch.testing.assert_close(a["x_t"], objective.noisy(x0, a["noise"], a["timesteps"]))
    t = objective.sample_timesteps(20000, torch.Generator().manual_seed(0))
    assert abs(float(t.float().mean()) - 499.5) < 10 and int(t.min()) == 0 and int(t.max()) == 999


# --- weightings and losses -------------------------------------------------------------------------


@pytest.mark.parametrize(("gamma", "k"), [(1.0, 1.0), (0.5, 1.0), (1.0, 5.0)])
def test_p2_weights_follow_the_formula_and_grow_with_noise(gamma, k):
    objective = DiffusionObjective()
    a = ddpm_alphas()
    snr = a / (1 - a)
    lam = (k + snr) ** -gamma
    t = torch.tensor([0, 100, 400, 800, 999])
    w = p2_weights(t, objective, gamma=gamma, k=k)
    torch.testing.assert_close(w.double(), lam[t] / lam.mean(), rtol=1e-5, atol=0)
    all_t = p2_weights(torch.arange(1000), objective, gamma=gamma, k=k)
    assert abs(float(all_t.mean()) - 1) < 1e-5  # normalised: the loss scale of the plain loss
    assert (all_t[1:] >= all_t[:-1]).all()  # less weight on the clean, imperceptible steps
    unnormalised = p2_weights(t, objective, gamma=gamma, k=k, normalize=False)
    torch.testing.assert_close(unnormalised.double(), lam[t], rtol=1e-5, atol=0)


@pytest.mark.parametrize("weighting", ["p2", "min_snr"])
def test_weighted_losses_are_the_same_objective_for_every_prediction_type(weighting):
    """For one network output (as epsilon), the weighted eps, v and x0 losses differ by a constant."""
    gen = torch.Generator().manual_seed(2)
    x0, noise = torch.rand(6, 3, 8, 8, generator=gen) * 2 - 1, torch.randn(6, 3, 8, 8, generator=gen)
    eps_hat = noise + 0.3 * torch.randn(6, 3, 8, 8, generator=gen)
    t = torch.tensor([5, 50, 200, 450, 700, 950])
    per_type = {}
    for prediction_type in PREDICTION_TYPES:
        objective = DiffusionObjective(prediction_type=prediction_type)
        x_t = objective.noisy(x0, noise, t)
        a = objective.alpha(t).view(-1, 1, 1, 1)
        x0_hat = (x_t - (1 - a).sqrt() * eps_hat) / a.sqrt()
        v_hat = a.sqrt() * eps_hat - (1 - a).sqrt() * x0_hat
        output = {"epsilon": eps_hat, "sample": x0_hat, "v_prediction": v_hat}[prediction_type]
        target = objective.target(x0, noise, t)
        loss = denoising_loss(output, target, t, objective, weighting=weighting, reduction="none")
        per_type[prediction_type] = loss.double()
    for prediction_type in ("v_prediction", "sample"):
        ratio = per_type[prediction_type] / per_type["epsilon"]
        torch.testing.assert_close(ratio, ratio[:1].expand_as(ratio), rtol=2e-3, atol=0)


def test_min_snr_weights_follow_the_formula():
    a = ddpm_alphas()
    snr = a / (1 - a)
    t = torch.tensor([0, 30, 300, 999])
    expected = {
        "epsilon": snr.clamp(max=5) / snr,
        "v_prediction": snr.clamp(max=5) / (snr + 1),
        "sample": snr.clamp(max=5),
    }
    for prediction_type, w in expected.items():
        got = min_snr_weights(t, DiffusionObjective(prediction_type=prediction_type), gamma=5.0).double()
        torch.testing.assert_close(got, w[t], rtol=1e-5, atol=0)


def test_huber_c_schedules_match_the_scheduled_pseudo_huber_paper():
    objective = DiffusionObjective()
    a = ddpm_alphas()
    t = torch.tensor([0, 100, 500, 999])
    sigma = ((1 - a[t]) / a[t]).sqrt()
    snr_c = (1 - 0.1) / (1 + sigma) ** 2 + 0.1
    torch.testing.assert_close(scheduled_huber_c(t, objective, 0.1, "snr").double(), snr_c, rtol=1e-5, atol=0)
    expo = scheduled_huber_c(torch.tensor([0, 1000]), objective, 0.1, "exponential")
    torch.testing.assert_close(expo, torch.tensor([1.0, 0.1]))
    assert torch.equal(scheduled_huber_c(t, objective, 0.3, "constant"), torch.full((4,), 0.3))
    c = scheduled_huber_c(torch.arange(1000), objective, 0.1, "snr")
    assert float(c[0]) > 0.98 and abs(float(c[-1]) - 0.1) < 1e-3 and (c[1:] <= c[:-1]).all()
    with pytest.raises(ValueError, match="huber schedule"):
        scheduled_huber_c(t, objective, 0.1, "cosine")


def test_scheduled_pseudo_huber_is_l2_for_small_residuals_and_linear_for_large():
    objective = DiffusionObjective()
    t = torch.tensor([0, 999])
    c = scheduled_huber_c(t, objective, 0.1, "snr").view(-1, 1, 1, 1)
    target = torch.zeros(2, 3, 4, 4)
    small = torch.full_like(target, 1e-3)
    huge = torch.full_like(target, 1000.0)
    loss_small = scheduled_pseudo_huber(small, target, t, objective)
    loss_huge = scheduled_pseudo_huber(huge, target, t, objective)
    torch.testing.assert_close(loss_small, torch.full((2,), 1e-6), rtol=1e-2, atol=0)  # ~ r^2
    torch.testing.assert_close(loss_huge, (2 * c * (1000 - c)).flatten(), rtol=1e-5, atol=0)  # ~ 2c|r| - 2c^2
    # 2c times the registry's pseudo-Huber (per-sample c), averaged per sample.
    pred = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    registry = pseudo_huber_loss(pred, target, c.flatten(), reduction="none").flatten(1).mean(1)
    torch.testing.assert_close(scheduled_pseudo_huber(pred, target, t, objective), 2 * c.flatten() * registry)


def test_denoising_loss_types_and_argument_checks():
    objective = DiffusionObjective()
    gen = torch.Generator().manual_seed(3)
    pred, target = torch.randn(4, 3, 8, 8, generator=gen), torch.randn(4, 3, 8, 8, generator=gen)
    t = torch.tensor([1, 10, 100, 900])
    torch.testing.assert_close(denoising_loss(pred, target, t, objective), (pred - target).square().mean())
    torch.testing.assert_close(denoising_loss(pred, target, t, objective, "l1"), (pred - target).abs().mean())
    huber = denoising_loss(pred, target, t, objective, "huber", huber_c=0.2, huber_schedule="exponential")
    expected = scheduled_pseudo_huber(pred, target, t, objective, 0.2, "exponential").mean()
    torch.testing.assert_close(huber, expected)
    p2 = denoising_loss(pred, target, t, objective, weighting="p2", p2_gamma=0.5)
    per_sample = (pred - target).square().flatten(1).mean(1)
    torch.testing.assert_close(p2, (per_sample * p2_weights(t, objective, gamma=0.5)).mean())
    half = denoising_loss(pred.bfloat16(), target, t, objective, "huber")
    assert half.dtype == torch.float32
    with pytest.raises(ValueError, match="loss_type"):
        denoising_loss(pred, target, t, objective, "l3")
    with pytest.raises(ValueError, match="weighting"):
        denoising_loss(pred, target, t, objective, weighting="snr")
    with pytest.raises(ValueError, match="prediction_type"):
        DiffusionObjective(prediction_type="eps")


def test_x0_loss_applies_an_image_loss_set_in_the_unit_range():
    gen = torch.Generator().manual_seed(4)
    x0_pred, x0 = torch.randn(2, 3, 16, 16, generator=gen), torch.rand(2, 3, 16, 16, generator=gen) * 2 - 1
    total, terms = x0_loss(losses.build({"l1": 1.0}), x0_pred, x0)
    expected = ((x0_pred + 1) / 2 - (x0 + 1) / 2).abs().mean()
    torch.testing.assert_close(total, expected)
    torch.testing.assert_close(terms["l1"], 0.5 * (x0_pred - x0).abs().mean())
    clamped, _ = x0_loss(losses.build({"l1": 1.0}), x0_pred, x0, clamp=True)
    torch.testing.assert_close(clamped, (((x0_pred + 1) / 2).clamp(0, 1) - (x0 + 1) / 2).abs().mean())


def test_a_few_adam_steps_decrease_the_denoising_loss():
    hr, lr = astronaut_pair()
    torch.manual_seed(0)
    model = models.build("sr3_x4_tiny", **TINY)
    objective = DiffusionObjective.from_model(model)
    x0, cond = hr * 2 - 1, model.condition(lr)
    gen = torch.Generator().manual_seed(1)
    held_out = [objective.prepare(x0, gen) for _ in range(8)]  # fixed (t, noise) draws

    def evaluate() -> float:
        with torch.no_grad():
            values = []
            for d in held_out:
                out = model(d["x_t"], timesteps=d["timesteps"], condition=cond)
                values.append(denoising_loss(out, d["target"], d["timesteps"], objective))
        return float(torch.stack(values).mean())

    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    before = evaluate()
    for _ in range(30):
        draw = objective.prepare(x0.repeat(2, 1, 1, 1), gen)
        out = model(draw["x_t"], timesteps=draw["timesteps"], condition=cond.repeat(2, 1, 1, 1))
        loss = denoising_loss(out, draw["target"], draw["timesteps"], objective)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = evaluate()
    assert after < 0.7 * before, (before, after)  # measured 1.10 -> 0.47


def test_bf16_training_step_with_p2_huber_and_perceptual_x0_loss_is_finite():
    hr, lr = astronaut_pair()
    torch.manual_seed(0)
    model = models.build("sr3_x4_tiny", prediction_type="v_prediction", **TINY)
    objective = DiffusionObjective.from_model(model)
    loss_set = losses.build({"l1": 1.0, "ssim": 0.2})
    draw = objective.prepare(hr * 2 - 1, torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(draw["x_t"], timesteps=draw["timesteps"], condition=model.condition(lr))
        assert out.dtype == torch.bfloat16
        loss = denoising_loss(out, draw["target"], draw["timesteps"], objective, "huber", "p2")
        x0_hat = objective.predicted_x0(out, draw["x_t"], draw["timesteps"])
        perceptual, terms = x0_loss(loss_set, x0_hat, hr * 2 - 1)
        total = loss + 0.1 * perceptual
    total.backward()
    assert total.dtype == torch.float32 and torch.isfinite(total) and set(terms) == {"l1", "ssim"}
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# --- samplers ---------------------------------------------------------------------------------------


class Oracle(SR3UNet):
    """A denoiser that knows the clean image: x0 = ``target`` in [-1, 1] (or the SR condition)."""

    target: torch.Tensor | None = None

    def denoise(self, x_t, timesteps, condition=None):
        x0 = self.target if self.target is not None else condition[:, :3]
        objective = DiffusionObjective.from_model(self)
        a = objective.alpha(timesteps).view(-1, 1, 1, 1)
        eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        if self.prediction_type == "epsilon":
            return eps
        if self.prediction_type == "v_prediction":
            return a.sqrt() * eps - (1 - a).sqrt() * x0
        return x0.expand_as(x_t)


def oracle(cond_channels: int, prediction_type: str, scale: int = 4) -> Oracle:
    return Oracle(
        **TINY, layers_per_block=1, cond_channels=cond_channels, prediction_type=prediction_type, scale=scale
    )


@pytest.mark.parametrize("scheduler", ["ddim", "dpm"])
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_few_step_samplers_reach_the_oracle_x0(scheduler, prediction_type):
    """With a perfect denoiser that predicts the bicubic upsample, 3 steps must return it."""
    _, lr = astronaut_pair()
    model = oracle(3, prediction_type)
    out = sample_sr(model, lr, steps=3, scheduler=scheduler, generator=0)
    bicubic = (model.condition(lr) + 1) / 2
    assert out.shape == (2, 3, 16, 16)
    torch.testing.assert_close(out, bicubic, rtol=0, atol=1e-4)


@pytest.mark.parametrize("scheduler", ["ddim", "dpm"])
def test_sr_sampling_is_deterministic_for_a_seed(scheduler):
    _, lr = astronaut_pair()
    torch.manual_seed(0)
    model = models.build("sr3_x4_tiny", **TINY).eval()
    a = sample_sr(model, lr, steps=3, scheduler=scheduler, generator=7)
    b = sample_sr(model, lr, steps=3, scheduler=scheduler, generator=7)
    c = sample_sr(model, lr, steps=3, scheduler=scheduler, generator=8)
    assert a.shape == (2, 3, 16, 16) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 1e-3
    noise = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    assert torch.equal(sample_sr(model, lr, steps=3, scheduler=scheduler, noise=noise), a)  # tiling hook


def test_ddim_with_eta_and_ddpm_are_seeded_too():
    _, lr = astronaut_pair()
    torch.manual_seed(0)
    model = models.build("sr3_x4_tiny", **TINY).eval()
    for kwargs in ({"scheduler": "ddim", "eta": 1.0}, {"scheduler": "ddpm"}):
        a = sample_sr(model, lr, steps=3, generator=3, **kwargs)
        b = sample_sr(model, lr, steps=3, generator=3, **kwargs)
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="eta"):
        sample_sr(model, lr, steps=3, scheduler="dpm", eta=0.5)
    with pytest.raises(ValueError, match="scheduler must be one of"):
        sample_sr(model, lr, steps=3, scheduler="euler")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy 2 copy= inside DPM-Solver
def test_make_scheduler_keeps_the_training_schedule():
    objective = DiffusionObjective(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    for name in ("ddim", "dpm", "ddpm"):
        scheduler = make_scheduler(name, objective)
        assert scheduler.config.prediction_type == "v_prediction"
        torch.testing.assert_close(scheduler.alphas_cumprod.float(), objective.alphas_cumprod())
        scheduler.set_timesteps(4)
        assert int(scheduler.timesteps[0]) == 999  # trailing spacing starts from pure noise


def test_sr_sampling_under_bf16_autocast_is_finite_and_close():
    _, lr = astronaut_pair()
    torch.manual_seed(0)
    model = models.build("sr3_x4_tiny", **TINY).eval()
    ref = sample_sr(model, lr, steps=3, scheduler="dpm", generator=0)
    out = sample_sr(model, lr, steps=3, scheduler="dpm", generator=0, autocast_dtype=torch.bfloat16)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert float((out - ref).abs().mean()) < 0.02


def hole_mask() -> torch.Tensor:
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 4:12, 5:13] = 1
    return mask


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_repaint_fills_holes_from_the_model_and_keeps_known_pixels(prediction_type):
    """An oracle that knows image B fills B into the holes of image A; known pixels stay A exactly."""
    hr, _ = astronaut_pair()
    image, other = hr, hr.flip(-1)
    mask = hole_mask()
    model = oracle(0, prediction_type, scale=1)
    model.target = other * 2 - 1
    out = repaint(model, image, mask, steps=6, jump_length=2, jump_n_sample=2, generator=0)
    assert out.shape == image.shape
    assert torch.equal(out[mask.expand_as(out) == 0], image[mask.expand_as(out) == 0])
    torch.testing.assert_close(out * mask, other * mask, rtol=0, atol=1e-4)


def test_repaint_runs_a_bare_diffusers_unet_deterministically():
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
    ).eval()
    hr, _ = astronaut_pair()
    mask = hole_mask()
    a = repaint(unet, hr, mask, steps=4, jump_length=2, jump_n_sample=2, generator=1)
    b = repaint(unet, hr, mask, steps=4, jump_length=2, jump_n_sample=2, generator=1)
    assert torch.equal(a, b) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a * (1 - mask), hr * (1 - mask))
    assert (a - hr).abs()[mask.expand_as(a) == 1].mean() > 1e-3  # the holes were repainted
    with pytest.raises(ValueError, match="unconditional"):
        repaint(models.build("sr3_x4_tiny", **TINY), hr, mask, steps=2)


def test_mask_conditional_inpainting_uses_the_condition_and_keeps_known_pixels():
    hr, _ = astronaut_pair()
    mask = hole_mask()
    model = oracle(4, "epsilon", scale=1)
    model.target = hr.flip(-1) * 2 - 1
    out = sample_inpaint_conditional(model, hr, mask, steps=3, scheduler="ddim", generator=0)
    assert torch.equal(out * (1 - mask), hr * (1 - mask))
    torch.testing.assert_close(out * mask, hr.flip(-1) * mask, rtol=0, atol=1e-4)
    torch.manual_seed(0)
    net = models.build("diffusion_inpaint_tiny", **TINY).eval()
    a = sample_inpaint_conditional(net, hr, mask, steps=3, scheduler="dpm", generator=2)
    assert torch.equal(a, sample_inpaint_conditional(net, hr, mask, steps=3, scheduler="dpm", generator=2))
    with pytest.raises(ValueError, match="mask must be"):
        sample_inpaint_conditional(net, hr, mask[:, :, :8], steps=3)


def test_x0_from_output_matches_the_objective():
    objective = DiffusionObjective(prediction_type="v_prediction")
    t = torch.tensor([3, 600])
    out, x_t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(
        x0_from_output(out, x_t, objective.alpha(t), "v_prediction"), objective.predicted_x0(out, x_t, t)
    )
