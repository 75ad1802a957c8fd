"""Every registered model: spec matches the instance, output shapes, and CPU bf16 autocast training.

Per-architecture numbers (published parameter counts, key names, equality with the original code via
spandrel) live in the test_models_<architecture>.py files; this file holds the contract every entry
of the registry must meet, so a new model gets these checks by being registered.
"""

from __future__ import annotations

import pytest
import torch

import restore.models as models


def example_inputs(model: torch.nn.Module, batch: int = 1) -> tuple[torch.Tensor, ...]:
    # Inpainting nets downsample 8x and use batch norm: give the statistics room (>= 8x8 at the bottleneck).
    return models.example_inputs(model, batch=batch, size=64 if model.spec.task == "inpaint" else 32)


def first_tensor(out) -> torch.Tensor:
    return out[0] if isinstance(out, tuple | list) else out


@pytest.mark.parametrize("name", models.available())
def test_spec_describes_the_built_instance(name):
    model = models.build(name)
    spec = models.spec_of(model)
    assert spec.name == name and spec.task in models.TASKS
    assert spec.summary and spec.cls is type(model)
    for field in ("scale", "in_channels", "out_channels"):
        assert getattr(spec, field) == getattr(model, field), field
    assert spec.size_multiple >= 1 and spec.receptive_field >= 1
    assert spec.config == model.config == models.get_spec(name).config
    assert spec.inputs[0] in ("image", "audio")
    if spec.task == "audio":
        assert spec.inputs == ("audio",) and spec.in_channels == spec.out_channels == 1
    assert name in models.describe(name)


@pytest.mark.parametrize("name", models.available())
def test_output_shape_follows_the_spec(name):
    model = models.build(name).eval()
    inputs = example_inputs(model, batch=2)
    with torch.no_grad():
        out = first_tensor(model(*inputs))
    n = inputs[0].shape[0]
    if model.spec.task == "discriminator":
        assert out.shape[0] == n and out.shape[1] == 1
    elif model.spec.inputs[0] == "audio":  # waveform in, waveform of the same length out
        assert out.shape == (n, model.spec.out_channels, inputs[0].shape[-1])
    else:
        h, w = inputs[0].shape[-2:]
        assert out.shape == (n, model.spec.out_channels, h * model.spec.scale, w * model.spec.scale)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", models.available())
def test_cpu_bf16_autocast_training_step_is_finite_and_close_to_float32(name):
    torch.manual_seed(0)
    model = models.build(name).train()
    if not model.spec.supports_bf16:
        pytest.skip(f"{name} does not declare bf16 support")
    if not any(p.requires_grad for p in model.parameters()):
        pytest.skip(f"{name} is weight-free: nothing to train (its autocast behaviour is tested in its file)")
    inputs = example_inputs(model, batch=2)

    def step(autocast: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # same dropout / drop-path draws in both runs
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = first_tensor(model(*inputs))
        out.float().square().mean().backward()
        grads = [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]
        return out.detach().float(), grads

    state = {k: v.clone() for k, v in model.state_dict().items()}
    ref, ref_grads = step(autocast=False)
    model.load_state_dict(state)  # batch-norm statistics and spectral-norm vectors as before
    out, grads = step(autocast=True)
    assert torch.isfinite(out).all() and all(torch.isfinite(g).all() for g in grads)
    assert len(grads) == len(ref_grads) > 0
    rel = (out - ref).norm() / ref.norm().clamp_min(1e-12)
    assert rel < 0.05, f"{name}: bf16 output differs from float32 by {rel:.3%}"
    g, g_ref = torch.cat([x.flatten() for x in grads]), torch.cat([x.flatten() for x in ref_grads])
    cosine = torch.nn.functional.cosine_similarity(g, g_ref, dim=0)
    assert cosine > 0.95, f"{name}: bf16 gradient direction cosine {cosine:.4f}"


def test_registry_lists_every_architecture_the_issue_names():
    names = set(models.available())
    assert {"srresnet", "rrdbnet", "edsr", "edsr_full", "swinir_light", "lama", "nafnet"} <= names
    assert {"vgg_discriminator", "unet_discriminator", "patchgan"} <= set(models.available("discriminator"))
    assert set(models.available("inpaint")) >= {"lama"} and set(models.available("deblur")) >= {"nafnet"}
    with pytest.raises(ValueError, match="task must be one of"):
        models.available("super-resolution")


def test_example_inputs_follow_the_spec():
    (image,) = models.example_inputs(models.build("vgg_discriminator"), batch=2, size=40)
    assert image.shape == (2, 3, 128, 128)  # rounded up to the fixed input size
    image, mask = models.example_inputs(models.build("lama_small"), size=60)
    assert image.shape == (1, 3, 64, 64) and mask.shape == (1, 1, 64, 64)
    assert float(mask.mean()) == 0.25 and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    image, condition = models.example_inputs(models.build("patchgan_conditional"), size=32)
    assert condition.shape == image.shape
    edsr = models.build("edsr_tiny")
    assert torch.equal(models.example_inputs(edsr)[0], models.example_inputs(edsr)[0])  # seeded
