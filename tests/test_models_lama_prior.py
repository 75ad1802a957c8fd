"""LaMa refining the push-pull fill (``prior="pushpull"``, ``lama_pushpull_small``): the untrained
network is the classical filler, the head learns a residual, the keys stay big-lama's."""

from __future__ import annotations

import pytest
import torch

import restore.models as models
from restore.models.pushpull import push_pull_fill

pytestmark = pytest.mark.usefixtures("one_thread")


def hole_mask(n: int, size: int) -> torch.Tensor:
    mask = torch.zeros(n, 1, size, size)
    mask[..., size // 4 : size // 2, size // 3 : 2 * size // 3] = 1.0
    mask[..., -12:-4, 4:20] = 1.0
    return mask


@pytest.fixture
def image64(natural_pair) -> torch.Tensor:
    clean, _ = natural_pair
    return torch.cat([clean[..., 64:128, 96:160], clean[..., 160:224, 32:96]])


def test_untrained_refiner_is_the_push_pull_filler(image64):
    torch.manual_seed(0)
    model = models.build("lama_pushpull_small").eval()
    mask = hole_mask(2, 64)
    out = model(image64 * (1 - mask), mask)
    expected = mask * push_pull_fill(image64 * (1 - mask), mask) + (1 - mask) * image64
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert model.spec.config["prior"] == "pushpull" and model.spec.task == "inpaint"


def test_the_head_learns_a_residual_and_hole_content_is_ignored(image64):
    torch.manual_seed(0)
    model = models.build("lama_pushpull_small").train()
    mask = hole_mask(2, 64)
    out = model(image64 * (1 - mask), mask)
    loss = ((out - image64).abs() * mask).mean()
    loss.backward()
    head = model.model.model[-2]
    assert float(head.weight.grad.abs().sum()) > 0 and float(head.bias.grad.abs().sum()) > 0
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    model.eval()
    with torch.no_grad():
        a = model(image64 * (1 - mask), mask)
        b = model(image64 * (1 - mask) + mask * torch.rand_like(image64), mask)  # garbage in the holes
        fill = mask * push_pull_fill(image64 * (1 - mask), mask) + (1 - mask) * image64
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert float((a - fill).abs().max()) > 1e-3  # no longer the bare fill
    assert torch.equal(a * (1 - mask), image64 * (1 - mask))


def test_keys_are_lama_small_keys_and_the_prior_round_trips(tmp_path):
    plain, refiner = models.build("lama_small"), models.build("lama_pushpull_small")
    assert plain.state_dict().keys() == refiner.state_dict().keys()
    path = tmp_path / "refiner.safetensors"
    models.save(refiner, path)
    loaded = models.load(path)
    assert loaded.prior == "pushpull" and isinstance(loaded.model.model[-1], torch.nn.Identity)
    with pytest.raises(ValueError, match="prior must be one of"):
        models.build("lama_small", prior="telea")


def test_bf16_autocast_forward_is_finite_and_close(image64):
    torch.manual_seed(0)
    model = models.build("lama_pushpull_small").eval()
    with torch.no_grad():
        model.model.model[-2].weight.normal_(0, 1e-3)
    mask = hole_mask(2, 64)
    with torch.no_grad():
        ref = model(image64, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(image64, mask)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert float((out - ref).abs().max()) < 0.02
