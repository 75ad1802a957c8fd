"""Audio discriminators: HiFi-GAN's multi-period (mpd) and EnCodec's multi-scale STFT (msstft_discriminator).

Both are checked against independent copies of the published code written here (HiFi-GAN's
``DiscriminatorP`` from jik876/hifi-gan ``models.py`` and audiocraft's ``DiscriminatorSTFT`` with
torchaudio's ``Spectrogram``, both with the old ``torch.nn.utils.weight_norm`` so their state dicts have the
original ``weight_g`` / ``weight_v`` keys), by loading the reference's state dict into ours and comparing
outputs and feature maps. Parameter counts are computed from the published layer shapes.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import losses
import restore.models as models

# Small tensors: one thread (two OpenMP threads stall for whole time slices on a shared CPU).
pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = ["mpd", "mpd_small", "msstft_discriminator", "msstft_discriminator_small"]
PERIODS = (2, 3, 5, 7, 11)
HIFIGAN_CHANNELS = (32, 128, 512, 1024, 1024)
SCALES = ((1024, 256), (2048, 512), (512, 128))  # (n_fft, hop), win = n_fft


def old_weight_norm(module: nn.Module) -> nn.Module:
    """``torch.nn.utils.weight_norm`` as the published code calls it (deprecated: keys weight_g/weight_v)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.nn.utils.weight_norm(module)


