"""The recipe scripts: a few steps of each on the bundled samples, their files, and validation numbers."""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import isolated_training

import restore.models as models
from restore.io import read_image
from restore.train import load_config
from restore.train.recipe import parse_recipe_args
from restore.train.tasks import build_task
from restore.train.validation import build_validation_set

REPO = Path(__file__).resolve().parents[1]
COMMON = [
    "--data.batch_size", "2",
    "--validation.every", "0",
    "--validation.max_images", "2",
    "--validation.max_side", "64",
    "--output.progress", "false",
    "--output.tracker", "none",
]
# recipe -> (its own options, steps, generator, validation metrics, terms dropped without VGG weights)
RECIPES = {
    "sr": (["--steps", "3", "--data.patch_size", "32"], 3, "compact_tiny", {"psnr_y", "ssim_y"}, []),
    "sr_gan": (["--pretrain-steps", "2", "--steps", "2", "--data.patch_size", "128"], 2, "compact_tiny",
               {"psnr_y", "ssim_y"}, ["perceptual"]),
    "inpaint": (["--steps", "2", "--data.patch_size", "64"], 2, "lama_small", {"psnr", "ssim"},
                ["perceptual"]),
    "deblur": (["--steps", "2", "--data.patch_size", "32"], 2, "nafnet_small", {"psnr", "ssim"}, []),
}


def vgg19_weights_present() -> bool:
    from losses.perceptual import torchvision_weights_path

    return torchvision_weights_path("vgg19").is_file()


