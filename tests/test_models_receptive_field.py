"""Declared receptive fields against the gradient reach of real models (exact tiling relies on them)."""

from __future__ import annotations

import pytest
import torch

import restore.models as models
from restore.models.registry import available, get_spec

# Models whose receptive field is a true bound: plain stacks of local operators.
EXACT = {"compact", "compact_general", "compact_tiny", "edsr", "edsr_full", "edsr_tiny", "srresnet"}


def gradient_reach(model: torch.nn.Module, scale: int, side: int) -> int:
    """Largest |offset| (input pixels) from the centre pixel of an input pixel whose value changes
    any output pixel of the centre pixel's s x s output block (float64, so no gradient underflows)."""
    x = torch.rand(1, 3, side, side, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x.requires_grad_(True)
    c = side // 2
    y = model.double()(x)
    (grad,) = torch.autograd.grad(y[0, :, c * scale : (c + 1) * scale, c * scale : (c + 1) * scale].sum(), x)
    rows, cols = grad.abs().sum(1)[0].nonzero().unbind(1)
    return int(max((rows - c).abs().max(), (cols - c).abs().max()))


def test_exact_tiling_is_declared_for_the_plain_convolution_stacks_only():
    assert {name for name in available() if get_spec(name).exact_tiling} == EXACT


@pytest.mark.parametrize("name", sorted(EXACT))
def test_registered_receptive_field_is_the_instance_formula(name):
    spec = get_spec(name)
    with torch.device("meta"):
        model = spec.cls(**spec.config)
    assert model.receptive_field == spec.receptive_field


CASES = [
    ("compact_tiny", {}, 0),
    ("compact", {"num_feat": 8, "num_conv": 5}, 0),
    ("compact_tiny", {"scale": 2}, 0),
    ("edsr_tiny", {}, 0),
    ("edsr_tiny", {"num_feat": 8, "num_block": 2, "scale": 2}, 1),  # 2 * 2 + 2.5 -> 7 of 8
    ("edsr_tiny", {"num_feat": 8, "num_block": 2, "scale": 3}, 1),
    ("edsr_tiny", {"num_feat": 8, "num_block": 2, "scale": 8}, 0),
    ("srresnet", {"num_feat": 8, "num_block": 2}, 1),
    ("srresnet", {"num_feat": 8, "num_block": 2, "scale": 2}, 1),
]


@pytest.mark.parametrize(("name", "overrides", "slack"), CASES)
def test_receptive_field_bounds_the_gradient_reach(name, overrides, slack):
    torch.manual_seed(0)
    model = models.build(name, **overrides).eval()
    spec = model.spec
    reach = gradient_reach(model, spec.scale, 2 * spec.receptive_field + 16)
    # A true bound (tiles overlapping by twice it are exact) and tight up to the rounding slack.
    assert spec.receptive_field - slack <= reach <= spec.receptive_field, (reach, spec.receptive_field)
