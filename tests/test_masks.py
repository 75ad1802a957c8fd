"""Inpainting masks: coverage bounds, determinism, shape statistics, MaskFolder polarity and resizing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from restore.degrade.masks import MaskFolder, RandomMask, apply_mask, random_masks

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EDGECONNECT = SHARED_DATA / "images" / "Inpainting_EdgeConnect"


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def corner_ratio(masks: torch.Tensor) -> torch.Tensor:
    """Per mask: 2x2 windows with 1 or 3 hole pixels (corners, diagonal steps) / all boundary windows."""
    m = masks[:, 0]
    s = m[:, :-1, :-1] + m[:, 1:, :-1] + m[:, :-1, 1:] + m[:, 1:, 1:]
    corners = ((s == 1) | (s == 3)).sum((1, 2)).float()
    boundary = ((s > 0) & (s < 4)).sum((1, 2)).float()
    return corners / boundary.clamp(min=1)


def boundary_fraction(masks: torch.Tensor) -> torch.Tensor:
    """Per mask: hole pixels with a known 4-neighbour / hole pixels (about 0.75 for salt-and-pepper)."""
    padded = F.pad(masks, (1, 1, 1, 1), value=0)
    neighbours = torch.stack(
        [padded[..., :-2, 1:-1], padded[..., 2:, 1:-1], padded[..., 1:-1, :-2], padded[..., 1:-1, 2:]]
    )
    inner = neighbours.min(0).values
    return ((masks == 1) & (inner == 0)).sum((1, 2, 3)).float() / masks.sum((1, 2, 3)).clamp(min=1)


@pytest.mark.parametrize("kind", ["strokes", "boxes", "mixed"])
@pytest.mark.parametrize("coverage", [(0.1, 0.5), (0.0, 0.05), (0.3, 0.32), (0.6, 0.85)])
def test_every_mask_in_a_batch_has_its_hole_fraction_inside_the_coverage_range(kind, coverage):
    masks = random_masks(64, 48, 56, coverage=coverage, kind=kind, generator=gen(1))
    assert masks.shape == (64, 1, 48, 56) and masks.dtype == torch.float32
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    fractions = masks.mean(dim=(1, 2, 3))
    assert fractions.min().item() >= coverage[0] and fractions.max().item() <= coverage[1]


def test_hole_fractions_spread_over_the_range_and_a_single_value_is_exact():
    fractions = random_masks(128, 64, 64, coverage=(0.1, 0.5), generator=gen(2)).mean(dim=(1, 2, 3))
    # targets are uniform in the range: both halves populated, mean near the middle
    assert (fractions < 0.3).float().mean().item() > 0.3
    assert (fractions > 0.3).float().mean().item() > 0.3
    assert abs(fractions.mean().item() - 0.3) < 0.04
    exact = random_masks(16, 64, 64, coverage=0.25, kind="strokes", generator=gen(3))
    assert torch.all(exact.sum(dim=(1, 2, 3)) == 1024)


def test_the_dilation_fallback_still_meets_the_range_when_shapes_run_out():
    masks = random_masks(8, 40, 40, coverage=(0.9, 1.0), kind="strokes", generator=gen(4), max_shapes=1)
    fractions = masks.mean(dim=(1, 2, 3))
    assert fractions.min().item() >= 0.9 and fractions.max().item() <= 1.0
    full = random_masks(4, 24, 24, coverage=1.0, kind="boxes", generator=gen(4))
    assert torch.all(full == 1)


def test_same_seed_same_masks_and_different_seeds_differ():
    a = random_masks(16, 64, 64, generator=gen(7))
    b = random_masks(16, 64, 64, generator=gen(7))
    c = random_masks(16, 64, 64, generator=gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # masks within a batch differ from each other too
    assert len({m.numpy().tobytes() for m in a}) == 16
    # the global RNG is used without a generator, so torch.manual_seed makes it reproducible
    torch.manual_seed(0)
    d = random_masks(4, 32, 32)
    torch.manual_seed(0)
    assert torch.equal(d, random_masks(4, 32, 32))


def test_strokes_and_boxes_have_different_shape_statistics():
    strokes = random_masks(32, 96, 96, kind="strokes", generator=gen(5))
    boxes = random_masks(32, 96, 96, kind="boxes", generator=gen(5))
    # axis-aligned boxes have straight edges: almost no corner/diagonal windows; slanted strokes many
    assert corner_ratio(boxes).max().item() < 0.15
    assert corner_ratio(strokes).min().item() > 0.2
    # both are solid shapes, not scattered pixels (salt-and-pepper noise gives about 0.75)
    for masks in (strokes, boxes):
        assert boundary_fraction(masks).mean().item() < 0.25
    noise = (torch.rand(8, 1, 96, 96, generator=gen(0)) < 0.3).float()
    assert boundary_fraction(noise).mean().item() > 0.6


def test_mixed_masks_contain_both_kinds_of_shape():
    ratios = corner_ratio(random_masks(64, 96, 96, kind="mixed", generator=gen(6)))
    assert ratios.min().item() < 0.15  # some masks are boxes only
    assert ratios.max().item() > 0.3  # some contain slanted strokes


def test_invalid_arguments_are_rejected_with_the_argument_named():
    with pytest.raises(ValueError, match="kind"):
        random_masks(2, 32, 32, kind="circles")
    with pytest.raises(ValueError, match="coverage"):
        random_masks(2, 32, 32, coverage=(0.5, 0.2))
    with pytest.raises(ValueError, match="coverage"):
        random_masks(2, 32, 32, coverage=(0.1, 1.5))
    with pytest.raises(ValueError, match="height"):
        random_masks(2, 0, 32)
    with pytest.raises(ValueError, match="no achievable"):
        random_masks(2, 4, 4, coverage=(0.30, 0.31))  # 16 pixels: 5/16=0.3125 is outside
    assert random_masks(0, 8, 8).shape == (0, 1, 8, 8)


def test_random_mask_module_follows_the_images_and_the_generator():
    images = torch.rand(6, 3, 40, 48, dtype=torch.float64)
    module = RandomMask(coverage=(0.2, 0.4), kind="boxes")
    masks = module(images, generator=gen(9))
    assert masks.shape == (6, 1, 40, 48) and masks.dtype == torch.float64
    direct = random_masks(6, 40, 48, coverage=(0.2, 0.4), kind="boxes", generator=gen(9))
    assert torch.equal(masks.float(), direct)
    fractions = masks.mean(dim=(1, 2, 3))
    assert fractions.min() >= 0.2 and fractions.max() <= 0.4
    held = RandomMask(generator=gen(10))
    assert torch.equal(held(images), RandomMask()(images, generator=gen(10)))
    with pytest.raises(ValueError, match="kind"):
        RandomMask(kind="nope")


def test_apply_mask_fills_holes_and_keeps_known_pixels():
    images = torch.rand(2, 3, 16, 16)
    masks = random_masks(2, 16, 16, coverage=(0.3, 0.5), generator=gen(0))
    out = apply_mask(images, masks, fill=1.0)
    assert torch.equal(out[masks.expand_as(out) == 1], torch.ones(int(masks.sum()) * 3))
    assert torch.equal(out[masks.expand_as(out) == 0], images[masks.expand_as(out) == 0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_masks_rasterised_on_cuda_match_cpu_for_the_same_seed():
    cpu = random_masks(16, 64, 64, generator=gen(11))
    cuda = random_masks(16, 64, 64, generator=gen(11), device="cuda")
    assert cuda.device.type == "cuda"
    # same parameters, rasterised in another place: identical up to a few boundary pixels
    assert (cpu != cuda.cpu()).float().mean().item() < 1e-3
    fractions = cuda.mean(dim=(1, 2, 3))
    assert fractions.min().item() >= 0.1 and fractions.max().item() <= 0.5


# ----------------------------------------------------------------------------- MaskFolder


def write_gray(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), mode="L").save(path)


def test_mask_folder_reads_white_as_hole_binarises_at_half_and_resizes_nearest(tmp_path):
    left = np.zeros((32, 40), np.uint8)
    left[:, :10] = 255  # 25% hole on the left
    left[:, 10:12] = 160  # > 0.5: hole
    left[:, 12:14] = 100  # < 0.5: known
    write_gray(tmp_path / "a.png", left)
    folder = MaskFolder(tmp_path, augment=False)
    assert folder.invert is False and len(folder) == 1
    mask = folder.sample(3, 32, 40, generator=gen(0))
    assert mask.shape == (3, 1, 32, 40) and mask.dtype == torch.float32
    expected = torch.zeros(32, 40)
    expected[:, :12] = 1
    assert torch.equal(mask[0, 0], expected)
    # resized with nearest: still binary, the boundary moves with the scale (12/40 of the width)
    resized = folder.sample(1, 64, 80, generator=gen(0))
    assert set(resized.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(resized[0, 0, 0], (torch.arange(80) < 24).float())


def test_mask_folder_polarity_auto_and_explicit(tmp_path):
    mostly_white = np.full((16, 16), 255, np.uint8)
    mostly_white[4:8, 4:8] = 0  # black hole (16/256) on white: inverted convention
    for i in range(3):
        write_gray(tmp_path / f"m{i}.png", mostly_white)
    auto = MaskFolder(tmp_path, augment=False)
    assert auto.invert is True
    assert auto.sample(1, 16, 16, generator=gen(0)).sum().item() == 16
    forced = MaskFolder(tmp_path, invert=False, augment=False)
    assert forced.sample(1, 16, 16, generator=gen(0)).sum().item() == 256 - 16


def test_mask_folder_uses_only_the_masks_subfolder_and_augments(tmp_path):
    corner = np.zeros((20, 20), np.uint8)
    corner[:5, :5] = 255
    write_gray(tmp_path / "set" / "masks" / "x.png", corner)
    write_gray(tmp_path / "set" / "images" / "x.png", np.full((20, 20), 255, np.uint8))
    folder = MaskFolder(tmp_path, size=20)
    assert [f.name for f in folder.files] == ["x.png"] and folder.files[0].parent.name == "masks"
    masks = folder.sample(64, 20, 20, generator=gen(1))
    assert torch.all(masks.sum(dim=(1, 2, 3)) == 25)
    # flips move the corner square to all four corners
    corners = {(int(m[0, 0, 0]), int(m[0, 0, -1]), int(m[0, -1, 0]), int(m[0, -1, -1])) for m in masks}
    assert len(corners) == 4
    assert torch.equal(folder.sample(8, 20, 20, generator=gen(2)), folder.sample(8, 20, 20, generator=gen(2)))
    images = torch.rand(5, 3, 30, 20)
    assert folder(images, generator=gen(3)).shape == (5, 1, 30, 20)


def test_mask_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        MaskFolder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no mask images"):
        MaskFolder(tmp_path / "empty")


@pytest.mark.skipif(not EDGECONNECT.is_dir(), reason=f"shared data not found at {EDGECONNECT}")
def test_mask_folder_on_edgeconnect_masks_marks_the_painted_holes():
    folder = MaskFolder(EDGECONNECT, augment=False)
    assert len(folder) == 16 and all(f.parent.name == "masks" for f in folder.files)
    assert folder.invert is False  # README: 255 = hole
    from restore.io import read_image

    for index, mask_file in enumerate(folder.files):
        hole = folder._load(index)[0]
        image = read_image(mask_file.parent.parent / "images" / mask_file.name)
        # the corrupted inputs have their hole pixels painted white (a handful are 254), known ones not
        white = (image == 1).all(dim=0)
        assert white[hole].float().mean().item() > 0.999
        assert white[~hole].float().mean().item() < 0.01
        assert 0.1 < hole.float().mean().item() < 0.6
    masks = MaskFolder(EDGECONNECT).sample(8, 96, 128, generator=gen(0))
    assert masks.shape == (8, 1, 96, 128) and set(masks.unique().tolist()) == {0.0, 1.0}
