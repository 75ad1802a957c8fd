"""Diffusion training in the shared trainer: the `denoising` loss entry, DiffusionTask pairs, steps,
resume, validation by sampling, the recipe, and the errors for mismatched models and tasks.

Every run is a tiny SR3 UNet (281k parameters) on 32-64 px patches of the bundled samples.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from train_helpers import isolated_training, recording_trainer, reset_accelerate, state_dicts, tiny_config

import losses
import restore.models as models
from restore import metrics
from restore.diffusion import (
    DiffusionObjective,
    denoising_loss,
    min_snr_weights,
    p2_weights,
    repaint,
    sample_inpaint_conditional,
    sample_sr,
    scheduled_huber_c,
)
from restore.models.sr3 import sr_condition
from restore.train import TaskConfig, load_config
from restore.train.config import DIFFUSION_DEFAULTS
from restore.train.recipe import parse_recipe_args
from restore.train.tasks import DiffusionTask, build_task
from restore.train.validation import build_validation_set, evaluate

REPO = Path(__file__).resolve().parents[1]
SR = {
    "model__name": "sr3_x4_tiny",
    "task__name": "diffusion_sr",
    "data__patch_size": 32,
    "task__diffusion": {"sample_steps": 2},
    "validation__lpips": False,
}


@pytest.fixture(autouse=True)
def _isolated():
    with isolated_training():
        yield


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str = "") -> float:
    keys = [k for k in a if k.startswith(prefix)]
    assert keys and set(keys) == {k for k in b if k.startswith(prefix)}
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in keys)


def patches(size: int = 32, n: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch of the bundled samples as the trainer's loader gives it (targets and per-item seeds)."""
    from train_helpers import sample_patches

    dataset = sample_patches(size, 4, seed=seed)
    return torch.utils.data.default_collate([dataset[i] for i in range(n)])


# ----------------------------------------------------------------------------- the loss entry


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("weighting", [None, "p2", "min_snr"])
@pytest.mark.parametrize("loss_type", ["l2", "l1", "huber"])
def test_denoising_entry_equals_denoising_loss(loss_type, weighting, prediction_type):
    objective = DiffusionObjective(prediction_type=prediction_type)
    gen = torch.Generator().manual_seed(0)
    output, target = torch.randn(2, 4, 3, 8, 8, generator=gen)
    t = torch.tensor([0, 10, 500, 999])
    expected = denoising_loss(
        output, target, t, objective, loss_type, weighting, p2_gamma=0.5, p2_k=2.0, min_snr_gamma=3.0,
        huber_c=0.2, huber_schedule="exponential",
    )
    values = {"model_output": output, "model_target": target}
    if weighting == "p2":
        values["timestep_weight"] = p2_weights(t, objective, 0.5, 2.0)
    elif weighting == "min_snr":
        values["timestep_weight"] = min_snr_weights(t, objective, 3.0)
    if loss_type == "huber":
        values["huber_c"] = scheduled_huber_c(t, objective, 0.2, "exponential")
    total, terms = losses.build({"denoising": {"loss_type": loss_type}})(**values)
    assert float(total) == pytest.approx(float(expected), rel=1e-6, abs=1e-8)
    assert float(terms["denoising"]) == pytest.approx(float(expected), rel=1e-6, abs=1e-8)


def test_denoising_entry_metadata_constant_c_and_errors():
    spec = losses.get("denoising")
    assert (spec.kind, spec.fp32, spec.inputs) == ("pixel", True, ("model_output", "model_target"))
    assert spec.optional_inputs == ("timestep_weight", "huber_c")
    assert spec.summary.startswith("Diffusion denoising loss")
    gen = torch.Generator().manual_seed(1)
    output, target = torch.randn(2, 3, 3, 4, 4, generator=gen)
    r = output - target
    # no huber_c input: the constant c; the pseudo-Huber formula 2c(sqrt(r^2 + c^2) - c)
    huber = losses.create("denoising", loss_type="huber", huber_c=0.3)
    expected = (2 * 0.3 * (torch.sqrt(r.square() + 0.09) - 0.3)).mean()
    assert float(huber(output, target)) == pytest.approx(float(expected), rel=1e-5)
    # a per-sample weight scales each sample's mean before the batch mean
    weight = torch.tensor([0.0, 1.0, 3.0])
    per_sample = r.square().flatten(1).mean(1)
    assert float(losses.create("denoising")(output, target, timestep_weight=weight)) == pytest.approx(
        float((per_sample * weight).mean()), rel=1e-6
    )
    # float32 under autocast (the registry's fp32 policy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = losses.create("denoising")(output.bfloat16(), target.bfloat16())
    assert value.dtype == torch.float32
    with pytest.raises(ValueError, match="loss_type must be one of"):
        losses.create("denoising", loss_type="l3")
    with pytest.raises(ValueError, match="shapes differ"):
        losses.create("denoising")(output, target[:, :2])
    with pytest.raises(ValueError, match=r"timestep_weight must have one value per sample, shape \(3,\)"):
        losses.create("denoising")(output, target, timestep_weight=torch.ones(2))