def sines(n: int, length: int, seed: int, sample_rate: int = 16000) -> torch.Tensor:
    """``(n, 1, length)`` sums of 3 harmonics with random fundamentals (100-400 Hz) and phases."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / sample_rate
    f0 = 100 + 300 * torch.rand(n, 1, 1, generator=gen)
    phase = 2 * math.pi * torch.rand(n, 1, 3, generator=gen)
    harmonics = torch.arange(1, 4).view(1, 1, 3)
    waves = torch.sin(2 * math.pi * f0[..., None] * harmonics[..., None] * t + phase[..., None])
    return 0.3 * waves.mean(dim=2)


# ---------------------------------------------------------------------------------------------
# Independent references (structure of the published code)


class RefDiscriminatorP(nn.Module):
    """HiFi-GAN ``DiscriminatorP`` (jik876/hifi-gan models.py), channels as an argument."""

    def __init__(self, period: int, channels=HIFIGAN_CHANNELS):
        super().__init__()
        self.period = period
        chans = (1, *channels)
        strides = [3] * (len(channels) - 1) + [1]
        self.convs = nn.ModuleList(
            old_weight_norm(nn.Conv2d(chans[i], chans[i + 1], (5, 1), (strides[i], 1), padding=(2, 0)))
            for i in range(len(channels))
        )
        self.conv_post = old_weight_norm(nn.Conv2d(channels[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x):
        fmap = []
        b, c, t = x.shape
        if t % self.period != 0:
            n_pad = self.period - (t % self.period)
            x = F.pad(x, (0, n_pad), "reflect")
            t = t + n_pad
        x = x.view(b, c, t // self.period, self.period)
        for layer in self.convs:
            x = F.leaky_relu(layer(x), 0.1)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return x, fmap


class RefNormConv2d(nn.Module):
    def __init__(self, *args, norm: bool = True, **kwargs):
        super().__init__()
        conv = nn.Conv2d(*args, **kwargs)
        self.conv = old_weight_norm(conv) if norm else conv

    def forward(self, x):
        return self.conv(x)


class RefDiscriminatorSTFT(nn.Module):
    """audiocraft ``DiscriminatorSTFT`` (msstftd.py); torchaudio Spectrogram, center=False, normalized."""

    def __init__(self, filters: int, n_fft: int, hop: int):
        super().__init__()
        import torchaudio

        self.spec_transform = torchaudio.transforms.Spectrogram(
            n_fft=n_fft, hop_length=hop, win_length=n_fft, window_fn=torch.hann_window,
            normalized=True, center=False, pad_mode=None, power=None,
        )  # fmt: skip
        self.convs = nn.ModuleList([RefNormConv2d(2, filters, (3, 9), padding=(1, 4), norm=False)])
        for d in (1, 2, 4):
            conv = RefNormConv2d(filters, filters, (3, 9), (1, 2), dilation=(d, 1), padding=(d, 4))
            self.convs.append(conv)
        self.convs.append(RefNormConv2d(filters, filters, (3, 3), padding=(1, 1)))
        self.conv_post = RefNormConv2d(filters, 1, (3, 3), padding=(1, 1))

    def forward(self, x):
        fmap = []
        z = self.spec_transform(x)  # (B, 1, F, frames) complex
        z = torch.cat([z.real, z.imag], dim=1).transpose(2, 3)  # 'b c w t -> b c t w'
        for layer in self.convs:
            z = F.leaky_relu(layer(z), 0.2)
            fmap.append(z)
        return self.conv_post(z), fmap


# ---------------------------------------------------------------------------------------------
# Spec and parameter counts


@pytest.mark.parametrize("name", NAMES)
def test_registered_as_audio_discriminators(name):
    model = models.build(name)
    spec = models.spec_of(model)
    assert spec.task == "discriminator" and spec.inputs == ("audio",)
    assert spec.in_channels == spec.out_channels == 1 and spec.scale == 1 and spec.size_multiple == 1
    assert name in models.available("discriminator")


def conv_params(c_in: int, c_out: int, kh: int, kw: int, weight_norm: bool = True) -> int:
    """Weight + bias (+ one weight-norm gain per output channel)."""
    return c_out * c_in * kh * kw + c_out + (c_out if weight_norm else 0)


def expected_mpd_params(channels) -> int:
    chans = (1, *channels)
    per_period = sum(conv_params(chans[i], chans[i + 1], 5, 1) for i in range(len(channels)))
    per_period += conv_params(channels[-1], 1, 3, 1)
    return len(PERIODS) * per_period


def expected_msstft_params(filters: int) -> int:
    per_scale = conv_params(2, filters, 3, 9, weight_norm=False)  # audiocraft: first conv without norm
    per_scale += 3 * conv_params(filters, filters, 3, 9) + conv_params(filters, filters, 3, 3)
    per_scale += conv_params(filters, 1, 3, 3)
    return len(SCALES) * per_scale


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_follow_the_published_layer_shapes():
    # HiFi-GAN MPD: 41,092,165 weights and biases + 13,605 weight-norm gains (5 periods).
    assert count(models.build("mpd")) == expected_mpd_params(HIFIGAN_CHANNELS) == 41_105_770
    assert count(models.build("mpd_small")) == expected_mpd_params([c // 4 for c in HIFIGAN_CHANNELS])
    assert count(models.build("msstft_discriminator")) == expected_msstft_params(32) == 283_398
    assert count(models.build("msstft_discriminator_small")) == expected_msstft_params(16)
    # The references written above hold the same number of parameters.
    assert count(models.build("mpd_small")) == sum(
        count(RefDiscriminatorP(p, [c // 4 for c in HIFIGAN_CHANNELS])) for p in PERIODS
    )
    ref_msstft = sum(count(RefDiscriminatorSTFT(32, *s)) for s in SCALES)
    assert count(models.build("msstft_discriminator")) == ref_msstft


# ---------------------------------------------------------------------------------------------
# Equality with the published structure (state dicts load from the original key layout)


@pytest.mark.parametrize("length", [4096, 4001])
def test_mpd_equals_hifigan_discriminator_p_with_loaded_weights(length):
    torch.manual_seed(0)
    channels = [c // 4 for c in HIFIGAN_CHANNELS]
    refs = nn.ModuleDict({"discriminators": nn.ModuleList(RefDiscriminatorP(p, channels) for p in PERIODS)})
    state = refs.state_dict()
    assert any(k.endswith("weight_g") for k in state)  # the original checkpoints' layout
    model = models.build("mpd_small").eval()
    model.load_state_dict(state, strict=True)
    x = torch.randn(2, 1, length) * 0.3
    with torch.no_grad():
        logits, features = model(x, return_features=True)
        for p, ref, logit, feats in zip(PERIODS, refs.discriminators, logits, features, strict=True):
            ref_logit, ref_feats = ref(x)
            assert logit.shape == ref_logit.shape == (2, 1, logit.shape[2], p)
            torch.testing.assert_close(logit, ref_logit, rtol=1e-5, atol=1e-6)
            assert len(feats) == len(ref_feats) == 6
            for f, r in zip(feats, ref_feats, strict=True):
                torch.testing.assert_close(f, r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("length", [4096, 4001])
def test_msstft_equals_audiocraft_discriminator_stft_with_loaded_weights(length):
    torch.manual_seed(0)
    refs = nn.ModuleDict({"discriminators": nn.ModuleList(RefDiscriminatorSTFT(32, *s) for s in SCALES)})
    state = refs.state_dict()
    assert {"discriminators.0.spec_transform.window", "discriminators.0.convs.1.conv.weight_g"} <= set(state)
    model = models.build("msstft_discriminator").eval()
    model.load_state_dict(state, strict=True)  # torchaudio's window key is dropped, weight_g/v mapped
    x = torch.randn(2, 1, length) * 0.3
    with torch.no_grad():
        logits, features = model(x, return_features=True)
        for (n_fft, _), ref, logit, feats in zip(SCALES, refs.discriminators, logits, features, strict=True):
            # audiocraft frames the signal without centring; ours centres with reflect padding, which is
            # torch.stft(center=False) of the reflect-padded signal.
            ref_logit, ref_feats = ref(F.pad(x, (n_fft // 2, n_fft // 2), mode="reflect"))
            torch.testing.assert_close(logit, ref_logit, rtol=1e-4, atol=1e-5)
            assert len(feats) == len(ref_feats) == 5
            for f, r in zip(feats, ref_feats, strict=True):
                torch.testing.assert_close(f, r, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Shapes


def ceil_halvings(size: int, times: int, factor: int) -> int:
    for _ in range(times):
        size = -(-size // factor)
    return size


@pytest.mark.parametrize("length", [4096, 4001])
def test_output_and_feature_shapes(length):
    x = torch.randn(2, 1, length) * 0.3
    with torch.no_grad():
        logits, features = models.build("mpd_small")(x, return_features=True)
        assert len(logits) == len(features) == len(PERIODS)
        for p, logit, feats in zip(PERIODS, logits, features, strict=True):
            rows = -(-length // p)
            assert logit.shape == (2, 1, ceil_halvings(rows, 4, 3), p)  # four stride-3 convs
            assert [f.shape[1] for f in feats] == [8, 32, 128, 256, 256, 1]
        logits, features = models.build("msstft_discriminator_small")(x, return_features=True)
        assert len(logits) == len(features) == len(SCALES)
        for (n_fft, hop), logit, feats in zip(SCALES, logits, features, strict=True):
            frames, bins = length // hop + 1, n_fft // 2 + 1
            assert logit.shape == (2, 1, frames, ceil_halvings(bins, 3, 2))  # three stride-2 convs (freq)
            assert [tuple(f.shape[:3]) for f in feats] == [(2, 16, frames)] * 5
            assert feats[0].shape[-1] == bins
        assert isinstance(models.build("mpd_small")(x), list)  # logits only without return_features


@pytest.mark.parametrize("name", ["mpd_small", "msstft_discriminator_small"])
def test_short_inputs_and_bad_shapes(name):
    model = models.build(name)
    for length in (1, 7, 300):
        logits = model(torch.randn(1, 1, length))
        assert all(torch.isfinite(lo).all() and lo.shape[:2] == (1, 1) for lo in logits)
    with pytest.raises(ValueError, match=r"mono audio \(N, 1, T\), got shape \(2, 2, 100\)"):
        model(torch.randn(2, 2, 100))
    with pytest.raises(ValueError, match="mono audio"):
        model(torch.randn(2, 100))


# ---------------------------------------------------------------------------------------------
# Structure


def test_mpd_period_column_only_sees_its_own_residue_class():
    """The (k, 1) kernels never mix columns: samples t = 0 mod p only reach column 0 of period p."""
    torch.manual_seed(0)
    model = models.build("mpd_small").eval()
    length = 2 * 3 * 5 * 7 * 11 * 2  # a multiple of every period: no padding
    x = torch.randn(1, 1, length) * 0.3
    with torch.no_grad():
        base = model(x)
        for i, p in enumerate(PERIODS):
            y = x.clone()
            y[..., 0::p] += 0.5 * torch.randn_like(y[..., 0::p])
            moved = model(y)[i]
            assert not torch.allclose(moved[..., 0], base[i][..., 0])
            assert torch.equal(moved[..., 1:], base[i][..., 1:])


@pytest.mark.parametrize("name", ["mpd_small", "msstft_discriminator_small"])
def test_receptive_field_bounds_what_a_logit_sees(name):
    """A change at sample t0 leaves every logit centred farther than spec.receptive_field unchanged."""
    torch.manual_seed(0)
    model = models.build(name).eval()
    radius = model.spec.receptive_field
    length, t0 = 4 * radius, 2 * radius
    x = torch.randn(1, 1, length) * 0.3
    y = x.clone()
    y[..., t0] += 1.0
    with torch.no_grad():
        pairs = list(zip(model(x), model(y), strict=True))
    for i, (a, b) in enumerate(pairs):
        changed = (a != b)[0, 0]  # (frames, bins) or (rows, period)
        rows, cols = torch.meshgrid(torch.arange(a.shape[2]), torch.arange(a.shape[3]), indexing="ij")
        if name.startswith("msstft"):
            centres = rows * SCALES[i][1]  # frame f is centred on sample f * hop
        else:  # output row r is centred on folded row 81 r (four stride-3 convs); column j is sample phase j
            centres = rows * 81 * PERIODS[i] + cols
        distance = (centres - t0).abs()
        assert changed.any() and (distance > radius).any()  # the bound is not vacuous here
        assert distance[changed].max() <= radius


# ---------------------------------------------------------------------------------------------
# With the project's adversarial losses


@pytest.mark.parametrize("name", ["mpd_small", "msstft_discriminator_small"])
def test_losses_consume_logit_and_feature_lists_with_gradients(name):
    torch.manual_seed(0)
    disc = models.build(name)
    real = sines(2, 4096, seed=1)
    fake = (real + 0.05 * torch.randn_like(real)).requires_grad_(True)  # stands in for G's output

    side = "discriminator"
    d_loss = losses.build({"gan": {"weight": 1.0, "side": side}, "hinge_d": {"name": "hinge", "side": side}})
    total, terms = d_loss(fake_logits=disc(fake.detach()), real_logits=disc(real))
    assert set(terms) == {"gan", "hinge_d"} and all(torch.isfinite(v) for v in terms.values())
    total.backward()
    grads = [p.grad for p in disc.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(g.abs().sum() > 0 for g in grads)  # every layer of every sub-discriminator learns
    disc.zero_grad(set_to_none=True)

    g_loss = losses.build({"feature_matching": 1.0, "hinge": 1.0, "lsgan": 1.0})
    fake_logits, fake_feats = disc(fake, return_features=True)
    real_logits, real_feats = disc(real, return_features=True)
    total, terms = g_loss(fake_logits=fake_logits, fake_features=fake_feats, real_features=real_feats)
    assert all(torch.isfinite(v) for v in terms.values()) and terms["feature_matching"] > 0
    total.backward()
    assert fake.grad is not None and torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in disc.parameters())


# ---------------------------------------------------------------------------------------------
# Mixed precision


def test_msstft_spectrogram_stays_float32_under_bf16_autocast():
    torch.manual_seed(0)
    model = models.build("msstft_discriminator_small")
    x = sines(2, 4096, seed=2) + 0.01 * torch.randn(2, 1, 4096)
    seen, discs = [], model.discriminators
    hooks = [d.convs[0].register_forward_pre_hook(lambda m, a: seen.append(a[0])) for d in discs]
    ref = model(x)
    ref_specs = [s.clone() for s in seen]
    seen.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    for h in hooks:
        h.remove()
    assert [s.dtype for s in seen] == [torch.float32] * len(SCALES)
    for s, r in zip(seen, ref_specs, strict=True):
        torch.testing.assert_close(s, r, rtol=0, atol=0)  # the STFT itself is untouched by autocast
    for o, r in zip(out, ref, strict=True):
        assert o.dtype == torch.bfloat16
        rel = (o.float() - r).norm() / r.norm()
        assert rel < 0.05, f"bf16 logits differ from float32 by {rel:.2%}"


def test_mpd_bf16_autocast_is_close_to_float32():
    torch.manual_seed(0)
    model = models.build("mpd_small")
    x = sines(2, 4096, seed=3)
    ref = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    for o, r in zip(out, ref, strict=True):
        assert torch.isfinite(o).all()
        assert (o.float() - r).norm() / r.norm() < 0.05


# ---------------------------------------------------------------------------------------------
# Learning


@pytest.mark.parametrize("name", ["mpd_small", "msstft_discriminator_small"])
def test_discriminator_learns_to_separate_clean_from_noisy_sines(name):
    """30 Adam steps on 4 clean / noisy pairs lower the hinge loss, also on unseen sines and noise."""
    torch.manual_seed(0)
    disc = models.build(name)
    optimizer = torch.optim.Adam(disc.parameters(), lr=2e-3, betas=(0.5, 0.9))
    hinge = losses.build({"hinge": {"side": "discriminator"}})

    def pair(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        clean = sines(4, 1024, seed=seed)
        noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed + 1))
        return clean, clean + 0.2 * noise

    def loss_on(clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
        logits = disc(torch.cat([clean, noisy]))  # one pass over both halves
        return hinge(fake_logits=[lo[4:] for lo in logits], real_logits=[lo[:4] for lo in logits])[0]

    train, unseen = pair(4), pair(14)
    with torch.no_grad():
        before, before_unseen = float(loss_on(*train)), float(loss_on(*unseen))
    for _ in range(30):
        loss = loss_on(*train)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after, after_unseen = float(loss_on(*train)), float(loss_on(*unseen))
    assert before > 1.9 and before_unseen > 1.9  # logits near 0 at initialisation: hinge loss about 2
    assert after < 0.5 * before, f"{name}: hinge loss {before:.3f} -> {after:.3f}"
    assert after_unseen < 0.5 * before_unseen, f"{name}: unseen {before_unseen:.3f} -> {after_unseen:.3f}"
