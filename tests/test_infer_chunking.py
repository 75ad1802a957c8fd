"""Chunked overlap-add for long audio: the plan covers every sample once, seams vanish, errors are clear."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from restore.infer.chunking import chunk_plan, process_chunked


def conv_net(radius: int = 30) -> nn.Module:
    """Two 'same' convolutions: receptive field ``radius`` samples on each side."""
    torch.manual_seed(0)
    k = radius + 1  # two layers of kernel k reach 2 * (k // 2) = radius samples
    return nn.Sequential(
        nn.Conv1d(1, 4, k, padding=k // 2), nn.Tanh(), nn.Conv1d(4, 1, k, padding=k // 2)
    ).eval()


@pytest.mark.parametrize(
    ("length", "chunk", "context", "fade"),
    [(10_007, 1000, 30, 0), (10_007, 1000, 30, 100), (999, 1000, 30, 100), (5000, 400, 0, 50), (1, 8, 2, 1)],
)
def test_the_plan_weights_every_sample_exactly_once(length, chunk, context, fade):
    x = torch.ones(1, 1, length)
    # an identity "model": the overlap-add must reproduce its input (partition of unity)
    out = process_chunked(lambda t: t, x, chunk, context, fade)
    assert torch.allclose(out, x, atol=1e-6)
    plan = chunk_plan(length, chunk, context, fade)
    assert plan[0].core_start == 0 and plan[-1].core_end == length
    assert all(p.read_end - p.read_start <= chunk for p in plan)
    assert all(p.read_start <= p.core_start < p.core_end <= p.read_end for p in plan)
    for before, after in zip(plan, plan[1:], strict=False):
        assert before.core_end - after.core_start == fade == before.fade_out == after.fade_in


@pytest.mark.parametrize("fade", [0, 64])
def test_a_model_whose_receptive_field_fits_the_context_gives_the_whole_signal_output(fade):
    net = conv_net(radius=30)
    x = torch.randn(2, 1, 20_011, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = net(x)
        chunked = process_chunked(net, x, chunk=1500, context=30, fade=fade)
    assert (chunked - whole).abs().max() < 1e-5
    # too little context: the seams show (so the test above is not vacuous)
    with torch.no_grad():
        short = process_chunked(net, x, chunk=1500, context=5, fade=fade)
    assert (short - whole).abs().max() > 1e-3


def test_channels_out_may_differ_and_the_output_is_float32():
    x = torch.randn(1, 1, 3000, dtype=torch.float64)
    out = process_chunked(lambda t: t.repeat(1, 2, 1), x, chunk=1000, context=10, fade=10)
    assert out.shape == (1, 2, 3000) and out.dtype == torch.float32
    assert torch.allclose(out[:, 1], x[:, 0].float(), atol=1e-6)


def test_errors_name_the_problem():
    with pytest.raises(
        ValueError, match=r"chunk \(100\) must be larger than 2 \* context \+ 2 \* fade = 120"
    ):
        chunk_plan(1000, 100, 50, 10)
    with pytest.raises(ValueError, match="context must be a non-negative int"):
        chunk_plan(1000, 100, -1)
    with pytest.raises(ValueError, match=r"expects \(N, C, T\)"):
        process_chunked(lambda t: t, torch.zeros(10), 4, 1)
    with pytest.raises(ValueError, match="must keep the batch size and the length"):
        process_chunked(lambda t: t[..., :-1], torch.zeros(1, 1, 50), 20, 2)
    assert chunk_plan(0, 10, 2) == []