# ----------------------------------------------------------------------------- the task


def diffusion_task(name: str = "diffusion_sr", **options) -> DiffusionTask:
    return build_task(TaskConfig(name=name, diffusion=options))


def test_pairs_are_reproducible_and_forward_gives_the_objective_inputs():
    task = diffusion_task(weighting="p2", p2_gamma=0.5, huber_c=0.2, huber_schedule="snr")
    batch = patches()
    cpu = torch.device("cpu")
    first, again = task.make_pair(batch, cpu), task.make_pair(batch, cpu)
    assert first.keys() == again.keys() == {"target", "input", "noise", "timestep_u"}
    for key in first:
        assert torch.equal(first[key], again[key]), key
    other = task.make_pair({**batch, "seed": batch["seed"] + 1}, cpu)
    assert not torch.equal(other["noise"], first["noise"])
    assert first["input"].shape == (2, 3, 8, 8) and first["noise"].shape == (2, 3, 32, 32)

    torch.manual_seed(0)
    model = models.build("sr3_x4_tiny").train()
    objective = DiffusionObjective.from_model(model)
    x0_image = task.forward(model, first)
    t = (first["timestep_u"] * 1000).long()
    assert torch.equal(first["timesteps"], t)
    x0 = first["target"] * 2 - 1
    x_t = objective.noisy(x0, first["noise"], t)
    with torch.no_grad():
        expected_output = model(x_t, timesteps=t, condition=sr_condition(first["input"], 4))
    torch.testing.assert_close(first["model_output"].detach(), expected_output)
    torch.testing.assert_close(first["model_target"], first["noise"])  # epsilon prediction
    torch.testing.assert_close(first["timestep_weight"], p2_weights(t, objective, 0.5, 1.0))
    torch.testing.assert_close(first["huber_c"], scheduled_huber_c(t, objective, 0.2, "snr"))
    predicted = (objective.predicted_x0(first["model_output"], x_t, t) + 1) / 2
    torch.testing.assert_close(x0_image, predicted.clamp(0, 1))

    # the trainer's loss on these inputs is the objective's denoising loss with the same options
    loss_set = losses.build({"denoising": {"loss_type": "huber"}})
    with torch.no_grad():
        total, _ = loss_set(x0_image, first["target"], **{k: first[k] for k in task.loss_inputs})
    expected = denoising_loss(
        first["model_output"].detach(), first["model_target"], t, objective, "huber", "p2", p2_gamma=0.5,
        huber_c=0.2, huber_schedule="snr",
    )
    assert float(total) == pytest.approx(float(expected), rel=1e-6)


def test_x0_clamp_and_v_prediction():
    task = diffusion_task(x0_clamp=False, weighting="min_snr")
    pair = task.make_pair(patches(), torch.device("cpu"))
    torch.manual_seed(0)
    model = models.build("sr3_x4_tiny", prediction_type="v_prediction").train()
    objective = DiffusionObjective.from_model(model)
    assert objective.prediction_type == "v_prediction"
    image = task.forward(model, pair)
    t = pair["timesteps"]
    x0 = pair["target"] * 2 - 1
    torch.testing.assert_close(pair["model_target"], objective.target(x0, pair["noise"], t))
    torch.testing.assert_close(pair["timestep_weight"], min_snr_weights(t, objective, 5.0))
    assert "huber_c" not in pair
    x_t = objective.noisy(x0, pair["noise"], t)
    torch.testing.assert_close(image, (objective.predicted_x0(pair["model_output"], x_t, t) + 1) / 2)