def load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", REPO / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_recipe(name: str, out: Path):
    """Run recipe ``name`` into ``out``; returns (result, argv, warning messages)."""
    argv = ["--output", str(out), *RECIPES[name][0], *COMMON]
    with isolated_training(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load_recipe(name).main(argv)
    return result, argv, [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each recipe run once per module, on demand."""
    done: dict[str, tuple] = {}

    def get(name: str):
        if name not in done:
            out = tmp_path_factory.mktemp(name) / "run"
            done[name] = (out, *run_recipe(name, out))
        return done[name]

    return get


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_trains_and_writes_its_files(name, runs):
    out, result, argv, messages = runs(name)
    _, steps, model_name, metric_names, droppable = RECIPES[name]
    assert result.step == steps and result.skipped_steps == 0
    assert result.weights == out / "model.safetensors"

    # the weights load back as the right architecture, and run
    model = models.load(result.weights)
    assert model.spec.name == model_name
    from restore.models import example_inputs

    inputs = example_inputs(model, 1, 32)
    with torch.no_grad():
        output = model(*inputs)
    assert output.shape[-1] == inputs[0].shape[-1] * model.spec.scale
    assert torch.isfinite(output).all()

    # validation metrics of the standard protocol, finite, also in metrics.jsonl
    assert set(result.metrics) == metric_names
    assert all(math.isfinite(v) for v in result.metrics.values())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val = [row for row in rows if any(k.startswith("val/") for k in row)]
    assert val[-1]["step"] == steps
    assert {k[4:]: v for k, v in val[-1].items() if k.startswith("val/")} == pytest.approx(result.metrics)

    # a sample grid: rows of input | output | target, 128 px tiles with 2 px padding, 2 images
    grid = read_image(out / "samples" / f"step-{steps:07d}.png")
    assert grid.shape == (3, 2 * 130 + 2, 3 * 130 + 2)

    # a complete checkpoint at the last step
    state = json.loads((out / "checkpoints" / f"checkpoint-{steps}" / "trainer_state.json").read_text())
    assert state["step"] == steps

    # config.yaml is the run's resolved config: the command line, minus terms left out without weights
    extra = getattr(load_recipe(name), "_options", None)  # sr_gan's --pretrain-steps
    expected, _ = parse_recipe_args(argv, REPO / "recipes" / "configs" / f"{name}.yaml", "", extra=extra)
    dropped = [m for m in messages if "is left out because its pretrained weights" in m]
    if vgg19_weights_present():
        assert not dropped
    else:
        assert [label for label in droppable if any(f"'{label}'" in m for m in dropped)] == droppable
        assert len(dropped) == len(droppable)
        for label in droppable:
            del expected.losses[label]
    if name == "sr_gan":
        expected.model.weights = str(out / "pretrain" / "model.safetensors")
    assert load_config(out / "config.yaml") == expected


def test_sr_gan_runs_a_psnr_stage_first(runs):
    out, result, argv, _ = runs("sr_gan")
    stage = load_config(out / "pretrain" / "config.yaml")
    assert stage.losses == {"l1": 1.0}
    assert stage.discriminator.name is None
    assert stage.train.steps == 2 and stage.output.dir == str(out / "pretrain")
    assert models.load(out / "pretrain" / "model.safetensors").spec.name == "compact_tiny"
    # the GAN stage trained the discriminator too: its losses are in the log
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("d/gan" in row and "g/gan" in row for row in rows)
    stage_rows = [json.loads(line) for line in (out / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert any("g/l1" in row for row in stage_rows)
    assert not any("g/gan" in row or "d/total" in row for row in stage_rows)


@pytest.mark.skipif(vgg19_weights_present(), reason="VGG19 ImageNet weights are in torch.hub's cache")
def test_sr_gan_on_real_data_needs_the_vgg_weights(tmp_path):
    from losses.perceptual import WeightsNotFoundError
    from restore.data import sample_images_dir

    argv = ["--output", str(tmp_path), "--data", str(sample_images_dir()), "--pretrain-steps", "0",
            "--steps", "1", "--data.patch_size", "128", *COMMON]
    with isolated_training(), pytest.raises(WeightsNotFoundError, match="vgg19"):
        load_recipe("sr_gan").main(argv)


def _y_8bit(image: torch.Tensor) -> np.ndarray:
    """BT.601 luma (MATLAB rgb2ycbcr) of an image (1, 3, H, W) in [0, 1] saved as 8 bits, on 0..255."""
    values = np.floor(image[0].double().numpy().clip(0, 1) * 255.0 + 0.5)
    r, g, b = values
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def test_validation_scores_follow_the_sr_protocol(runs):
    """PSNR-Y/SSIM-Y of validation, recomputed with scikit-image from the exported (EMA) model's outputs."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    out, result, argv, _ = runs("sr")
    config = load_config(out / "config.yaml")
    model = models.load(result.weights).eval()
    task = build_task(config.task)
    pairs = build_validation_set(config.validation, task, model.spec.size_multiple)
    assert len(pairs) == 2
    crop = config.task.scale
    psnrs, ssims = [], []
    for pair in pairs:
        assert pair.target.shape[-1] == pair.input.shape[-1] * 4 and max(pair.target.shape[-2:]) <= 64
        with torch.no_grad():
            pred = model(pair.input).clamp(0, 1)
        a = _y_8bit(pred)[crop:-crop, crop:-crop]
        b = _y_8bit(pair.target)[crop:-crop, crop:-crop]
        psnrs.append(peak_signal_noise_ratio(b, a, data_range=255))
        ssims.append(structural_similarity(b, a, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False, data_range=255))
    assert result.metrics["psnr_y"] == pytest.approx(np.mean(psnrs), abs=1e-3)
    assert result.metrics["ssim_y"] == pytest.approx(np.mean(ssims), abs=1e-4)


def test_recipe_command_line():
    config_path = REPO / "recipes" / "configs" / "sr.yaml"
    config, args = parse_recipe_args(["--steps", "5", "--resume", "--train.lr=1e-3"], config_path, "")
    assert config.train.steps == 5 and config.output.resume == "latest" and config.train.lr == 1e-3
    # shortcuts first, then dotted overrides
    config, _ = parse_recipe_args(["--train.steps", "7", "--steps", "5"], config_path, "")
    assert config.train.steps == 7
    config, _ = parse_recipe_args(["--data", "/x", "--val", "/y", "--output", "/z"], config_path, "")
    assert (config.data.train, config.validation.data, config.output.dir) == ("/x", "/y", "/z")
    with pytest.raises(SystemExit):
        parse_recipe_args(["--stpes", "5"], config_path, "")
    # a whole free-form section replaces the YAML's (a loss set without the file's terms)
    losses = "{l1: 1.0, hole_l1: {name: l1, weight: 3.0, inputs: {weight: mask}}}"
    config, _ = parse_recipe_args(["--losses", losses], config_path, "")
    hole_l1 = {"name": "l1", "weight": 3.0, "inputs": {"weight": "mask"}}
    assert config.losses == {"l1": 1.0, "hole_l1": hole_l1}
    gan_path = REPO / "recipes" / "configs" / "sr_gan.yaml"
    config, _ = parse_recipe_args(["--discriminator.name", "null"], gan_path, "")
    assert config.discriminator.name is None
