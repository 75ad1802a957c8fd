"""recipes/audio_enhance.py: a few steps of each audio config on the built-in sample, and its files."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import soundfile as sf
import torch
from train_helpers import isolated_training

import restore.models as models
from restore.train import load_config
from restore.train.recipe import parse_recipe_args

REPO = Path(__file__).resolve().parents[1]
COMMON = [
    "--data.batch_size", "2",
    "--data.segment_seconds", "0.5",
    "--validation.max_images", "1",
    "--validation.max_seconds", "1.0",
    "--output.progress", "false",
    "--output.tracker", "none",
]  # fmt: skip
# case -> (options, generator, discriminator, validation metrics)
CASES = {
    "denoise": ([], "spectral_mask", None, {"si_sdr", "si_sdr_gain", "pesq_wb", "stoi"}),
    "bandwidth": (
        ["--task", "bandwidth", "--discriminator.start_step", "0"],
        "aero",
        "msstft_discriminator_small",
        {"si_sdr", "si_sdr_gain", "lsd"},
    ),
    "gan": (
        ["--config", str(REPO / "recipes" / "configs" / "audio_denoise_gan.yaml")],
        "demucs_small",
        "mpd_small",
        {"si_sdr", "si_sdr_gain", "pesq_wb", "stoi"},
    ),
}


def load_recipe():
    path = REPO / "recipes" / "audio_enhance.py"
    spec = importlib.util.spec_from_file_location("recipe_audio_enhance", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("case", list(CASES))
def test_audio_recipe_trains_and_writes_its_files(case, tmp_path):
    options, generator, discriminator, metric_names = CASES[case]
    out = tmp_path / "run"
    argv = ["--output", str(out), "--steps", "2", "--validation.every", "2", *options, *COMMON]
    with isolated_training():
        result = load_recipe().main(argv)
    assert result.step == 2 and result.skipped_steps == 0
    model = models.load(result.weights)
    assert model.spec.name == generator and model.spec.task == "audio"
    with torch.no_grad():
        output = model(torch.zeros(1, 1, 1234))
    assert output.shape == (1, 1, 1234)

    assert set(result.metrics) == metric_names
    assert all(math.isfinite(v) for v in result.metrics.values())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    if discriminator is not None:
        assert any("d/total" in row for row in rows)
    samples = out / "samples" / "step-0000002"
    wavs = sorted(p.name for p in samples.iterdir())
    assert wavs == ["sample0_input.wav", "sample0_output.wav", "sample0_target.wav"]
    assert sf.info(samples / wavs[0]).samplerate == 16000

    config = load_config(out / "config.yaml")
    assert config.discriminator.name == discriminator
    task_config = "audio_bandwidth" if case == "bandwidth" else "audio_denoise"
    default = REPO / "recipes" / "configs" / f"{task_config}.yaml"
    expected, _ = parse_recipe_args(argv, default, "", extra=load_recipe()._task_option)
    assert config == expected