def test_options_merge_into_the_defaults_and_bad_values_fail(tmp_path):
    assert TaskConfig().diffusion == DIFFUSION_DEFAULTS
    path = REPO / "recipes" / "configs" / "sr_diffusion.yaml"
    config = load_config(path, ["--task.diffusion.weighting", "p2"])
    assert config.task.diffusion == {**DIFFUSION_DEFAULTS, "sample_steps": 4, "weighting": "p2"}
    assert build_task(config.task).options["weighting"] == "p2"
    with pytest.raises(ValueError, match="unknown task.diffusion option 'weigthing'. Did you mean"):
        diffusion_task(weigthing="p2")
    with pytest.raises(ValueError, match="task.diffusion.weighting must be one of"):
        diffusion_task(weighting="snr")
    with pytest.raises(ValueError, match="task.diffusion.sample_steps must be a positive integer"):
        diffusion_task(sample_steps=0)
    with pytest.raises(ValueError, match=r"task.diffusion.huber_c must be in \(0, 1\]"):
        diffusion_task(huber_c=2.0)
    with pytest.raises(ValueError, match="task.diffusion.scheduler must be one of"):
        diffusion_task(scheduler="euler")
    with pytest.raises(ValueError, match="task.diffusion.p2_k must be a number > 0"):
        diffusion_task(p2_k=0)
    assert diffusion_task("diffusion_inpaint").cond_channels == 4
    assert diffusion_task("diffusion").cond_channels == 0 and diffusion_task("diffusion").scale == 1


# ----------------------------------------------------------------------------- training


def test_a_few_steps_with_an_x0_loss_and_p2_train_and_validate_by_sampling(tmp_path):
    config = tiny_config(
        tmp_path, **{**SR, "task__diffusion": {"weighting": "p2", "sample_steps": 2}},
        losses={"denoising": 1.0, "l1": 0.1}, train__ema_decay=0.5,
    )
    trainer = recording_trainer(config, keep_states=True)
    result = trainer.train()
    assert result.step == 3 and result.skipped_steps == 0
    for logs in trainer.logs:
        assert {"g/denoising", "g/l1", "g/total"} <= logs.keys()
        assert all(math.isfinite(v) for v in logs.values()), logs
        assert logs["g/total"] == pytest.approx(logs["g/denoising"] + 0.1 * logs["g/l1"], rel=1e-5)
    final = state_dicts(trainer)
    assert max_abs_diff(trainer.states[0], final, "g.") > 0
    assert all(torch.isfinite(v).all() for v in final.values() if v.is_floating_point())

    # validation: the standard SR protocol on the (EMA) model's DDIM samples with seed 0
    assert set(result.metrics) == {"psnr_y", "ssim_y"}
    model = models.load(result.weights).eval()
    assert model.spec.name == "sr3_x4_tiny"
    pairs = build_validation_set(config.validation, trainer.task, model.spec.size_multiple)
    assert len(pairs) == 2 and pairs[0].target.shape[-1] == 4 * pairs[0].input.shape[-1]
    psnrs, ssims = [], []
    for pair in pairs:
        sampled = sample_sr(model, pair.input, 2, "ddim", generator=0)
        psnrs.append(float(metrics.psnr(sampled, pair.target, crop_border=4, y_channel=True)[0]))
        ssims.append(float(metrics.ssim(sampled, pair.target, crop_border=4, y_channel=True)[0]))
    assert result.metrics["psnr_y"] == pytest.approx(sum(psnrs) / 2, abs=1e-4)
    assert result.metrics["ssim_y"] == pytest.approx(sum(ssims) / 2, abs=1e-5)


def test_resume_continues_exactly_like_a_straight_run(tmp_path):
    run = {**SR, "train__steps": 4, "train__ema_decay": 0.9, "task__diffusion": {"weighting": "min_snr"}}
    straight = recording_trainer(tiny_config(tmp_path / "straight", **run))
    straight.train()

    class Interrupted(Exception):
        pass

    reset_accelerate()
    first = recording_trainer(tiny_config(tmp_path / "resumed", output__save_every=2, **run))
    save = first.save_checkpoint

    def save_then_crash():
        save()
        raise Interrupted

    first.save_checkpoint = save_then_crash
    with pytest.raises(Interrupted):
        first.train()
    assert first.step == 2

    reset_accelerate()
    second = recording_trainer(
        tiny_config(tmp_path / "resumed", output__save_every=2, output__resume="latest", **run)
    )
    second.train()
    assert first.seen + second.seen == straight.seen
    # the same diffusion draws (timesteps, noise) after the resume: the same losses at every step
    assert len(straight.logs) == 4
    for expected, got in zip(straight.logs, first.logs + second.logs, strict=True):
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert max_abs_diff(state_dicts(straight), state_dicts(second)) <= 1e-6


