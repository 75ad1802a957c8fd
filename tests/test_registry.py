"""The registry and LossSet: config forms, build-time errors, the fp32 policy, weighting strategies,
and the pixel losses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import losses
from losses import registry
from losses.pixel import pseudo_huber_loss


@pytest.fixture
def pair():
    gen = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 16, 16, generator=gen), torch.rand(2, 3, 16, 16, generator=gen)


def test_build_dict_list_yaml_text_and_file_agree(pair, tmp_path):
    pred, target = pair
    yaml_text = "l1: 1.0\nssim:\n  weight: 0.2\n  window_size: 7\n"
    path = tmp_path / "loss.yaml"
    path.write_text(yaml_text)
    configs = [
        {"l1": 1.0, "ssim": {"weight": 0.2, "window_size": 7}},
        [{"name": "l1"}, {"name": "ssim", "weight": 0.2, "window_size": 7}],
        yaml_text,
        str(path),
        path,
    ]
    totals = []
    for config in configs:
        loss_set = losses.build(config)
        total, terms = loss_set(pred, target)
        assert set(terms) == {"l1", "ssim"}
        assert float(total) == pytest.approx(float(terms["l1"] + 0.2 * terms["ssim"]), rel=1e-6)
        totals.append(float(total))
    assert max(totals) - min(totals) < 1e-7
    expected_l1 = (pred - target).abs().mean()
    assert float(terms["l1"]) == pytest.approx(float(expected_l1), rel=1e-6)


def test_terms_are_detached_and_total_backpropagates(pair):
    pred, target = pair
    pred = pred.clone().requires_grad_()
    total, terms = losses.build({"mse": 2.0})(pred, target)
    assert not terms["mse"].requires_grad
    total.backward()
    assert torch.allclose(pred.grad, 2.0 * 2 * (pred - target).detach() / pred.numel())


def test_same_loss_twice_needs_labels(pair):
    pred, target = pair
    with pytest.raises(ValueError, match="appear twice"):
        losses.build([{"name": "l1"}, {"name": "l1", "weight": 2.0}])
    loss_set = losses.build([{"name": "l1"}, {"name": "l1", "weight": 2.0, "label": "l1_again"}])
    total, terms = loss_set(pred, target)
    assert float(total) == pytest.approx(3 * float(terms["l1"]), rel=1e-6)


def test_unknown_name_fails_at_build_with_did_you_mean():
    with pytest.raises(KeyError, match="Did you mean 'ssim'"):
        losses.build({"ssmi": 1.0})
    with pytest.raises(KeyError, match="Did you mean 'charbonnier'"):
        losses.create("charbonier")


def test_bad_argument_fails_at_build_with_did_you_mean():
    with pytest.raises(TypeError, match="has no argument 'windowsize'. Did you mean 'window_size'"):
        losses.build({"ssim": {"windowsize": 7}})
    with pytest.raises(ValueError, match="loss 'charbonnier': eps must be positive"):
        losses.build({"charbonnier": {"eps": -1.0}})
    with pytest.raises(ValueError, match="window size must be odd"):
        losses.build({"ssim": {"window_size": 8}})
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.build({"l1": {"reduction": "avg"}})
    with pytest.raises(TypeError, match="weight must be a number"):
        losses.build({"l1": {"weight": "heavy"}})


def test_weighting_entry_is_not_a_term():
    with pytest.raises(ValueError, match="weighting strategy"):
        losses.build({"balancer": 1.0})
    with pytest.raises(ValueError, match="not a weighting strategy"):
        losses.build({"l1": 1.0}, weighting="mse")


def test_missing_input_names_the_term_and_the_input(pair):
    pred, target = pair
    loss_set = losses.build({"l1": 1.0})
    with pytest.raises(ValueError, match="loss term 'l1' \\(l1\\) needs input 'target'"):
        loss_set(pred)


def test_inputs_can_be_renamed_per_term(pair):
    pred, target = pair
    loss_set = losses.build({"l1": {"inputs": {"target": "degraded"}}})
    total, _ = loss_set(pred, degraded=target)
    assert float(total) == pytest.approx(float((pred - target).abs().mean()), rel=1e-6)


def test_available_filters_and_describe():
    names = losses.available()
    assert names == sorted(names)
    image = losses.available(modality="image")
    assert "ssim" in image and "l1" in image
    for name in image:
        assert losses.get(name).modality in ("image", "any")
    assert losses.available(kind="weighting") == ["balancer", "fixed", "uncertainty"]
    text = losses.describe("charbonnier")
    assert "fp32: True" in text and "eps = 0.001" in text and "Charbonnier" in text
    with pytest.raises(ValueError, match="modality"):
        losses.available(modality="video")


class _Probe(nn.Module):
    """Records the dtype and autocast state it sees."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.seen = (pred.dtype, torch.is_autocast_enabled("cpu"))
        return (pred @ target.transpose(-1, -2)).mean()


