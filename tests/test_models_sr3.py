"""SR3UNet: the registered diffusion UNets against a bare diffusers UNet2DModel, wrapping, precision."""

from __future__ import annotations

import pytest
import torch

import restore.models as models
from restore.diffusion import DiffusionObjective
from restore.models.sr3 import SR3UNet, inpaint_condition, sr_condition

pytestmark = pytest.mark.usefixtures("one_thread")

# Tiny overrides for the behaviour tests (41k parameters).
TINY = {"block_out_channels": (8, 16), "norm_num_groups": 4, "attention": False}


def reference_unet(in_channels: int, channels: tuple[int, ...], layers: int, groups: int, attention: bool):
    """The same network made with diffusers' own constructor (block names as diffusers documents)."""
    from diffusers import UNet2DModel

    n = len(channels)
    down = ("DownBlock2D",) * (n - 1) + ("AttnDownBlock2D" if attention else "DownBlock2D",)
    up = ("AttnUpBlock2D" if attention else "UpBlock2D",) + ("UpBlock2D",) * (n - 1)
    return UNet2DModel(
        in_channels=in_channels,
        out_channels=3,
        block_out_channels=channels,
        layers_per_block=layers,
        down_block_types=down,
        up_block_types=up,
        norm_num_groups=groups,
        add_attention=attention,
    )


@pytest.mark.parametrize(
    ("name", "cond", "params"),
    [
        ("sr3_x4_tiny", 3, 281_187),
        ("sr3_x4", 3, 3_941_411),
        ("diffusion_inpaint_tiny", 4, 281_331),
        ("ddpm_unconditional_tiny", 0, 280_755),
    ],
)
def test_registered_unets_are_diffusers_unets_with_the_condition_channels(name, cond, params):
    model = models.build(name)
    cfg = model.config
    channels, layers = tuple(cfg["block_out_channels"]), cfg["layers_per_block"]
    ref = reference_unet(3 + cond, channels, layers, cfg["norm_num_groups"], cfg["attention"])
    state = model.state_dict()
    assert all(k.startswith("unet.") for k in state)
    assert sorted(k[len("unet.") :] for k in state) == sorted(ref.state_dict())
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters()) == params
    spec = model.spec
    assert (spec.task, spec.in_channels, spec.out_channels, model.cond_channels) == ("diffusion", 3, 3, cond)
    levels = len(cfg["block_out_channels"])
    assert spec.size_multiple * spec.scale % 2 ** (levels - 1) == 0  # output size fits the UNet
    registered = models.get_spec(name)  # what tables show, without building
    assert registered.size_multiple == spec.size_multiple
    assert registered.receptive_field == spec.receptive_field
    assert spec.inputs == (("image", "mask") if cond == 4 else ("image",))


def test_denoiser_output_equals_the_diffusers_unet_on_the_concatenated_input():
    torch.manual_seed(0)
    model = models.build("sr3_x4_tiny", **TINY).eval()
    ref = reference_unet(6, (8, 16), 1, 4, False).eval()
    ref.load_state_dict({k[len("unet.") :]: v for k, v in model.state_dict().items()})
    x_t, cond = torch.randn(2, 3, 16, 16), torch.rand(2, 3, 16, 16) * 2 - 1
    t = torch.tensor([10, 900])
    with torch.no_grad():
        out = model(x_t, timesteps=t, condition=cond)
        expected = ref(torch.cat([x_t, cond], dim=1), t).sample
    assert out.shape == (2, 3, 16, 16)
    assert torch.equal(out, expected)


def test_conditions_map_inputs_to_the_diffusion_range():
    lr = torch.rand(2, 3, 4, 5)
    cond = sr_condition(lr, 4)
    bicubic = torch.nn.functional.interpolate(lr * 2 - 1, scale_factor=4, mode="bicubic", align_corners=False)
    assert cond.shape == (2, 3, 16, 20)
    torch.testing.assert_close(cond, bicubic.clamp(-1, 1))
    image, mask = torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 8, 8)
    mask[..., 2:5, 3:6] = 1
    c = inpaint_condition(image, mask)
    assert c.shape == (1, 4, 8, 8) and torch.equal(c[:, 3:], mask)
    assert torch.equal(c[:, :3][mask.expand(1, 3, 8, 8) == 1], torch.zeros(27))  # holes are 0 (mid-grey)
    torch.testing.assert_close(c[:, :3] * (1 - mask), (image * 2 - 1) * (1 - mask))
    with pytest.raises(ValueError, match="mask must be"):
        inpaint_condition(image, torch.zeros(1, 1, 4, 4))


