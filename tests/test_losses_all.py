"""Properties every registry entry must have, checked over the whole registry.

For each entry: metadata is complete; a noisy pair scores worse than identity; the value at
identity is zero (or the entry's minimum); gradients are finite at zero residual; under CPU
bf16 and fp16 autocast the value is finite and close to float32 (equal for ``fp32`` entries).
Entry-specific reference values live in the per-family test files.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import losses

# Constructor arguments for the generic checks (no pretrained weights; small inputs).
CREATE_KWARGS: dict[str, dict[str, Any]] = {
    "vgg": {"weights": "random", "layer_weights": {"relu2_2": 1.0, "conv3_4": 0.5}},
    "lpips": {"weights": "random"},
    "s3im": {"seed": 0},
}
# At identity these are not 0: ratio losses in dB are very negative (their minimum is -inf).
NEGATIVE_AT_IDENTITY = {"si_sdr", "snr", "l1_snr"}
# Minimum not at 0 by definition: Charbonnier's is sqrt(eps^2) = eps.
VALUE_AT_IDENTITY = {"charbonnier": 1e-3, "edge": 1e-3}


class TinyDiscriminator(nn.Module):
    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 1, 3, padding=1)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = F.leaky_relu(self.conv1(x), 0.2)
        return [h, self.conv2(h)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[-1]


def term_specs() -> list[losses.LossSpec]:
    return [s for s in losses.specs() if s.kind != "weighting"]


def pred_target_specs() -> list[losses.LossSpec]:
    return [s for s in term_specs() if s.inputs[:2] == ("pred", "target")]


def clean_signal(spec: losses.LossSpec) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if spec.modality == "audio":
        t = torch.arange(8000) / 16000
        tone = 0.4 * torch.sin(2 * torch.pi * 330 * t) + 0.2 * torch.sin(2 * torch.pi * 1250 * t)
        return (tone * torch.linspace(0.3, 1.0, 8000)).view(1, 1, -1).repeat(2, 1, 1) + 0.01 * torch.randn(
            2, 1, 8000, generator=gen
        )
    size = 176 if spec.name == "ms_ssim" else 64  # 5-scale MS-SSIM with valid windows needs > 160
    base = torch.rand(2, 3, 16, 16, generator=gen)
    return F.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)


def noisy_version(clean: torch.Tensor) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=gen)
    return noisy.clamp(0, 1) if clean.ndim == 4 else noisy


DISCRIMINATOR_INPUTS = {
    "fake_logits",
    "real_logits",
    "fake_features",
    "real_features",
    "real",
    "discriminator",
}


def make_inputs(spec: losses.LossSpec, pred: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
    """Every input an entry asks for, built from ``pred``/``target`` (inside the caller's autocast)."""
    values: dict[str, Any] = {"pred": pred, "target": target, "fake": pred}
    names = set(spec.inputs) | set(spec.optional_inputs)
    if names & DISCRIMINATOR_INPUTS:
        torch.manual_seed(0)
        disc = TinyDiscriminator()
        real = target.detach().clone().requires_grad_()
        fake_feats, real_feats = disc.features(pred), disc.features(real)
        values.update(
            fake_logits=fake_feats[-1],
            real_logits=real_feats[-1],
            fake_features=fake_feats[:-1],
            real_features=[f.detach() for f in real_feats[:-1]],
            real=real,
            discriminator=disc,
        )
    if "model_output" in names:  # the diffusion loss: a network output and its target
        values.update(model_output=pred, model_target=target)
    if {"query", "key"} <= names:
        # contrastive features are a function of pred, so gradients reach it
        gen = torch.Generator().manual_seed(2)
        projection = torch.randn(pred.shape[1], 32, generator=gen)
        patches = pred.flatten(2)[:, :, :16].transpose(1, 2)  # (N, 16 patches, C)
        query = patches @ projection
        key = (target.flatten(2)[:, :, :16].transpose(1, 2) @ projection).detach()
        values.update(
            query=query[0] if spec.name == "infonce" else query, key=key[0] if spec.name == "infonce" else key
        )
    return values


def call(
    spec: losses.LossSpec, loss: nn.Module, values: dict[str, Any], side_inputs: bool = True
) -> torch.Tensor:
    args = [values[name] for name in spec.inputs]
    kwargs = {}
    if side_inputs and "real_logits" in spec.optional_inputs:
        kwargs["real_logits"] = values["real_logits"]
    torch.manual_seed(0)  # gradient_penalty draws its interpolation weights
    return loss(*args, **kwargs)


def create(spec: losses.LossSpec) -> nn.Module:
    return losses.create(spec.name, **CREATE_KWARGS.get(spec.name, {}))


def test_registry_has_at_least_30_entries_with_complete_metadata():
    specs = term_specs()
    assert len(specs) >= 30
    for spec in specs:
        assert spec.summary, f"{spec.name} has no docstring summary"
        assert spec.input_range, spec.name
        assert spec.inputs, spec.name
        assert spec.lower_is_better, f"{spec.name}: every registered term is a loss"
    kinds = {s.kind for s in specs}
    assert kinds >= {
        "pixel",
        "structural",
        "frequency",
        "perceptual",
        "adversarial",
        "spectral",
        "waveform",
        "contrastive",
    }


@pytest.mark.parametrize("spec", pred_target_specs(), ids=lambda s: s.name)
def test_identity_is_the_minimum_with_finite_gradient(spec):
    loss = create(spec)
    clean = clean_signal(spec)
    noisy = noisy_version(clean)
    at_noise = call(spec, loss, make_inputs(spec, noisy, clean))
    pred = clean.clone().requires_grad_()
    at_identity = call(spec, loss, make_inputs(spec, pred, clean))
    assert torch.isfinite(at_noise) and torch.isfinite(at_identity)
    assert at_identity.item() < at_noise.item(), "a noisy pair must score worse than identity"
    if spec.name in NEGATIVE_AT_IDENTITY:
        assert at_identity.item() < -60.0
    else:
        assert at_identity.item() == pytest.approx(VALUE_AT_IDENTITY.get(spec.name, 0.0), abs=1e-4)
    at_identity.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all(), (
        "gradient at zero residual must be finite"
    )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("spec", term_specs(), ids=lambda s: s.name)
def test_autocast_result_is_finite_and_close_to_float32(spec, dtype):
    clean = clean_signal(spec)
    noisy = noisy_version(clean)
    # a fresh module per call: stochastic entries (s3im) draw the same permutation
    reference = call(spec, create(spec), make_inputs(spec, noisy.clone().requires_grad_(), clean))
    pred = noisy.clone().requires_grad_()
    with torch.autocast("cpu", dtype=dtype):
        values = make_inputs(spec, pred, clean)
        value = call(spec, create(spec), values)
    assert torch.isfinite(value), f"{spec.name} is not finite under {dtype}"
    if spec.fp32 and spec.inputs[:2] == ("pred", "target"):
        # float32 inputs to an fp32 entry: autocast must change nothing
        assert value.dtype == torch.float32
        assert value.item() == pytest.approx(reference.item(), rel=1e-5, abs=1e-6)
    else:
        # the inputs (or the entry's own network) ran in half precision
        assert value.item() == pytest.approx(reference.item(), rel=5e-2, abs=2e-3)
    value.float().backward()
    leaves = [pred, values.get("real")]
    if "discriminator" in values:
        leaves += list(values["discriminator"].parameters())
    grads = [t.grad for t in leaves if t is not None and t.grad is not None]
    assert grads, f"{spec.name}: no gradient reached its inputs or the discriminator"
    assert all(torch.isfinite(g).all() for g in grads)
