"""Datasets: crops are real crops, reproducible across worker counts, epochs change them, bad files
raise or are skipped with a warning, paired folders align and reject mismatches, sample images."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from restore.data import CleanImageFolder, PairedImageFolder, sample_image, sample_images_dir, sample_names
from restore.io import ImageReadError, read_image, write_image

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SET5 = SHARED_DATA / "images" / "Set5"
GOPRO = SHARED_DATA / "images" / "GoPro_samples"


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """Five natural RGB images of different sizes (and one grayscale) in a folder."""
    import skimage.data

    folder = tmp_path_factory.mktemp("images")
    sources = {
        "a_astronaut.png": skimage.data.astronaut()[100:160, 180:250],
        "b_chelsea.png": skimage.data.chelsea()[60:124, 150:206],
        "c_coffee.jpg": skimage.data.coffee()[100:150, 200:270],
        "d_rocket.png": skimage.data.rocket()[200:248, 250:298],
        "e_camera.png": skimage.data.camera()[200:256, 200:260],  # grayscale
    }
    for name, array in sources.items():
        tensor = torch.from_numpy(array.astype(np.float32) / 255)
        tensor = tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)
        write_image(folder / name, tensor, quality=95)
    return folder


def find_crop(image: torch.Tensor, patch: torch.Tensor) -> list[tuple[int, int]]:
    """All (top, left) where ``patch`` equals a crop of ``image`` exactly."""
    ph, pw = patch.shape[-2:]
    windows = image.unfold(1, ph, 1).unfold(2, pw, 1)  # (C, rows, cols, ph, pw)
    equal = (windows == patch[:, None, None]).flatten(3).all(-1).all(0)
    return [tuple(ix) for ix in equal.nonzero().tolist()]


def dihedral(x: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for t in (x, x.transpose(-2, -1)):
        out += [t, t.flip(-1), t.flip(-2), t.flip(-2, -1)]
    return out


def batches(loader: DataLoader) -> list[dict]:
    return list(loader)


# ----------------------------------------------------------------------------- CleanImageFolder


def test_items_are_exact_crops_of_the_source_images(image_folder):
    ds = CleanImageFolder(image_folder, 32, augment=False, seed=3)
    assert len(ds) == 5
    for index in range(len(ds)):
        item = ds[index]
        assert item["target"].shape == (3, 32, 32) and item["target"].dtype == torch.float32
        assert isinstance(item["path"], str) and isinstance(item["seed"], int)
        source = read_image(item["path"])
        assert len(find_crop(source, item["target"])) >= 1
    rect = CleanImageFolder(image_folder, (24, 40), scale=4, augment=True)
    assert all(rect[i]["target"].shape == (3, 24, 40) for i in range(len(rect)))


def test_augmented_items_are_a_rotation_or_reflection_of_a_crop(image_folder):
    ds = CleanImageFolder(image_folder, 16, augment=True, seed=5)
    seen_transforms = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for index in range(len(ds)):
            item = ds[index]
            source = read_image(item["path"])
            matches = [k for k, t in enumerate(dihedral(item["target"])) if find_crop(source, t)]
            assert matches, f"item {index} is not a transformed crop of {item['path']}"
            seen_transforms.update(matches)
    assert len(seen_transforms) >= 5  # the 8 dihedral transforms occur


def test_loaders_with_0_and_2_workers_give_identical_batches(image_folder):
    def run(workers: int) -> list[dict]:
        ds = CleanImageFolder(image_folder, 24, seed=11, repeat=2)
        ds.set_epoch(3)
        return batches(DataLoader(ds, batch_size=3, num_workers=workers))

    serial, parallel = run(0), run(2)
    assert len(serial) == len(parallel) == 4
    for a, b in zip(serial, parallel, strict=True):
        assert torch.equal(a["target"], b["target"])
        assert torch.equal(a["seed"], b["seed"]) and a["path"] == b["path"]


def test_set_epoch_changes_crops_and_reaches_persistent_workers(image_folder):
    ds = CleanImageFolder(image_folder, 24, seed=1)
    epoch0 = torch.stack([ds[i]["target"] for i in range(len(ds))])
    seeds0 = [ds[i]["seed"] for i in range(len(ds))]
    ds.set_epoch(1)
    epoch1 = torch.stack([ds[i]["target"] for i in range(len(ds))])
    assert not torch.equal(epoch0, epoch1)
    assert seeds0 != [ds[i]["seed"] for i in range(len(ds))]
    ds.set_epoch(0)
    assert torch.equal(torch.stack([ds[i]["target"] for i in range(len(ds))]), epoch0)
    other_seed = CleanImageFolder(image_folder, 24, seed=2)
    assert not torch.equal(torch.stack([other_seed[i]["target"] for i in range(len(ds))]), epoch0)

    persistent = CleanImageFolder(image_folder, 24, seed=1)
    loader = DataLoader(persistent, batch_size=5, num_workers=2, persistent_workers=True)
    assert torch.equal(next(iter(loader))["target"], epoch0)
    persistent.set_epoch(1)  # the workers already exist; the epoch reaches them through shared memory
    assert torch.equal(next(iter(loader))["target"], epoch1)


def test_repeat_and_cache(image_folder):
    ds = CleanImageFolder(image_folder, 24, repeat=3, seed=4)
    assert len(ds) == 15
    assert ds[1]["path"] == ds[6]["path"] == ds[11]["path"]
    assert not torch.equal(ds[1]["target"], ds[6]["target"])
    cached = CleanImageFolder(image_folder, 24, repeat=3, seed=4, cache=True)
    for i in range(len(ds)):
        assert torch.equal(cached[i]["target"], ds[i]["target"])
    assert len(cached._images) == 5
    with pytest.raises(IndexError):
        ds[15]


def test_whole_images_are_cropped_to_a_multiple_of_the_scale(image_folder):
    ds = CleanImageFolder(image_folder, None, scale=4, augment=False)
    for i in range(len(ds)):
        target = ds[i]["target"]
        source = read_image(ds[i]["path"])
        h, w = source.shape[-2:]
        assert target.shape == (3, h - h % 4, w - w % 4)
        assert torch.equal(target, source[:, : h - h % 4, : w - w % 4])


def test_degradation_is_applied_per_item_with_a_generator_seeded_by_the_item_seed(image_folder):
    def degrade(clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        assert clean.ndim == 4 and clean.shape[0] == 1
        noise = torch.randn(clean.shape, generator=generator)
        return F.avg_pool2d(clean, 2) + 0.1 * F.avg_pool2d(noise, 2)

    ds = CleanImageFolder(image_folder, 32, scale=2, degradation=degrade, seed=9)
    item = ds[2]
    assert item["input"].shape == (3, 16, 16)
    expected = degrade(item["target"][None], torch.Generator().manual_seed(item["seed"]))[0]
    assert torch.equal(item["input"], expected)
    assert torch.equal(ds[2]["input"], item["input"])


def test_construction_errors_are_clear(image_folder, tmp_path):
    with pytest.raises(ValueError, match="multiple of scale=4"):
        CleanImageFolder(image_folder, 30, scale=4)
    with pytest.raises(ValueError, match="on_error"):
        CleanImageFolder(image_folder, 32, on_error="ignore")
    with pytest.raises(ValueError, match="patch_size"):
        CleanImageFolder(image_folder, 0)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match="no images found in .*empty"):
        CleanImageFolder(tmp_path / "empty", 32)
    with pytest.raises(FileNotFoundError, match="missing"):
        CleanImageFolder(tmp_path / "missing", 32)


@pytest.fixture()
def folder_with_bad_files(image_folder, tmp_path) -> Path:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for path in sorted(image_folder.iterdir())[:3]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "b_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    write_image(folder / "b_small.png", torch.rand(3, 12, 50))
    return folder


def test_on_error_raise_names_the_unreadable_or_too_small_file(folder_with_bad_files):
    ds = CleanImageFolder(folder_with_bad_files, 32, on_error="raise")
    names = [Path(p).name for p in ds.files]
    assert names == ["a_astronaut.png", "b_chelsea.png", "b_corrupt.png", "b_small.png", "c_coffee.jpg"]
    with pytest.raises(ImageReadError, match="b_corrupt.png"):
        ds[2]
    with pytest.raises(ValueError, match=r"b_small.png' is 12x50 .*smaller than the patch 32x32"):
        ds[3]
    loader = DataLoader(ds, batch_size=5, num_workers=0)
    with pytest.raises(ImageReadError, match="b_corrupt.png"):
        next(iter(loader))


def test_on_error_skip_warns_with_the_file_and_uses_another_image(folder_with_bad_files):
    ds = CleanImageFolder(folder_with_bad_files, 32, on_error="skip", seed=2)
    with pytest.warns(RuntimeWarning) as record:
        items = [ds[i] for i in range(len(ds))]
    messages = [str(w.message) for w in record]
    assert any("b_corrupt.png" in m and "cannot read image" in m for m in messages)
    assert any("b_small.png" in m and "smaller than the patch" in m for m in messages)
    # the bad items are replaced by the next good file in sorted order
    assert [Path(item["path"]).name for item in items] == [
        "a_astronaut.png",
        "b_chelsea.png",
        "c_coffee.jpg",
        "c_coffee.jpg",
        "c_coffee.jpg",
    ]
    assert all(item["target"].shape == (3, 32, 32) for item in items)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # bad files are remembered: no second warning, no re-read
        ds[2]
    # with workers, the same items come out
    loaded = next(iter(DataLoader(ds, batch_size=5, num_workers=2)))
    assert torch.equal(loaded["target"], torch.stack([item["target"] for item in items]))


# ----------------------------------------------------------------------------- PairedImageFolder


def make_sr_layout(root: Path, scale: int, sizes: dict[str, tuple[int, int]]) -> None:
    """HR images and LR = exact average pooling of the top-left modcrop (so alignment is checkable)."""
    (root / "HR").mkdir(parents=True)
    (root / "LR_bicubic" / f"X{scale}").mkdir(parents=True)
    for i, (name, (h, w)) in enumerate(sizes.items()):
        hr = torch.rand(3, h, w, generator=torch.Generator().manual_seed(i))
        hr = (hr * 255).round() / 255
        write_image(root / "HR" / f"{name}.png", hr)
        lr = F.avg_pool2d(hr[None, :, : h - h % scale, : w - w % scale], scale)[0]
        write_image(root / "LR_bicubic" / f"X{scale}" / f"{name}.png", lr)


def test_paired_sr_layout_crops_the_target_top_left_and_aligns(tmp_path):
    make_sr_layout(tmp_path, 3, {"one": (31, 40), "two": (27, 29)})
    ds = PairedImageFolder(tmp_path, 3)
    assert len(ds) == 2 and ds.names == ["one", "two"]
    item = ds[0]
    assert item["name"] == "one"
    assert item["input"].shape == (3, 10, 13) and item["target"].shape == (3, 30, 39)
    hr = read_image(tmp_path / "HR" / "one.png")
    assert torch.equal(item["target"], hr[:, :30, :39])
    assert torch.allclose(F.avg_pool2d(item["target"][None], 3)[0], item["input"], atol=0.5 / 255 + 1e-6)
    assert ds[1]["target"].shape == (3, 27, 27) and ds[1]["input"].shape == (3, 9, 9)


def test_paired_patches_are_aligned_and_reproducible(tmp_path):
    make_sr_layout(tmp_path, 2, {"big": (64, 80)})
    ds = PairedImageFolder(tmp_path, 2, patch_size=16, augment=True, seed=1)
    seen = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        item = ds[0]
        assert item["input"].shape == (3, 8, 8) and item["target"].shape == (3, 16, 16)
        assert torch.allclose(F.avg_pool2d(item["target"][None], 2)[0], item["input"], atol=0.5 / 255 + 1e-6)
        seen.add(item["target"].numpy().tobytes())
    assert len(seen) == 6
    assert torch.equal(ds[0]["target"], ds[0]["target"])
    with pytest.raises(ValueError, match="multiple of scale=2"):
        PairedImageFolder(tmp_path, 2, patch_size=15)


def test_paired_errors_name_the_file(tmp_path):
    make_sr_layout(tmp_path / "a", 2, {"x": (20, 20), "y": (20, 20)})
    (tmp_path / "a" / "HR" / "y.png").unlink()
    with pytest.raises(ValueError, match=r"input file .*X2/y.png' has no target"):
        PairedImageFolder(tmp_path / "a", 2)
    make_sr_layout(tmp_path / "b", 2, {"x": (20, 20)})
    write_image(tmp_path / "b" / "HR" / "extra.png", torch.rand(3, 20, 20))
    with pytest.raises(ValueError, match=r"target file .*HR/extra.png' has no input"):
        PairedImageFolder(tmp_path / "b", 2)
    make_sr_layout(tmp_path / "c", 2, {"x": (20, 20)})
    write_image(tmp_path / "c" / "HR" / "x.png", torch.rand(3, 24, 20))
    pattern = r"size mismatch: input '.*X2/x.png' is 10x10 .* target '.*HR/x.png' is 24x20"
    with pytest.raises(ValueError, match=pattern):
        PairedImageFolder(tmp_path / "c", 2)
    ds = PairedImageFolder(tmp_path / "c", 2, check_sizes=False)  # caught when the item is read
    with pytest.raises(ValueError, match="size mismatch"):
        ds[0]
    with pytest.raises(FileNotFoundError, match="X4"):
        PairedImageFolder(tmp_path / "a", 4)


def test_paired_same_size_folders(tmp_path):
    for name in ("p", "q"):
        for role in ("blur", "sharp"):
            (tmp_path / role).mkdir(exist_ok=True)
            write_image(tmp_path / role / f"{name}.png", torch.rand(3, 18, 22))
    ds = PairedImageFolder(tmp_path, input_dir="blur", target_dir="sharp")
    item = ds[1]
    assert item["name"] == "q"
    assert torch.equal(item["input"], read_image(tmp_path / "blur" / "q.png"))
    assert torch.equal(item["target"], read_image(tmp_path / "sharp" / "q.png"))
    write_image(tmp_path / "sharp" / "q.png", torch.rand(3, 18, 23))
    with pytest.raises(ValueError, match=r"size mismatch.*blur/q.png.*sharp/q.png"):
        PairedImageFolder(tmp_path, input_dir="blur", target_dir="sharp")


@pytest.mark.skipif(not SET5.is_dir(), reason=f"shared data not found at {SET5}")
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_set5_pairs_follow_the_benchmark_modcrop(scale):
    ds = PairedImageFolder(SET5, scale)
    assert ds.names == ["baby", "bird", "butterfly", "head", "woman"]
    for item in ds:
        lr, hr = item["input"], item["target"]
        assert hr.shape[-2:] == (lr.shape[-2] * scale, lr.shape[-1] * scale)
        full = read_image(SET5 / "HR" / f"{item['name']}.png")
        assert torch.equal(hr, full[:, : lr.shape[-2] * scale, : lr.shape[-1] * scale])
        # aligned: box-downscaled HR is closest to LR without a shift
        down = F.avg_pool2d(hr[None], scale)[0]
        aligned = (down - lr).abs().mean().item()
        shifted = (down[:, 1:, 1:] - lr[:, :-1, :-1]).abs().mean().item()
        assert aligned < 0.03 and aligned < shifted


@pytest.mark.skipif(not GOPRO.is_dir(), reason=f"shared data not found at {GOPRO}")
def test_gopro_blur_sharp_pairs():
    ds = PairedImageFolder(GOPRO, input_dir="blur", target_dir="sharp", patch_size=64, augment=True)
    assert ds.names == ["Flower", "Istanbul"]
    item = ds[0]
    assert item["input"].shape == item["target"].shape == (3, 64, 64)
    # a blurred crop has less high-frequency energy than its sharp counterpart
    def detail(x: torch.Tensor) -> float:
        return (x[:, 1:, :] - x[:, :-1, :]).abs().mean().item()

    full = PairedImageFolder(GOPRO, input_dir="blur", target_dir="sharp")[0]
    assert full["input"].shape == full["target"].shape == (3, 720, 1280)
    assert detail(full["input"]) < detail(full["target"])


# ----------------------------------------------------------------------------- sample images


def test_sample_images_load_and_are_small_and_licensed():
    names = sample_names()
    assert names == ["astronaut", "chelsea", "coffee", "hubble", "rocket"]
    folder = sample_images_dir()
    files = [p for p in folder.iterdir() if p.suffix in (".png", ".jpg")]
    assert sum(p.stat().st_size for p in files) < 400_000
    licence = (folder / "LICENSE.md").read_text()
    for path in files:
        assert path.name in licence
    for name in names:
        image = sample_image(name)
        assert image.dtype == torch.float32 and image.shape[0] == 3
        assert max(image.shape[-2:]) <= 256 and image.shape[-1] % 8 == 0 and image.shape[-2] % 8 == 0
        assert 0 <= image.min().item() and image.max().item() <= 1 and image.std().item() > 0.05
    with pytest.raises(ValueError, match="available"):
        sample_image("lena")


def test_astronaut_sample_is_the_scikit_image_astronaut_at_half_size():
    import skimage.data

    source = torch.from_numpy(skimage.data.astronaut().astype(np.float32) / 255).permute(2, 0, 1)
    reference = F.avg_pool2d(source[None], 2)[0]
    sample = sample_image("astronaut")
    mse = ((sample - reference) ** 2).mean().item()
    assert 10 * np.log10(1 / mse) > 30  # same picture (Lanczos vs box downscaling differ slightly)


def test_sample_folder_works_as_a_training_folder():
    ds = CleanImageFolder(sample_images_dir(), 64, scale=4)
    assert len(ds) == 5 and ds[0]["target"].shape == (3, 64, 64)