def test_call_without_timesteps_is_one_x0_estimate_at_the_middle_timestep():
    torch.manual_seed(0)
    model = models.build("sr3_x4_tiny", prediction_type="v_prediction", **TINY).eval()
    objective = DiffusionObjective.from_model(model)
    lr = torch.rand(2, 3, 4, 4)
    cond = model.condition(lr)
    t = torch.full((2,), 500)
    x_t = objective.alpha(t).sqrt().view(-1, 1, 1, 1) * cond
    with torch.no_grad():
        out = model(lr)
        expected = (objective.predicted_x0(model(x_t, timesteps=t, condition=cond), x_t, t) + 1) / 2
    assert out.shape == (2, 3, 16, 16)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_arguments_are_checked_with_clear_messages():
    model = models.build("sr3_x4_tiny", **TINY)
    with pytest.raises(TypeError, match="timesteps=t"):
        model(torch.randn(1, 3, 16, 16), torch.tensor([3]))  # timesteps passed positionally
    with pytest.raises(ValueError, match="condition must be"):
        model(torch.randn(1, 3, 16, 16), timesteps=torch.tensor([3]), condition=torch.randn(1, 4, 16, 16))
    with pytest.raises(ValueError, match="needs a condition"):
        model(torch.randn(1, 3, 16, 16), timesteps=torch.tensor([3]))
    with pytest.raises(ValueError, match="prediction_type"):
        models.build("sr3_x4_tiny", prediction_type="eps")
    with pytest.raises(ValueError, match="beta_schedule"):
        models.build("sr3_x4_tiny", beta_schedule="cosine")
    with pytest.raises(ValueError, match="norm_num_groups"):
        models.build("sr3_x4_tiny", block_out_channels=(12, 16), norm_num_groups=8)
    with pytest.raises(ValueError, match="needs a mask"):
        models.build("diffusion_inpaint_tiny", **TINY)(torch.rand(1, 3, 16, 16))


def test_from_diffusers_wraps_an_external_unet_and_round_trips_through_save_and_load(tmp_path):
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    # Attention at the first level only: not one of our block layouts, so unet_config must carry it.
    unet = UNet2DModel(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D"),
        norm_num_groups=4,
        attention_head_dim=8,
    ).eval()
    model = SR3UNet.from_diffusers(unet, prediction_type="v_prediction").eval()
    assert model.unet is unet and model.cond_channels == 0
    assert model.spec.task == "diffusion" and model.config["prediction_type"] == "v_prediction"
    assert set(model.state_dict()) == {f"unet.{k}" for k in unet.state_dict()}
    x, t = torch.randn(1, 3, 16, 16), torch.tensor([123])
    with torch.no_grad():
        expected = unet(x, t).sample
        assert torch.equal(model(x, timesteps=t), expected)
    path = models.save(model, tmp_path / "ddpm.safetensors")
    loaded = models.load(path).eval()
    assert isinstance(loaded, SR3UNet) and loaded.prediction_type == "v_prediction"
    assert list(loaded.unet.config.down_block_types) == ["AttnDownBlock2D", "DownBlock2D"]
    with torch.no_grad():
        assert torch.equal(loaded(x, timesteps=t), expected)
    with pytest.raises(TypeError, match="UNet2DModel"):
        SR3UNet.from_diffusers(torch.nn.Conv2d(3, 3, 1))


def test_bf16_autocast_denoising_step_is_finite_and_close_to_float32():
    torch.manual_seed(0)
    model = models.build("sr3_x4_tiny").train()  # the registered tiny config, with attention
    objective = DiffusionObjective.from_model(model)
    x0 = torch.rand(2, 3, 32, 32) * 2 - 1
    draw = objective.prepare(x0, torch.Generator().manual_seed(0))
    cond = torch.rand(2, 3, 32, 32) * 2 - 1

    def step(autocast: bool):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(draw["x_t"], timesteps=draw["timesteps"], condition=cond)
        loss = (out.float() - draw["target"]).square().mean()
        loss.backward()
        return out.detach().float(), torch.cat([p.grad.flatten() for p in model.parameters()])

    ref, g_ref = step(False)
    out, g = step(True)
    assert torch.isfinite(out).all() and torch.isfinite(g).all()
    rel = float((out - ref).norm() / ref.norm())
    cosine = float(torch.nn.functional.cosine_similarity(g, g_ref, dim=0))
    assert rel < 0.05, rel
    assert cosine > 0.95, cosine
