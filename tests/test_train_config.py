"""Training configs: YAML files, dotted command-line overrides, errors that name the key, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

import losses
import restore.models as models
from restore.train import (
    Config,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)
from restore.train.tasks import build_task

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "recipes" / "configs").glob("*.yaml"))


# ----------------------------------------------------------------------------- YAML files


def test_yaml_values_replace_defaults_and_the_rest_keep_them():
    config = load_config(REPO / "recipes" / "configs" / "sr.yaml")
    assert config.model.name == "compact_tiny" and config.model.args == {"scale": 4}
    assert config.train.lr == 5e-4 and isinstance(config.train.lr, float)
    assert config.train.scheduler == "cosine" and config.train.warmup_steps == 10
    assert config.data.patch_size == 96 and config.data.batch_size == 8
    # keys the file does not set keep the dataclass defaults
    assert config.train.seed == 0 and config.train.max_bad_steps == 10
    assert config.discriminator.name is None
    assert config.output.keep == 3


def test_yaml_losses_replace_the_default_losses_whole():
    # Config() defaults to {"l1": 1.0}; deblur.yaml's charbonnier must not be merged with it
    assert Config().losses == {"l1": 1.0}
    config = load_config(REPO / "recipes" / "configs" / "deblur.yaml")
    assert config.losses == {"charbonnier": 1.0}
    assert losses.build(config.losses).weights == {"charbonnier": 1.0}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_recipe_config_loads_and_names_registered_parts(path):
    config = load_config(path)
    assert isinstance(config, Config)
    spec = models.get_spec(config.model.name)
    assert spec.task in ("sr", "deblur", "inpaint", "audio", "diffusion")
    task = build_task(config.task, config.data.sample_rate)
    assert task.modality == ("audio" if spec.task == "audio" else "image")
    assert task.name == config.task.name
    if task.name == "sr":
        assert models.build(config.model.name, **config.model.args).spec.scale == config.task.scale
    if config.discriminator.name is not None:
        assert models.get_spec(config.discriminator.name).task == "discriminator"
    assert isinstance(config.losses, dict) and config.losses
    assert config.output.save_every > 0 and config.validation.every > 0


def test_every_recipe_config_is_listed():
    names = {p.name for p in CONFIGS}
    assert names >= {"sr.yaml", "sr_gan.yaml", "realesrgan.yaml", "inpaint.yaml", "deblur.yaml"}
    assert names >= {"audio_denoise.yaml", "audio_denoise_gan.yaml", "audio_bandwidth.yaml"}


def test_missing_file_and_non_mapping_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_config(bad)


def test_unknown_key_in_a_file_names_it_with_a_suggestion(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("train:\n  stpes: 3\n")
    with pytest.raises(KeyError, match=r"train\.stpes.*Did you mean 'steps'"):
        load_config(path)


def test_exponent_floats_in_a_file(tmp_path):
    # "2e-4" is how people write learning rates; YAML 1.1 (PyYAML) reads it as a string
    path = tmp_path / "lr.yaml"
    path.write_text("train:\n  lr: 2e-4\nlosses:\n  l1: 1e-2\n")
    config = load_config(path)
    assert config.train.lr == pytest.approx(2e-4)
    assert losses.build(config.losses).weights == {"l1": pytest.approx(1e-2)}


# ----------------------------------------------------------------------------- overrides


def test_override_exponent_float():
    config = load_config(None, ["--train.lr", "2e-4"])
    assert config.train.lr == pytest.approx(2e-4)


def test_override_values_are_parsed_as_yaml():
    config = load_config(
        REPO / "recipes" / "configs" / "sr.yaml",
        [
            "--train.lr", "0.0003",
            "--train.steps=50",
            "--train.milestones", "[10, 20]",
            "--train.betas=[0.5, 0.9]",
            "--output.progress", "false",
            "--train.ema_decay", "null",
            "--model.args.scale", "2",
            "--task.scale", "2",
            "--data.train", "/data/hr",
        ],
    )
    assert config.train.lr == 3e-4
    assert config.train.steps == 50
    assert config.train.milestones == [10, 20]
    assert config.train.betas == [0.5, 0.9] and all(isinstance(b, float) for b in config.train.betas)
    assert config.output.progress is False
    assert config.train.ema_decay is None
    assert config.model.args == {"scale": 2}
    assert config.task.scale == 2
    assert config.data.train == "/data/hr"
    # untouched values keep the file's
    assert config.train.scheduler == "cosine" and config.model.name == "compact_tiny"


def test_an_integer_for_a_float_field_becomes_a_float():
    config = load_config(None, ["--train.lr", "1"])
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)


def test_the_last_override_wins():
    assert load_config(None, ["--train.steps", "5", "--train.steps", "7"]).train.steps == 7


def test_override_a_bare_loss_weight_turns_it_into_a_mapping():
    config = load_config(None, ["--losses.l1.weight", "0.1"])
    assert config.losses == {"l1": {"weight": 0.1}}
    assert losses.build(config.losses).weights == {"l1": 0.1}


def test_override_adds_loss_terms_and_their_arguments():
    config = load_config(None, ["--losses.ssim.weight", "0.2", "--losses.ssim.window_size", "7"])
    assert config.losses == {"l1": 1.0, "ssim": {"weight": 0.2, "window_size": 7}}
    loss_set = losses.build(config.losses)
    assert loss_set.weights == {"l1": 1.0, "ssim": 0.2}


def test_override_of_a_whole_loss_mapping():
    config = load_config(None, ["--losses", "{charbonnier: 1.0, ssim: 0.5}"])
    assert config.losses == {"charbonnier": 1.0, "ssim": 0.5}


def test_override_mapping_form():
    data = apply_overrides(config_to_dict(Config()), {"train.lr": 1e-3, "discriminator.name": "patchgan"})
    config = config_from_dict(data)
    assert config.train.lr == 1e-3 and config.discriminator.name == "patchgan"


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["--train.lrr", "1"], r"unknown config key 'train\.lrr'.*Did you mean 'lr'"),
        (["--trian.lr", "1"], r"unknown config key 'trian'.*Did you mean 'train'"),
        (["--discriminator.updte_every", "2"], r"Did you mean 'update_every'"),
        (["--output.dirr=x"], r"Did you mean 'dir'"),
    ],
)
def test_unknown_override_keys_suggest_the_right_one(overrides, pattern):
    with pytest.raises(KeyError, match=pattern):
        load_config(None, overrides)


def test_unknown_dict_key_suggests():
    with pytest.raises(KeyError, match=r"output\.dirr.*Did you mean 'dir'"):
        config_from_dict({"output": {"dirr": "x"}})


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["--train.steps", "abc"], r"config 'train\.steps' must be an integer, got 'abc'"),
        (["--output.keep", "1.5"], r"config 'output\.keep' must be an integer"),
        (["--train.lr", "true"], r"config 'train\.lr'"),
        (["--train.betas", "0.9"], r"config 'train\.betas' must be a list"),
        (["--output.progress", "yes please"], r"config 'output\.progress' must be true or false"),
        (["--model.args", "3"], r"config 'model\.args' must be a mapping"),
        (["--model.name", "7"], r"config 'model\.name' must be a string"),
        (["--train", "3"], r"config section 'train' must be a mapping"),
    ],
)
def test_type_errors_name_the_key(overrides, pattern):
    with pytest.raises(TypeError, match=pattern):
        load_config(None, overrides)


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["train.lr", "1"], "expected an option like --section.key VALUE"),
        (["--train.lr"], "needs a value"),
    ],
)
def test_malformed_override_lists(overrides, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_config(None, overrides)


# ----------------------------------------------------------------------------- round trips


def test_save_then_load_round_trips(tmp_path):
    config = load_config(
        REPO / "recipes" / "configs" / "inpaint.yaml",
        ["--train.milestones", "[5, 9]", "--train.ema_decay", "null", "--output.resume", "latest",
         "--losses.gan.weight", "0.5", "--data.train", "[a, b]"],
    )
    path = save_config(config, tmp_path / "run" / "config.yaml")
    assert path == tmp_path / "run" / "config.yaml" and path.is_file()
    again = load_config(path)
    assert again == config
    assert again.losses["hole_l1"] == {"name": "l1", "weight": 3.0, "inputs": {"weight": "mask"}}
    assert again.data.train == ["a", "b"]
    assert config_to_dict(again) == config_to_dict(config)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_recipe_config_round_trips(path, tmp_path):
    config = load_config(path)
    assert load_config(save_config(config, tmp_path / "config.yaml")) == config
