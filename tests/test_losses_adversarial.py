"""Adversarial (GAN objectives, R1, WGAN-GP, feature matching) and contrastive (PatchNCE, InfoNCE) losses.

References: hand formulas with torch.nn.functional, BasicSR's ESRGAN / r1_penalty /
gradient_penalty_loss code and CUT's PatchNCELoss, reproduced line by line below.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import losses
from losses.adversarial import (
    feature_matching_loss,
    gan_loss,
    gradient_penalty,
    hinge_gan_loss,
    lsgan_loss,
    r1_penalty,
    ragan_loss,
    wgan_loss,
)
from losses.contrastive import infonce_loss, patchnce_loss

GAN_NAMES = ("gan", "lsgan", "hinge", "wgan", "ragan")
HALF_DTYPES = (torch.bfloat16, torch.float16)


def natural_images(size: int = 16) -> torch.Tensor:
    """Three scikit-image photos, 256x256 crops area-resized to ``size``, (3, 3, size, size) in [0,1]."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    batch = torch.stack(
        [torch.from_numpy(p[:256, :256].copy()).permute(2, 0, 1).float() / 255 for p in photos]
    )
    return F.interpolate(batch, size=(size, size), mode="area")


class TinyD(nn.Module):
    """Two-conv patch discriminator; ``scale`` multiplies the output (tiny gradients for fp16 tests)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 1, 3, padding=1)
        self.scale = scale

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = F.leaky_relu(self.conv1(x), 0.2)
        return [h, self.conv2(h) * self.scale]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[-1]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs() / b.abs().clamp_min(1e-30))


# ---------------------------------------------------------------------------------------------
# GAN objectives: hand formulas


def _bce(x, label):
    return F.binary_cross_entropy_with_logits(x, torch.full_like(x, label))


HAND = {
    ("gan", "generator"): lambda f, r: _bce(f, 1.0),
    ("gan", "discriminator"): lambda f, r: _bce(r, 1.0) + _bce(f, 0.0),
    ("lsgan", "generator"): lambda f, r: F.mse_loss(f, torch.ones_like(f)),
    ("lsgan", "discriminator"): lambda f, r: (
        F.mse_loss(r, torch.ones_like(r)) + F.mse_loss(f, torch.zeros_like(f))
    ),
    ("hinge", "generator"): lambda f, r: -f.mean(),
    ("hinge", "discriminator"): lambda f, r: F.relu(1 - r).mean() + F.relu(1 + f).mean(),
    ("wgan", "generator"): lambda f, r: -f.mean(),
    ("wgan", "discriminator"): lambda f, r: f.mean() - r.mean(),
    ("ragan", "generator"): lambda f, r: 0.5 * (_bce(r - f.mean(), 0.0) + _bce(f - r.mean(), 1.0)),
    ("ragan", "discriminator"): lambda f, r: 0.5 * (_bce(r - f.mean(), 1.0) + _bce(f - r.mean(), 0.0)),
}


@pytest.mark.parametrize("name,side", sorted(HAND))
def test_gan_objective_equals_hand_formula(name, side):
    torch.manual_seed(0)
    fake, real = torch.randn(4, 1, 5, 5) * 2, torch.randn(4, 1, 5, 5) * 2 + 1
    got = losses.create(name, side=side)(fake, real)
    want = HAND[(name, side)](fake, real)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


def test_hinge_and_wgan_on_known_logits():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    # relu(1 - [2, -1]) = [0, 2] -> 1.0 ; relu(1 + [0.5, -3]) = [1.5, 0] -> 0.75
    assert hinge_gan_loss(fake, real, side="discriminator").item() == pytest.approx(1.75)
    assert hinge_gan_loss(fake, side="generator").item() == pytest.approx(1.25)
    assert wgan_loss(fake, real, side="discriminator").item() == pytest.approx(-1.25 - 0.5)
    assert wgan_loss(fake).item() == pytest.approx(1.25)


def test_vanilla_gan_matches_bce_on_sigmoid_for_moderate_logits():
    torch.manual_seed(1)
    fake, real = torch.randn(16), torch.randn(16)
    bce = nn.BCELoss()
    d_ref = bce(torch.sigmoid(real), torch.ones(16)) + bce(torch.sigmoid(fake), torch.zeros(16))
    torch.testing.assert_close(gan_loss(fake, real, side="discriminator"), d_ref, rtol=1e-5, atol=1e-6)
    # the generator is non-saturating: -log(sigmoid(fake))
    torch.testing.assert_close(gan_loss(fake), -torch.log(torch.sigmoid(fake)).mean(), rtol=1e-5, atol=1e-6)


def test_label_smoothing_and_label_checks():
    torch.manual_seed(2)
    fake, real = torch.randn(8), torch.randn(8)
    got = losses.create("gan", side="discriminator", real_label=0.9)(fake, real)
    torch.testing.assert_close(got, _bce(real, 0.9) + _bce(fake, 0.0))
    got = losses.create("lsgan", real_label=0.9)(fake)
    torch.testing.assert_close(got, ((fake - 0.9) ** 2).mean())
    with pytest.raises(ValueError, match="must differ"):
        losses.create("gan", real_label=0.5, fake_label=0.5)
    with pytest.raises(ValueError, match="side must be one of"):
        losses.create("hinge", side="critic")


def test_bce_with_logits_finite_where_sigmoid_then_bce_is_not():
    real = torch.tensor([-100.0, -100.0], requires_grad=True)
    fake = torch.tensor([100.0, 100.0], requires_grad=True)
    loss = gan_loss(fake, real, side="discriminator")
    # softplus(100) + softplus(100) = 200 (exact in float32)
    assert loss.item() == pytest.approx(200.0)
    loss.backward()
    # d/dx BCE(x, 0) = sigmoid(x) / N: the discriminator still learns at saturated logits
    torch.testing.assert_close(fake.grad, torch.full((2,), 0.5))
    torch.testing.assert_close(real.grad, torch.full((2,), -0.5))
    # the same objective through a sigmoid: -log(1 - sigmoid(100)) is inf ...
    naive = -torch.log(1 - torch.sigmoid(fake.detach())).mean()
    assert torch.isinf(naive)
    # ... and torch's BCELoss clamps the log at -100, giving a wrong value and a zero gradient
    x = fake.detach().clone().requires_grad_(True)
    clamped = F.binary_cross_entropy(torch.sigmoid(x), torch.zeros(2))
    clamped.backward()
    assert clamped.item() == pytest.approx(100.0) and torch.all(x.grad == 0)
    # generator side in float16: sigmoid(-100) underflows to 0 and -log(0) = inf; ours stays finite
    g = gan_loss(torch.tensor([-100.0, -100.0], dtype=torch.float16))
    assert g.item() == pytest.approx(100.0)
    assert torch.isinf(-torch.log(torch.sigmoid(torch.tensor([-100.0], dtype=torch.float16))))


@pytest.mark.parametrize("name", GAN_NAMES)
@pytest.mark.parametrize("side", ("generator", "discriminator"))
def test_list_inputs_average_per_scale(name, side):
    torch.manual_seed(3)
    fakes = [torch.randn(2, 1, 8, 8), torch.randn(2, 1, 4, 4) + 0.5, torch.randn(2, 37)]
    reals = [torch.randn(2, 1, 8, 8) + 1, torch.randn(2, 1, 4, 4), torch.randn(2, 37) - 0.3]
    loss = losses.create(name, side=side)
    want = torch.stack([HAND[(name, side)](f, r) for f, r in zip(fakes, reals, strict=True)]).mean()
    torch.testing.assert_close(loss(fakes, reals), want, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="pair up"):
        loss(fakes, reals[:2])


@pytest.mark.parametrize(
    "name,side",
    [(n, "discriminator") for n in GAN_NAMES] + [("ragan", "generator")],
)
def test_missing_real_logits_raises(name, side):
    loss = losses.create(name, side=side)
    with pytest.raises(ValueError, match=f"{name} {side} side needs real_logits"):
        loss(torch.randn(4))
    # through a LossSet: real_logits is optional metadata, the entry itself complains
    loss_set = losses.build({name: {"side": side}})
    with pytest.raises(ValueError, match=f"{name} {side} side needs real_logits"):
        loss_set(fake_logits=torch.randn(4))


@pytest.mark.parametrize("name", ("gan", "lsgan", "hinge", "wgan"))
def test_generator_side_ignores_real_logits(name):
    fake = torch.randn(6)
    loss = losses.create(name)
    torch.testing.assert_close(loss(fake), loss(fake, torch.randn(6)))
    # LossSet passes real_logits when the call has it
    total, _ = losses.build([name])(fake_logits=fake, real_logits=torch.randn(6))
    torch.testing.assert_close(total, loss(fake))


FUNCTIONS = {
    "gan": gan_loss,
    "lsgan": lsgan_loss,
    "hinge": hinge_gan_loss,
    "wgan": wgan_loss,
    "ragan": ragan_loss,
}


@pytest.mark.parametrize("name", GAN_NAMES)
def test_functions_equal_modules(name):
    torch.manual_seed(27)
    fake, real = torch.randn(3, 7), torch.randn(3, 7)
    for side in ("generator", "discriminator"):
        want = HAND[(name, side)](fake, real)
        torch.testing.assert_close(FUNCTIONS[name](fake, real, side=side), want, rtol=1e-6, atol=1e-7)


def _basicsr_cri_gan(x, target_is_real):
    """BasicSR GANLoss(gan_type='vanilla', real_label_val=1.0, fake_label_val=0.0)."""
    target = x.new_ones(x.size()) * (1.0 if target_is_real else 0.0)
    return nn.BCEWithLogitsLoss()(x, target)


def test_ragan_equals_basicsr_esrgan():
    torch.manual_seed(4)
    real_leaf, fake_leaf = torch.randn(4, 1, 6, 6) + 1, torch.randn(4, 1, 6, 6)

    # generator step (ESRGANModel.optimize_parameters): real_d_pred detached
    fake = fake_leaf.clone().requires_grad_(True)
    real_d_pred, fake_g_pred = real_leaf.detach(), fake
    l_g_real = _basicsr_cri_gan(real_d_pred - torch.mean(fake_g_pred), False)
    l_g_fake = _basicsr_cri_gan(fake_g_pred - torch.mean(real_d_pred), True)
    l_g_gan = (l_g_real + l_g_fake) / 2
    l_g_gan.backward()
    ref_grad = fake.grad.clone()

    fake = fake_leaf.clone().requires_grad_(True)
    real = real_leaf.clone().requires_grad_(True)
    ours = losses.create("ragan")(fake, real)
    ours.backward()
    torch.testing.assert_close(ours, l_g_gan, rtol=1e-6, atol=0)
    torch.testing.assert_close(fake.grad, ref_grad, rtol=1e-5, atol=1e-8)
    assert real.grad is None  # real logits are detached on the generator side

    # discriminator step: two backward passes, each with the other side's mean detached
    real, fake = real_leaf.clone().requires_grad_(True), fake_leaf.clone().requires_grad_(True)
    l_d_real = _basicsr_cri_gan(real - torch.mean(fake.detach()), True) * 0.5
    l_d_real.backward()
    l_d_fake = _basicsr_cri_gan(fake - torch.mean(real.detach()), False) * 0.5
    l_d_fake.backward()
    ref_real_grad, ref_fake_grad = real.grad.clone(), fake.grad.clone()

    real, fake = real_leaf.clone().requires_grad_(True), fake_leaf.clone().requires_grad_(True)
    ours = losses.create("ragan", side="discriminator")(fake, real)
    ours.backward()
    torch.testing.assert_close(ours, l_d_real + l_d_fake, rtol=1e-6, atol=0)
    torch.testing.assert_close(real.grad, ref_real_grad, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(fake.grad, ref_fake_grad, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", GAN_NAMES)
@pytest.mark.parametrize("side", ("generator", "discriminator"))
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_gan_objectives_under_autocast_close_to_float32(name, side, dtype):
    torch.manual_seed(5)
    disc = TinyD()
    real_img, fake_img = natural_images(), natural_images().flip(-1).roll(3, dims=-2) * 0.8
    loss = losses.create(name, side=side)
    want = loss(disc(fake_img), disc(real_img))
    with torch.autocast("cpu", dtype=dtype):
        fake, real = disc(fake_img), disc(real_img)
        assert fake.dtype == dtype
        got = loss(fake, real)
    assert got.dtype == torch.float32 and torch.isfinite(got)
    tol = 2e-2 if dtype == torch.bfloat16 else 2e-3
    assert abs(got.item() - want.item()) <= tol * max(1.0, abs(want.item()))


# ---------------------------------------------------------------------------------------------
# R1


def test_r1_equals_per_sample_autograd_and_basicsr():
    torch.manual_seed(6)
    disc = TinyD()
    real = natural_images().requires_grad_(True)
    got = losses.create("r1", gamma=3.0)(disc(real), real)
    # independent reference: one autograd call per sample (no batch-sum trick)
    norms = []
    for i in range(real.shape[0]):
        x = real[i : i + 1].detach().requires_grad_(True)
        (g,) = torch.autograd.grad(disc(x).sum(), x)
        norms.append(g.pow(2).sum())
    want = 1.5 * torch.stack(norms).mean()
    assert rel_err(got, want) < 1e-5
    # BasicSR's r1_penalty (without its gamma / 2 factor, applied by the caller)
    (grad_real,) = torch.autograd.grad(disc(real).sum(), real, create_graph=True)
    basicsr = grad_real.pow(2).view(grad_real.shape[0], -1).sum(1).mean()
    assert rel_err(got, 1.5 * basicsr) < 1e-6


def test_r1_analytic_for_linear_discriminator_and_gradients_reach_parameters():
    torch.manual_seed(7)
    lin = nn.Linear(12, 1)
    real = torch.rand(5, 12, requires_grad=True)
    penalty = r1_penalty(lin(real), real, gamma=10.0)
    w = lin.weight.detach()
    torch.testing.assert_close(penalty, 5.0 * w.pow(2).sum(), rtol=1e-6, atol=0)
    penalty.backward()  # create_graph=True: the penalty is a function of D's weights
    torch.testing.assert_close(lin.weight.grad, 10.0 * w, rtol=1e-6, atol=0)
    assert lin.bias.grad is None or torch.all(lin.bias.grad == 0)


def test_r1_backward_gives_conv_discriminator_parameter_gradients():
    torch.manual_seed(8)
    disc = TinyD()
    real = natural_images().requires_grad_(True)
    losses.create("r1")(disc(real), real).backward()
    for p in (disc.conv1.weight, disc.conv2.weight):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_r1_list_of_outputs_sums_them():
    torch.manual_seed(9)
    d1, d2 = TinyD(), TinyD()
    real = natural_images().requires_grad_(True)
    got = r1_penalty([d1(real), d2(real)], real)
    want = r1_penalty(d1(real).sum() + d2(real).sum(), real)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)


def test_r1_with_grad_scaler_equals_unscaled_in_float32():
    torch.manual_seed(10)
    disc = TinyD()
    real = natural_images().requires_grad_(True)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    assert scaler.is_enabled()  # CPU GradScaler is real in torch >= 2.3; no stand-in needed
    r1 = losses.create("r1")
    plain = r1(disc(real), real)
    scaled = r1(disc(real), real, grad_scaler=scaler)
    assert rel_err(scaled, plain) < 1e-5
    # a disabled scaler is ignored
    off = torch.amp.GradScaler("cpu", enabled=False)
    torch.testing.assert_close(r1(disc(real), real, grad_scaler=off), plain)


def test_r1_grad_scaler_prevents_fp16_underflow_under_cpu_autocast():
    torch.manual_seed(11)
    disc = TinyD(scale=1e-8)  # input gradients around 1e-9: below float16's smallest subnormal
    real = natural_images().requires_grad_(True)
    want = r1_penalty(disc(real), real)  # float32 reference
    assert want.item() > 0
    with torch.autocast("cpu", dtype=torch.float16):
        logits = disc(real)
    assert logits.dtype == torch.float16
    # unscaled: the float16 backward through the discriminator underflows to exactly zero
    unscaled = r1_penalty(logits, real)
    assert unscaled.item() == 0.0
    # scaled by the GradScaler and unscaled in float32: non-zero and close to the float32 value
    # (init_scale 2**12: a scale above 65504 would overflow each float16 logit's gradient)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    scaled = losses.create("r1")(logits, real, grad_scaler=scaler)
    assert rel_err(scaled, want) < 2e-2


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_r1_under_autocast_close_to_float32(dtype):
    torch.manual_seed(12)
    disc = TinyD()
    real = natural_images().requires_grad_(True)
    r1 = losses.create("r1")
    want = r1(disc(real), real)
    with torch.autocast("cpu", dtype=dtype):
        got = r1(disc(real), real)
    assert got.dtype == torch.float32
    assert rel_err(got, want) < (3e-2 if dtype == torch.bfloat16 else 6e-3)


def test_r1_argument_checks():
    with pytest.raises(ValueError, match="gamma"):
        losses.create("r1", gamma=-1.0)
    real = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(TinyD()(real), real)
    other = torch.rand(2, 3, 8, 8, requires_grad=True)
    with pytest.raises(RuntimeError, match="very tensor"):
        r1_penalty(TinyD()(torch.rand(2, 3, 8, 8, requires_grad=True)), other)


# ---------------------------------------------------------------------------------------------
# WGAN-GP


def test_gradient_penalty_equals_hand_computation_with_seed():
    torch.manual_seed(13)
    disc = TinyD()
    real, fake = natural_images(), natural_images().flip(-1) * 0.7
    torch.manual_seed(100)
    got = losses.create("gradient_penalty", penalty_weight=7.0)(disc, real, fake)
    torch.manual_seed(100)
    eps = torch.rand(3, 1, 1, 1)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(disc(x_hat), x_hat, grad_outputs=torch.ones(3, 1, 16, 16), create_graph=True)
    want = 7.0 * ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
    assert rel_err(got, want) < 1e-5
    assert want.item() > 0.1  # a random conv D is not 1-Lipschitz: the check is not vacuous


def test_gradient_penalty_equals_basicsr_on_flat_inputs():
    torch.manual_seed(14)
    disc = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 1))
    real, fake = torch.randn(6, 10), torch.randn(6, 10)
    torch.manual_seed(5)
    got = gradient_penalty(disc, real, fake, penalty_weight=1.0)
    # BasicSR gradient_penalty_loss, with alpha drawn as (N, 1) for flat data
    torch.manual_seed(5)
    alpha = torch.rand(6, 1, 1, 1).view(6, 1)  # BasicSR: real_data.new_tensor(torch.rand(N, 1, 1, 1))
    interpolates = (alpha * real + (1.0 - alpha) * fake).requires_grad_(True)
    out = disc(interpolates)
    (gradients,) = torch.autograd.grad(
        out, interpolates, grad_outputs=torch.ones_like(out), create_graph=True
    )
    want = ((gradients.norm(2, dim=1) - 1) ** 2).mean()
    assert rel_err(got, want) < 1e-5


def test_gradient_penalty_zero_for_unit_norm_linear_critic():
    torch.manual_seed(15)
    w = torch.randn(3, 16, 16)
    w = w / w.norm()

    def critic(x):  # 1-Lipschitz, gradient norm exactly 1 everywhere
        return (x * w).flatten(1).sum(1, keepdim=True)

    real, fake = natural_images(), torch.rand(3, 3, 16, 16)
    assert gradient_penalty(critic, real, fake).item() < 1e-10
    # twice as steep: (2 - 1)^2 * weight
    assert gradient_penalty(lambda x: 2 * critic(x), real, fake).item() == pytest.approx(10.0, rel=1e-5)
    # list output: outputs are summed (two copies = twice as steep)
    assert gradient_penalty(lambda x: [critic(x), critic(x)], real, fake).item() == pytest.approx(
        10.0, rel=1e-5
    )


def test_gradient_penalty_backward_scaler_and_autocast():
    torch.manual_seed(16)
    disc = TinyD()
    real, fake = natural_images(), natural_images().roll(5, dims=-1) * 0.5
    gp = losses.create("gradient_penalty")
    torch.manual_seed(1)
    want = gp(disc, real, fake)
    want.backward()
    assert disc.conv1.weight.grad is not None and disc.conv1.weight.grad.abs().sum() > 0
    torch.manual_seed(1)
    scaled = gp(disc, real, fake, grad_scaler=torch.amp.GradScaler("cpu", init_scale=2.0**16))
    assert rel_err(scaled, want) < 1e-5
    for dtype, tol in ((torch.bfloat16, 3e-2), (torch.float16, 6e-3)):
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=dtype):
            got = gp(disc, real, fake, grad_scaler=torch.amp.GradScaler("cpu", init_scale=2.0**12))
        assert got.dtype == torch.float32 and rel_err(got, want) < tol
    # through a LossSet, inputs by name
    torch.manual_seed(1)
    total, terms = losses.build({"gradient_penalty": 1.0})(discriminator=disc, real=real, fake=fake)
    torch.testing.assert_close(terms["gradient_penalty"], want.detach())
    with pytest.raises(ValueError, match="shapes differ"):
        gp(disc, real, fake[:2])
    with pytest.raises(ValueError, match="penalty_weight"):
        losses.create("gradient_penalty", penalty_weight=-1)


# ---------------------------------------------------------------------------------------------
# feature matching


def test_feature_matching_equals_hand_l1_over_layers_and_discriminators():
    torch.manual_seed(17)
    shapes = [[(2, 4, 8, 8), (2, 8, 4, 4), (2, 1, 4, 4)], [(2, 16, 30), (2, 1, 30)]]
    fake = [[torch.randn(s) for s in d] for d in shapes]
    real = [[torch.randn(s) for s in d] for d in shapes]
    got = losses.create("feature_matching")(fake, real)
    d0 = sum((f - r).abs().mean() for f, r in zip(fake[0], real[0], strict=True)) / 3
    d1 = sum((f - r).abs().mean() for f, r in zip(fake[1], real[1], strict=True)) / 2
    torch.testing.assert_close(got, (d0 + d1) / 2, rtol=1e-6, atol=0)
    # a flat list is one discriminator
    torch.testing.assert_close(feature_matching_loss(fake[1], real[1]), d1, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="shapes differ"):
        feature_matching_loss(fake[0], real[0][::-1])
    with pytest.raises(ValueError, match="feature layers"):
        feature_matching_loss(fake[0], real[0][:2])


def test_feature_matching_identity_gradients_and_real_branch_detached():
    torch.manual_seed(18)
    disc = TinyD()
    img = natural_images()
    fake_feats = disc.features(img)
    real_feats = disc.features(img)
    loss = feature_matching_loss(fake_feats, real_feats)
    assert loss.item() == 0.0
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in disc.parameters() if p.grad is not None)
    # gradients reach the fake features only
    fake = [torch.randn(2, 5, requires_grad=True)]
    real = [torch.randn(2, 5, requires_grad=True)]
    feature_matching_loss(fake, real).backward()
    assert real[0].grad is None
    torch.testing.assert_close(fake[0].grad, torch.sign(fake[0] - real[0]).detach() / 10)


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_feature_matching_under_autocast_close_to_float32(dtype):
    torch.manual_seed(19)
    disc = TinyD()
    real, fake = natural_images(), natural_images().flip(-2) * 0.9
    fm = losses.create("feature_matching")
    want = fm(disc.features(fake), disc.features(real))
    with torch.autocast("cpu", dtype=dtype):
        got = fm(disc.features(fake), disc.features(real))
    assert got.dtype == torch.float32
    assert rel_err(got, want) < (2e-2 if dtype == torch.bfloat16 else 2e-3)


# ---------------------------------------------------------------------------------------------
# contrastive


def _cut_patchnce(feat_q, feat_k, batch_size, nce_t=0.07, all_negatives=False):
    """CUT's PatchNCELoss.forward (Park et al. 2020), with CUT's Normalize(2) on the features."""
    feat_q = feat_q / (feat_q.pow(2).sum(1, keepdim=True).pow(0.5) + 1e-7)
    feat_k = feat_k / (feat_k.pow(2).sum(1, keepdim=True).pow(0.5) + 1e-7)
    num_patches, dim = feat_q.shape
    feat_k = feat_k.detach()
    l_pos = torch.bmm(feat_q.view(num_patches, 1, -1), feat_k.view(num_patches, -1, 1)).view(num_patches, 1)
    batch_dim_for_bmm = 1 if all_negatives else batch_size
    feat_q = feat_q.view(batch_dim_for_bmm, -1, dim)
    feat_k = feat_k.view(batch_dim_for_bmm, -1, dim)
    npatches = feat_q.size(1)
    l_neg_curbatch = torch.bmm(feat_q, feat_k.transpose(2, 1))
    diagonal = torch.eye(npatches, dtype=torch.bool)[None, :, :]
    l_neg_curbatch.masked_fill_(diagonal, -10.0)
    l_neg = l_neg_curbatch.view(-1, npatches)
    out = torch.cat((l_pos, l_neg), dim=1) / nce_t
    loss = nn.CrossEntropyLoss(reduction="none")(out, torch.zeros(out.size(0), dtype=torch.long))
    return loss.mean()


def test_patchnce_equals_cross_entropy_2d():
    torch.manual_seed(20)
    q, k = torch.randn(64, 16), torch.randn(64, 16)
    got = losses.create("patchnce")(q, k)
    logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / 0.07
    want = F.cross_entropy(logits, torch.arange(64))
    assert rel_err(got, want) < 1e-5


@pytest.mark.parametrize("within", (True, False))
def test_patchnce_equals_cut_reference_3d(within):
    torch.manual_seed(21)
    b, n, c = 3, 32, 16
    k = torch.randn(b, n, c)
    q = k + 0.8 * torch.randn(b, n, c)  # correlated positives, as in training
    got = patchnce_loss(q, k, negatives_within_batch=within)
    want = _cut_patchnce(q.reshape(b * n, c), k.reshape(b * n, c), batch_size=b, all_negatives=not within)
    assert rel_err(got, want) < 1e-5
    # and the per-image form equals an explicit bmm + cross entropy
    if within:
        logits = torch.bmm(F.normalize(q, dim=-1), F.normalize(k, dim=-1).transpose(1, 2)) / 0.07
        want = F.cross_entropy(logits.reshape(b * n, n), torch.arange(n).repeat(b))
        assert rel_err(got, want) < 1e-5


def test_patchnce_layers_average_and_key_detached():
    torch.manual_seed(22)
    qs = [torch.randn(2, 16, 8, requires_grad=True), torch.randn(2, 24, 32, requires_grad=True)]
    ks = [torch.randn(2, 16, 8, requires_grad=True), torch.randn(2, 24, 32, requires_grad=True)]
    got = losses.create("patchnce")(qs, ks)
    want = (patchnce_loss(qs[0], ks[0]) + patchnce_loss(qs[1], ks[1])) / 2
    torch.testing.assert_close(got, want)
    got.backward()
    assert all(q.grad is not None for q in qs) and all(k.grad is None for k in ks)
    k = torch.randn(8, 4, requires_grad=True)
    patchnce_loss(torch.randn(8, 4), k, detach_key=False).backward()
    assert k.grad is not None and k.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="layers"):
        patchnce_loss(qs, ks[:1])


def test_patchnce_decoupled_equals_dcl_formula():
    torch.manual_seed(23)
    n, tau = 12, 0.2
    q, k = torch.randn(n, 8), torch.randn(n, 8)
    got = losses.create("patchnce", decoupled=True, temperature=tau)(q, k)
    sim = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T
    per = []
    for i in range(n):
        neg = torch.cat([sim[i, :i], sim[i, i + 1 :]])
        per.append(-sim[i, i] / tau + torch.logsumexp(neg / tau, dim=0))
    want = torch.stack(per).mean()
    assert rel_err(got, want) < 1e-5
    # DCL = InfoNCE minus log(1 + exp(pos)/sum(exp(neg))) < InfoNCE
    assert got < patchnce_loss(q, k, temperature=tau)


def test_patchnce_temperature_and_separation():
    torch.manual_seed(24)
    n = 16
    feats = torch.eye(n, 32)  # orthonormal: identical, well-separated query and key
    # at identity the loss is log(1 + (n - 1) exp(-1 / tau)): minimal and falling with tau
    for tau in (0.07, 0.5, 1.0):
        want = math.log(1 + (n - 1) * math.exp(-1 / tau))
        assert patchnce_loss(feats, feats, temperature=tau).item() == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert patchnce_loss(feats, feats).item() < 1e-5
    # a very high temperature makes every logit equal: log(n)
    rand_q, rand_k = torch.randn(n, 32), torch.randn(n, 32)
    assert patchnce_loss(rand_q, rand_k, temperature=1e4).item() == pytest.approx(math.log(n), rel=1e-3)
    # identical well-separated features score far below random pairs
    assert patchnce_loss(feats, feats).item() < 0.01 * patchnce_loss(rand_q, rand_k).item()
    with pytest.raises(ValueError, match="temperature"):
        losses.create("patchnce", temperature=0.0)


def test_contrastive_finite_gradients_at_zero_features_and_shape_checks():
    q = torch.zeros(4, 8, requires_grad=True)
    k = torch.randn(4, 8)
    loss = patchnce_loss(q, k)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(q.grad).all()
    assert loss.item() == pytest.approx(math.log(4), rel=1e-6)  # zero query: uniform logits
    with pytest.raises(ValueError, match="shapes differ"):
        patchnce_loss(torch.randn(4, 8), torch.randn(5, 8))
    with pytest.raises(ValueError, match="at least 2"):
        patchnce_loss(torch.randn(1, 8), torch.randn(1, 8))


@pytest.mark.parametrize("name", ("patchnce", "infonce"))
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_contrastive_autocast_via_registry_runs_in_float32(name, dtype):
    torch.manual_seed(25)
    head = nn.Linear(32, 16)
    x = torch.randn(2, 24, 32)
    if name == "infonce":
        x = x[0]
    y = x + 0.5 * torch.randn_like(x)
    loss = losses.create(name)
    want = loss(head(x), head(y))
    with torch.autocast("cpu", dtype=dtype):
        q, k = head(x), head(y)
        assert q.dtype == dtype
        got = loss(q, k)
    assert got.dtype == torch.float32
    # exactly the float32 computation on the half-precision features
    torch.testing.assert_close(got, loss(q.float(), k.float()), rtol=1e-6, atol=1e-7)
    # and close to the all-float32 value
    assert rel_err(got, want) < (3e-2 if dtype == torch.bfloat16 else 3e-3)


def test_infonce_equals_clip_cross_entropy():
    torch.manual_seed(26)
    img, txt = torch.randn(10, 16, requires_grad=True), torch.randn(10, 16, requires_grad=True)
    logits = F.normalize(img, dim=1) @ F.normalize(txt, dim=1).T / 0.07
    labels = torch.arange(10)
    one_way = F.cross_entropy(logits, labels)
    clip = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert rel_err(losses.create("infonce")(img, txt), one_way) < 1e-5
    got = losses.create("infonce", symmetric=True)(img, txt)
    assert rel_err(got, clip) < 1e-5
    got.backward()
    assert img.grad is not None and txt.grad is not None  # no detached side
    per_pair = infonce_loss(img, txt, reduction="none")
    torch.testing.assert_close(
        per_pair, F.cross_entropy(logits, labels, reduction="none"), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        infonce_loss(torch.randn(2, 3, 4), torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="reduction"):
        losses.create("infonce", reduction="max")


def test_registry_metadata():
    for name in GAN_NAMES:
        spec = losses.get(name)
        assert (spec.kind, spec.input_range, spec.fp32) == ("adversarial", "logits", False)
        assert spec.inputs == ("fake_logits",) and spec.optional_inputs == ("real_logits",)
    assert not losses.get("r1").fp32 and losses.get("r1").inputs == ("real_logits", "real")
    assert losses.get("gradient_penalty").inputs == ("discriminator", "real", "fake")
    assert losses.get("feature_matching").inputs == ("fake_features", "real_features")
    for name in ("patchnce", "infonce"):
        spec = losses.get(name)
        assert (spec.kind, spec.fp32, spec.inputs) == ("contrastive", True, ("query", "key"))
    assert losses.get("patchnce").cls is not losses.get("infonce").cls


def test_r1_through_registry_accepts_half_precision_real_samples():
    torch.manual_seed(0)
    disc = TinyD()
    real32 = torch.rand(2, 3, 8, 8, requires_grad=True)
    reference = float(r1_penalty(disc(real32), real32))
    real16 = real32.detach().bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        penalty = losses.create("r1")(disc(real16), real16)
    assert penalty.dtype == torch.float32
    assert abs(float(penalty) - reference) <= 0.05 * abs(reference)
    penalty.backward()
    # the penalty reaches D's weights (biases do not change the input gradient)
    assert disc.conv1.weight.grad is not None and torch.isfinite(disc.conv1.weight.grad).all()
    assert disc.conv1.weight.grad.abs().sum() > 0