@pytest.mark.parametrize("fp32", [True, False])
def test_registry_enforces_fp32_policy_under_autocast(fp32):
    name = f"_probe_fp32_{fp32}"
    losses.register(name, kind="pixel", fp32=fp32)(type(name, (_Probe,), {}))
    try:
        probe = losses.create(name)
        x = torch.rand(4, 4, dtype=torch.bfloat16, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = probe(x, torch.rand(4, 4))
        out.backward()
        if fp32:
            assert probe.loss.seen == (torch.float32, False)
            assert out.dtype == torch.float32
        else:
            assert probe.loss.seen == (torch.bfloat16, True)
            assert out.dtype == torch.bfloat16
        assert x.grad is not None and x.grad.dtype == torch.bfloat16
    finally:
        registry._REGISTRY.pop(name)


def test_register_rejects_bad_metadata_and_duplicates():
    with pytest.raises(ValueError, match="modality"):
        losses.register("x", kind="pixel", modality="video")
    with pytest.raises(ValueError, match="kind"):
        losses.register("x", kind="colour")
    with pytest.raises(ValueError, match="already registered"):
        losses.register("l1", kind="pixel")(type("Other", (nn.Module,), {}))


def test_weighted_pixel_losses_average_over_the_mask(pair):
    pred, target = pair
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, :8] = 1.0
    for name, fn in {"l1": lambda d: d.abs(), "mse": lambda d: d.square()}.items():
        value = losses.create(name)(pred, target, weight=mask)
        expected = fn(pred - target)[:, :, :8].mean()
        assert float(value) == pytest.approx(float(expected), rel=1e-6)
    total, _ = losses.build({"charbonnier": 1.0})(pred, target, weight=mask)
    expected = torch.sqrt((pred - target).square() + 1e-6)[:, :, :8].mean()
    assert float(total) == pytest.approx(float(expected), rel=1e-6)


def test_charbonnier_tiny_eps_is_finite_in_half_precision():
    x = torch.rand(1, 3, 8, 8).half().requires_grad_()
    # computed naively in float16, eps^2 underflows and the gradient at zero residual is NaN
    naive = torch.sqrt((x - x.detach()).square() + torch.tensor(1e-12, dtype=torch.float16) ** 2).mean()
    naive.backward()
    assert torch.isnan(x.grad).any()
    x.grad = None
    loss = losses.create("charbonnier", eps=1e-12)(x, x.detach())
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(x.grad).all()


def test_pseudo_huber_limits_and_schedule():
    d = torch.tensor([1e-3, 10.0])
    values = pseudo_huber_loss(d, torch.zeros(2), c=0.1, reduction="none")
    assert float(values[0]) == pytest.approx(0.5 * 1e-6 / 0.1, rel=1e-3)  # quadratic near zero
    assert float(values[1]) == pytest.approx(10.0 - 0.1, rel=1e-3)  # linear far away
    loss = losses.create("pseudo_huber", c=0.1, c_end=0.01, schedule="exponential").loss
    assert loss.c_at(0.0) == pytest.approx(0.1) and loss.c_at(1.0) == pytest.approx(0.01)
    assert loss.c_at(0.5) == pytest.approx(0.1 * 0.1**0.5)
    linear = losses.create("pseudo_huber", c=0.1, c_end=0.02, schedule="linear").loss
    assert linear.c_at(0.25) == pytest.approx(0.08)
    cosine = losses.create("pseudo_huber", c=0.1, c_end=0.02, schedule="cosine").loss
    assert cosine.c_at(0.5) == pytest.approx(0.06)
    # per-sample progress (diffusion timesteps): each sample gets its own c
    pred, target = torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    per_sample = losses.create("pseudo_huber", c=0.1, c_end=0.02, schedule="linear", reduction="none")(
        pred, target, progress=torch.tensor([0.0, 1.0])
    )
    expected = torch.tensor([(1 + 0.01) ** 0.5 - 0.1, (1 + 0.0004) ** 0.5 - 0.02])
    assert torch.allclose(per_sample[:, 0, 0, 0], expected, atol=1e-6)
    with pytest.raises(ValueError, match="needs c_end"):
        losses.create("pseudo_huber", schedule="linear")