def test_bf16_training_step_is_finite_and_close_to_float32(tmp_path):
    logs = {}
    run = {**SR, "task__diffusion": {"huber_c": 0.1, "weighting": "p2"}}
    for precision in ("bf16", "no"):
        reset_accelerate()
        trainer = recording_trainer(
            tiny_config(tmp_path / precision, **run, train__mixed_precision=precision,
                        losses={"denoising": {"loss_type": "huber"}, "l1": 0.1})
        )
        dtypes: list[torch.dtype] = []
        unet = trainer._unwrap(trainer.generator).unet
        unet.conv_in.register_forward_hook(lambda module, args, out, seen=dtypes: seen.append(out.dtype))
        trainer.train_step(next(iter(trainer.loader)))
        assert dtypes == [torch.bfloat16 if precision == "bf16" else torch.float32]
        logs[precision] = trainer.logs[0]
        assert all(math.isfinite(v) for v in logs[precision].values())
        assert all(torch.isfinite(v).all() for v in state_dicts(trainer).values() if v.is_floating_point())
    for key in ("g/denoising", "g/l1"):
        assert logs["bf16"][key] == pytest.approx(logs["no"][key], rel=1e-2), key


@pytest.mark.parametrize(
    ("task", "model", "metric_names"),
    [("diffusion_inpaint", "diffusion_inpaint_tiny", {"psnr", "ssim"}),
     ("diffusion", "ddpm_unconditional_tiny", {"psnr", "ssim"})],
)
def test_inpainting_tasks_train_and_validate_by_inpainting(tmp_path, task, model, metric_names):
    config = tiny_config(tmp_path, **{**SR, "model__name": model, "task__name": task}, train__steps=1,
                         losses={"denoising": 1.0})
    trainer = recording_trainer(config)
    result = trainer.train()
    assert set(result.metrics) == metric_names
    assert all(math.isfinite(v) for v in result.metrics.values())
    # validation inpaints the masked images: the conditional sampler or RePaint, known pixels kept
    net = trainer.ema.module
    pairs = build_validation_set(config.validation, trainer.task, net.spec.size_multiple)
    scores, predictions = evaluate(net, pairs, trainer.task, torch.device("cpu"), use_lpips=False)
    assert scores == pytest.approx(result.metrics)
    for pair, pred in zip(pairs, predictions, strict=True):
        sampler = sample_inpaint_conditional if task == "diffusion_inpaint" else repaint
        expected = sampler(net, pair.input, pair.mask, 2, generator=0)
        torch.testing.assert_close(pred, expected)
        known = 1 - pair.mask
        assert torch.equal(pred * known, pair.target * known)
        assert pair.mask.mean() > 0.05


def test_mismatched_models_tasks_and_losses_fail_early(tmp_path):
    from restore.train import Trainer

    cases = [
        ({"model__name": "sr3_x4_tiny", "task__name": "sr"}, "is a 'diffusion' model and task 'sr' does not"),
        ({"model__name": "compact_tiny", "task__name": "diffusion_sr"}, "pick a diffusion model"),
        ({"model__name": "diffusion_inpaint_tiny", "task__name": "diffusion_sr"},
         "conditioned on a low-resolution image .* has cond_channels=4"),
        ({"model__name": "sr3_x4_tiny", "task__name": "diffusion_inpaint"}, "has cond_channels=3"),
        ({"model__name": "sr3_x4_tiny", "task__name": "diffusion_sr", "task__scale": 2}, "upscales by 4"),
        ({"model__name": "compact_tiny", "losses": {"denoising": 1.0}}, "need a diffusion task"),
    ]
    for overrides, message in cases:
        reset_accelerate()
        with pytest.raises(ValueError, match=message):
            Trainer(tiny_config(tmp_path, **overrides))


# ----------------------------------------------------------------------------- the recipe


def load_recipe():
    spec = importlib.util.spec_from_file_location("recipe_sr_diffusion", REPO / "recipes" / "sr_diffusion.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("config", "model_name", "metric_names"),
    [(None, "sr3_x4_tiny", {"psnr_y", "ssim_y"}),
     ("inpaint_diffusion.yaml", "diffusion_inpaint_tiny", {"psnr", "ssim"})],
)
def test_recipe_runs_with_its_defaults(tmp_path, config, model_name, metric_names):
    out = tmp_path / "run"
    argv = ["--output", str(out), "--steps", "2", "--output.progress", "false", "--output.tracker", "none",
            "--validation.lpips", "false"]
    if config is not None:
        argv += ["--config", str(REPO / "recipes" / "configs" / config)]
    result = load_recipe().main(argv)
    assert result.step == 2 and result.skipped_steps == 0
    assert models.load(result.weights).spec.name == model_name
    assert set(result.metrics) == metric_names and all(math.isfinite(v) for v in result.metrics.values())
    expected, _ = parse_recipe_args(argv, REPO / "recipes" / "configs" / "sr_diffusion.yaml", "")
    saved = load_config(out / "config.yaml")
    assert saved == expected and saved.task.diffusion["sample_steps"] == 4
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("g/denoising" in row for row in rows)
