"""Shared test fixtures: natural test images from scikit-image (bundled, no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HWC or HW uint8 -> float32 (1, C, H, W) in [0, 1]."""
    array = image.astype(np.float32) / 255.0
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


@pytest.fixture(autouse=True)
def cpu_without_native_bf16(monkeypatch):
    """The CPU precision policy of a CPU without native bf16 instructions (float32), whatever this
    machine has, so that results do not depend on the test machine; tests of the bf16 policy patch
    it back on."""
    import restore.infer.predictor as predictor

    monkeypatch.setattr(predictor, "cpu_bf16_instructions", lambda: None)


@pytest.fixture(scope="session")
def natural_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A natural RGB image (1, 3, 256, 256) and a noisy, slightly blurred version of it."""
    import skimage.data

    clean = to_tensor(skimage.data.astronaut()[:256, 128:384])
    gen = torch.Generator().manual_seed(0)
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=gen)
    blurred = torch.nn.functional.avg_pool2d(noisy, 3, stride=1, padding=1, count_include_pad=False)
    return clean, blurred.clamp(0, 1)


@pytest.fixture(scope="session")
def natural_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two natural RGB images (2, 3, 192, 200) and degraded versions (JPEG-like blocking + noise)."""
    import skimage.data

    a = to_tensor(skimage.data.coffee()[100:292, 100:300])
    b = to_tensor(skimage.data.chelsea()[50:242, 50:250])
    clean = torch.cat([a, b])
    gen = torch.Generator().manual_seed(1)
    coarse = torch.nn.functional.interpolate(
        torch.nn.functional.avg_pool2d(clean, 4), scale_factor=4, mode="nearest"
    )
    degraded = 0.6 * clean + 0.4 * coarse + 0.03 * torch.randn(clean.shape, generator=gen)
    return clean, degraded.clamp(0, 1)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny images: one thread (two OpenMP threads stall for whole time slices on a shared CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