def test_balancer_gradient_is_weight_fraction_of_normalised_gradients(pair):
    pred, target = pair
    pred = pred.clone().requires_grad_()
    config = {
        "terms": {"l1": 3.0, "mse": 1.0},
        "weighting": {"name": "balancer", "per_batch_item": False, "total_norm": 2.0},
    }
    total, terms = losses.build(config)(pred, target)
    total.backward()
    g_l1 = torch.sign(pred - target).detach() / pred.numel()
    g_mse = 2 * (pred - target).detach() / pred.numel()
    expected = 2.0 * (0.75 * g_l1 / g_l1.norm() + 0.25 * g_mse / g_mse.norm())
    assert torch.allclose(pred.grad, expected, rtol=1e-4, atol=1e-9)


def test_balancer_is_invariant_to_loss_scale_and_uses_ema(pair):
    pred, target = pair
    grads = []
    # reduction="sum" multiplies the l1 term by pred.numel(): the balanced gradient must not change
    for l1_config in ({"weight": 1.0}, {"weight": 1.0, "reduction": "sum"}):
        x = pred.clone().requires_grad_()
        balancer = losses.build({"terms": {"l1": l1_config, "mse": 1.0}, "weighting": "balancer"})
        total, _ = balancer(x, target)
        total.backward()
        grads.append(x.grad.clone())
    assert torch.allclose(grads[0], grads[1], rtol=1e-5)
    fixed = losses.build({"l1": {"reduction": "sum"}, "mse": 1.0})
    x = pred.clone().requires_grad_()
    fixed(x, target)[0].backward()
    assert not torch.allclose(x.grad, grads[0], rtol=1e-2)

    balancer = losses.build({"terms": {"mse": 1.0}, "weighting": {"name": "balancer", "ema_decay": 0.5}})
    x = pred.clone().requires_grad_()
    balancer(x, target)
    first = balancer.weighting.last_norms["mse"]
    assert first == pytest.approx(
        float((2 * (x - target).detach() / x.numel()).flatten(1).norm(dim=1).mean())
    )
    balancer(x, torch.zeros_like(target))
    second_raw = float((2 * x.detach() / x.numel()).flatten(1).norm(dim=1).mean())
    # bias-corrected EMA with decay 0.5 of (first, second_raw): (0.5 * first + second_raw) / 1.5
    assert balancer.weighting.last_norms["mse"] == pytest.approx((0.5 * first + second_raw) / 1.5, rel=1e-5)


def test_uncertainty_weights_formula_and_learnable(pair):
    pred, target = pair
    loss_set = losses.build({"terms": {"l1": 1.0, "mse": 0.5}, "weighting": {"name": "uncertainty"}})
    params = list(loss_set.parameters())
    assert len(params) == 1 and params[0].shape == (2,)
    with torch.no_grad():
        params[0].copy_(torch.tensor([0.5, -1.0]))
    total, terms = loss_set(pred, target)
    expected = (
        torch.exp(torch.tensor(-0.5)) * terms["l1"]
        + 0.5
        + torch.exp(torch.tensor(1.0)) * 0.5 * terms["mse"]
        - 1.0
    )
    assert float(total.detach()) == pytest.approx(float(expected), rel=1e-6)
    total.backward()
    # d/ds (exp(-s) L + s) = 1 - exp(-s) L
    assert float(params[0].grad[0]) == pytest.approx(
        float(1 - torch.exp(torch.tensor(-0.5)) * terms["l1"]), rel=1e-5
    )
