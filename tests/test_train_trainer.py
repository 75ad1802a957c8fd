"""The training engine in one process: resume equivalence, mixed precision, EMA, skipped steps, checkpoints.

Every run is a tiny model on 32-64 px patches of the bundled sample images for a few steps.
"""

from __future__ import annotations

import json
import math
import os
import warnings

import pytest
import torch
from train_helpers import (
    PoisonedDataset,
    isolated_training,
    recording_trainer,
    reset_accelerate,
    sample_patches,
    state_dicts,
    tiny_config,
)

from restore.train import Trainer, checkpoints
from restore.train.trainer import NonFiniteLossError, resolve_mixed_precision


@pytest.fixture(autouse=True)
def _isolated():
    """Each test gets a new Accelerator state (and each Trainer inside one, via reset_accelerate)."""
    with isolated_training():
        yield


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str = "") -> float:
    keys = [k for k in a if k.startswith(prefix)]
    assert keys and set(keys) == {k for k in b if k.startswith(prefix)}
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in keys)


def parameters_only(trainer, states: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of :func:`state_dicts` output that are parameters (not buffers)."""
    names = {f"g.{n}" for n, _ in trainer._unwrap(trainer.generator).named_parameters()}
    if trainer.discriminator is not None:
        names |= {f"d.{n}" for n, _ in trainer._unwrap(trainer.discriminator).named_parameters()}
    if trainer.ema is not None:
        names |= {f"ema.{n}" for n, _ in trainer.ema.module.named_parameters()}
    return {k: v for k, v in states.items() if k in names}


def train_rows(path) -> dict[int, dict[str, float]]:
    """metrics.jsonl rows of training terms (not validation), by step; wall-clock fields dropped."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    clock = ("seconds", "time")
    return {row["step"]: {k: v for k, v in row.items() if k not in clock} for row in rows if "g/total" in row}


class Interrupted(Exception):
    pass


# ----------------------------------------------------------------------------- resume


GAN_RUN = {
    "gan": True,
    "train__steps": 6,
    "train__ema_decay": 0.9,
    "train__scheduler": "multistep",
    "train__milestones": [5],
    "train__warmup_steps": 2,
    "discriminator__lr": 2e-4,
}


def test_resume_continues_exactly_like_a_straight_run(tmp_path, capsys):
    """6 steps straight == 3 steps, checkpoint, a crash, a new Trainer resuming 'latest', 3 more steps.

    Step 3 is mid-epoch (5 sample images, batch 2: 2 batches per epoch), so the resumed loader must
    skip the batch already used; G, D, both Adam states, both schedulers and the EMA are restored.
    """
    straight = recording_trainer(tiny_config(tmp_path / "straight", **GAN_RUN))
    straight.train()

    reset_accelerate()
    first = recording_trainer(tiny_config(tmp_path / "resumed", output__save_every=3, **GAN_RUN))
    save = first.save_checkpoint

    def save_then_crash():
        save()
        raise Interrupted

    first.save_checkpoint = save_then_crash
    with pytest.raises(Interrupted):
        first.train()
    assert first.step == 3
    ckpt = tmp_path / "resumed" / "checkpoints" / "checkpoint-3"
    assert json.loads((ckpt / "trainer_state.json").read_text())["step"] == 3

    reset_accelerate()
    second = recording_trainer(
        tiny_config(tmp_path / "resumed", output__save_every=3, output__resume="latest", **GAN_RUN)
    )
    result = second.train()
    assert f"resumed from {ckpt} at step 3" in capsys.readouterr().out
    assert result.step == 6 and second.ema.updates.item() == 6

    # the same data in the same order: batch seeds and target checksums
    assert first.seen == straight.seen[:3]
    assert second.seen == straight.seen[3:]
    # the same losses and learning rates at every step (metrics.jsonl of the resumed folder has both parts)
    expected = train_rows(tmp_path / "straight" / "metrics.jsonl")
    got = train_rows(tmp_path / "resumed" / "metrics.jsonl")
    assert sorted(got) == sorted(expected) == [1, 2, 3, 4, 5, 6]
    for step in expected:
        assert got[step].keys() == expected[step].keys()
        for key, value in expected[step].items():
            assert got[step][key] == pytest.approx(value, rel=1e-6, abs=1e-7), (step, key)
    # the schedule changes after the resume point (a scheduler restarted from 0 would differ)
    assert len({row["lr"] for row in expected.values()}) == 2
    assert expected[6]["lr"] == pytest.approx(1e-4) and expected[3]["lr"] == pytest.approx(2e-4)

    # the same final weights: generator, discriminator (with batch-norm statistics) and EMA
    a, b = state_dicts(straight), state_dicts(second)
    assert max_abs_diff(a, b) <= 1e-6
    for opt_a, opt_b in ((straight.opt_g, second.opt_g), (straight.opt_d, second.opt_d)):
        state_a, state_b = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
        assert state_a.keys() == state_b.keys()
        for index in state_a:
            for name in ("step", "exp_avg", "exp_avg_sq"):
                assert torch.allclose(state_a[index][name], state_b[index][name], rtol=1e-5, atol=1e-9)
    assert second.sched_g.last_epoch == straight.sched_g.last_epoch == 6
    assert second.sched_d.last_epoch == straight.sched_d.last_epoch == 6
    assert second.sched_d.get_last_lr() == straight.sched_d.get_last_lr()


def test_resume_latest_without_a_checkpoint_starts_from_scratch(tmp_path, capsys):
    plain = Trainer(tiny_config(tmp_path / "plain", train__steps=2))
    plain.train()
    reset_accelerate()
    fresh = Trainer(tiny_config(tmp_path / "fresh", train__steps=2, output__resume="latest"))
    result = fresh.train()
    assert "resumed" not in capsys.readouterr().out
    assert result.step == 2
    assert sorted(train_rows(tmp_path / "fresh" / "metrics.jsonl")) == [1, 2]
    assert max_abs_diff(state_dicts(plain), state_dicts(fresh)) == 0.0


def test_resume_from_a_named_folder_and_errors(tmp_path):
    Trainer(tiny_config(tmp_path / "run", train__steps=2)).train()
    folder = tmp_path / "run" / "checkpoints" / "checkpoint-2"
    assert checkpoints.resolve_resume(str(folder), tmp_path / "elsewhere") == folder
    assert checkpoints.resolve_resume(None, tmp_path) is None
    with pytest.raises(FileNotFoundError, match="checkpoint to resume from not found"):
        checkpoints.resolve_resume(str(tmp_path / "missing"), tmp_path)
    reset_accelerate()
    trainer = Trainer(tiny_config(tmp_path / "other", train__steps=3))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        trainer.load_checkpoint(tmp_path / "empty")
    trainer.load_checkpoint(folder)
    assert trainer.step == 2


# ----------------------------------------------------------------------------- checkpoints


def test_only_the_last_n_checkpoints_are_kept(tmp_path):
    Trainer(tiny_config(tmp_path, train__steps=5, output__save_every=1, output__keep=2)).train()
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-4", "checkpoint-5"]
    for path in checkpoints.checkpoint_dirs(root):
        state = json.loads((path / "trainer_state.json").read_text())
        assert state["step"] == checkpoints.checkpoint_step(path)
        assert {"model.safetensors", "optimizer.bin", "ema.safetensors"} <= {p.name for p in path.iterdir()}


def test_prune_checkpoints_orders_by_step_not_by_name(tmp_path):
    for step in (2, 10, 9, 100):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-7.partial-tmp").mkdir()
    (tmp_path / "notes").mkdir()
    deleted = checkpoints.prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in deleted) == ["checkpoint-2", "checkpoint-7.partial-tmp", "checkpoint-9"]
    assert [p.name for p in checkpoints.checkpoint_dirs(tmp_path)] == ["checkpoint-10", "checkpoint-100"]
    assert (tmp_path / "notes").is_dir()


def test_a_partial_checkpoint_is_ignored_by_latest_and_removed_by_the_next_save(tmp_path, capsys):
    Trainer(tiny_config(tmp_path, train__steps=2, output__save_every=2)).train()
    root = tmp_path / "checkpoints"
    # a crash while writing step 30 leaves a partial folder with junk (even a trainer_state.json)
    partial = checkpoints.partial_dir(root, 30, "tmp")
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\x00junk")
    (partial / "trainer_state.json").write_text("{")
    (root / "checkpoint-31.partial-other").mkdir()
    assert checkpoints.latest_checkpoint(root) == root / "checkpoint-2"

    reset_accelerate()
    result = Trainer(
        tiny_config(tmp_path, train__steps=3, output__save_every=2, output__resume="latest")
    ).train()
    assert f"resumed from {root / 'checkpoint-2'} at step 2" in capsys.readouterr().out
    assert result.step == 3
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-2", "checkpoint-3"]


def test_finalize_is_a_rename(tmp_path):
    partial = checkpoints.partial_dir(tmp_path, 7, "tmp")
    partial.mkdir()
    (partial / "weights.bin").write_bytes(b"new")
    inode = (partial / "weights.bin").stat().st_ino
    final = checkpoints.finalize(partial, tmp_path, 7)
    assert final == tmp_path / "checkpoint-7" and not partial.exists()
    assert (final / "weights.bin").read_bytes() == b"new"
    assert (final / "weights.bin").stat().st_ino == inode  # moved, not copied

    # finalizing the same step again replaces the old folder and leaves nothing behind
    partial.mkdir()
    (partial / "weights.bin").write_bytes(b"newer")
    checkpoints.finalize(partial, tmp_path, 7)
    assert (final / "weights.bin").read_bytes() == b"newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-7"]


def test_finalize_uses_os_replace(tmp_path, monkeypatch):
    calls = []
    real_replace = os.replace

    def spy(src, dst):
        calls.append((os.fspath(src), os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(checkpoints.os, "replace", spy)
    partial = checkpoints.partial_dir(tmp_path, 3, "tmp")
    partial.mkdir()
    checkpoints.finalize(partial, tmp_path, 3)
    assert calls == [(str(partial), str(tmp_path / "checkpoint-3"))]


def test_checkpoint_step_parses_names():
    assert checkpoints.checkpoint_step("runs/x/checkpoint-1200") == 1200
    with pytest.raises(ValueError, match="not a checkpoint folder"):
        checkpoints.checkpoint_step("checkpoint-12.partial-tmp")


# ----------------------------------------------------------------------------- mixed precision


def test_resolve_mixed_precision(monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    assert resolve_mixed_precision("auto") == ("bf16" if cuda_bf16 else "no")
    assert resolve_mixed_precision("auto", supports_bf16=False) == "no"
    assert resolve_mixed_precision("bf16") == "bf16"
    with pytest.warns(UserWarning, match="does not support fp16"):
        assert resolve_mixed_precision("fp16", supports_fp16=False) == "no"
    with pytest.raises(ValueError, match="train.mixed_precision must be"):
        resolve_mixed_precision("fp8")
    # `accelerate launch --mixed_precision bf16` is what "auto" follows when it is given
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert resolve_mixed_precision("auto") == "bf16"
    assert resolve_mixed_precision("no") == "no"


def test_bf16_gan_step_with_r1_is_finite_and_close_to_float32(tmp_path):
    d_losses = {"gan": {"name": "ragan", "side": "discriminator"}, "r1": {"weight": 1.0, "gamma": 0.1}}
    runs = {}
    for precision in ("bf16", "no"):
        reset_accelerate()
        trainer = recording_trainer(
            tiny_config(tmp_path / precision, gan=True, train__steps=2, train__mixed_precision=precision,
                        discriminator__losses=d_losses)
        )
        dtypes: list[torch.dtype] = []
        first_conv = trainer._unwrap(trainer.generator).body[0]
        first_conv.register_forward_hook(lambda module, args, out, seen=dtypes: seen.append(out.dtype))
        initial = state_dicts(trainer)
        result = trainer.train()
        runs[precision] = trainer
        assert trainer.accelerator.mixed_precision == precision
        assert set(dtypes) == {torch.bfloat16 if precision == "bf16" else torch.float32}
        assert result.skipped_steps == 0
        for logs in trainer.logs:
            assert {"g/l1", "g/gan", "d/gan", "d/r1", "d/total"} <= logs.keys()
            assert all(math.isfinite(v) for v in logs.values()), logs
            assert logs["d/r1"] > 0
        final = state_dicts(trainer)
        assert all(torch.isfinite(v).all() for v in final.values() if v.is_floating_point())
        assert max_abs_diff(initial, final, "g.") > 0 and max_abs_diff(initial, final, "d.") > 0
    # the first step sees the same weights and data: bf16 terms within 1 % of float32
    bf16, fp32 = runs["bf16"].logs[0], runs["no"].logs[0]
    for key in ("g/l1", "g/gan", "d/gan", "d/r1"):
        assert bf16[key] == pytest.approx(fp32[key], rel=1e-2), key


# ----------------------------------------------------------------------------- EMA


def test_ema_follows_its_decay_after_every_step(tmp_path):
    decay = 0.9
    trainer = recording_trainer(
        tiny_config(tmp_path, train__steps=3, train__ema_decay=decay, train__lr=1e-3), keep_states=True
    )
    trainer.train()
    after = [*trainer.states[1:], state_dicts(trainer)]  # the state after steps 1, 2, 3
    params = [n for n, _ in trainer.ema.module.named_parameters()]
    expected = {n: trainer.states[0][f"g.{n}"].double() for n in params}
    assert all(torch.equal(trainer.states[0][f"ema.{n}"], trainer.states[0][f"g.{n}"]) for n in params)
    for state in after:
        for name in params:
            expected[name] = decay * expected[name] + (1 - decay) * state[f"g.{name}"].double()
            torch.testing.assert_close(state[f"ema.{name}"].double(), expected[name], rtol=0, atol=1e-7)
    # the EMA really lags: it differs from the raw weights
    assert max_abs_diff(after[-1], {k.replace("g.", "ema.", 1): v for k, v in after[-1].items()
                                    if k.startswith("g.")}, "ema.") > 1e-5
    assert trainer.ema.updates.item() == 3


def test_ema_before_its_start_step_copies_the_weights(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, train__steps=2, train__ema_decay=0.9, train__ema_start=10))
    result = trainer.train()
    generator = trainer._unwrap(trainer.generator).state_dict()
    ema = trainer.ema.module.state_dict()
    assert generator.keys() == ema.keys()
    assert all(torch.equal(generator[k], ema[k]) for k in generator)
    # and model.safetensors is that EMA
    import restore.models as models

    exported = models.load(result.weights).state_dict()
    assert all(torch.equal(exported[k], ema[k]) for k in ema)


# ----------------------------------------------------------------------------- non-finite steps


def test_a_nan_batch_is_skipped_reported_and_training_goes_on(tmp_path, capsys):
    dataset = PoisonedDataset(sample_patches(32, scale=4), bad=[3])  # the second batch of 2
    trainer = recording_trainer(
        tiny_config(tmp_path, gan=True, train__steps=4, train__ema_decay=0.5), keep_states=True,
        train_dataset=dataset,
    )
    result = trainer.train()
    assert result.step == 4 and result.skipped_steps == 1
    assert "step 2: non-finite loss or gradient, step skipped (1 so far)" in capsys.readouterr().out
    assert not math.isfinite(trainer.logs[1]["g/total"])
    assert all(math.isfinite(logs["g/total"]) for i, logs in enumerate(trainer.logs) if i != 1)
    before, after = trainer.states[1], trainer.states[2]  # around step 2
    # nothing trained on the NaN step: generator, EMA and discriminator parameters unchanged
    assert max_abs_diff(parameters_only(trainer, before), parameters_only(trainer, after)) == 0.0
    # the steps before and after it did train
    assert max_abs_diff(trainer.states[0], before, "g.") > 0
    assert max_abs_diff(after, trainer.states[3], "g.") > 0
    assert max_abs_diff(after, state_dicts(trainer), "d.") > 0
    final = state_dicts(trainer)
    assert all(torch.isfinite(v).all() for k, v in final.items() if k.startswith(("g.", "ema.")))


def test_a_skipped_step_leaves_batch_norm_statistics_untouched(tmp_path):
    """LaMa's generator has batch norm: a NaN batch must not poison its running statistics (nor the
    EMA, which copies buffers), or every later validation and the exported model give NaN."""
    dataset = PoisonedDataset(sample_patches(64), bad=[3])
    trainer = recording_trainer(
        tiny_config(tmp_path, model__name="lama_small", task__name="inpaint", data__patch_size=64,
                    train__steps=3, train__ema_decay=0.5, validation__max_images=1),
        keep_states=True, train_dataset=dataset,
    )
    result = trainer.train()
    assert result.skipped_steps == 1
    buffers = {k: v for k, v in state_dicts(trainer).items() if "running_" in k}
    assert buffers and all(torch.isfinite(v).all() for v in buffers.values())
    assert all(math.isfinite(v) for v in result.metrics.values()), result.metrics


def test_all_nan_data_stops_after_max_bad_steps(tmp_path, capsys):
    dataset = PoisonedDataset(sample_patches(32, scale=4), bad=None)
    trainer = recording_trainer(
        tiny_config(tmp_path, train__steps=20, train__max_bad_steps=3), keep_states=True,
        train_dataset=dataset,
    )
    with pytest.raises(NonFiniteLossError, match=r"3 consecutive steps had non-finite losses or gradients "
                                                 r"\(last at step 3.*Lower train\.lr"):
        trainer.train()
    assert trainer.step == 3 and trainer.skipped_steps == 3
    assert capsys.readouterr().out.count("step skipped") == 3
    assert max_abs_diff(trainer.states[0], state_dicts(trainer)) == 0.0


# ----------------------------------------------------------------------------- configuration checks


def test_discriminator_waits_for_its_start_step(tmp_path):
    trainer = recording_trainer(
        tiny_config(tmp_path, gan=True, train__steps=2, discriminator__start_step=2), keep_states=True
    )
    trainer.train()
    before = parameters_only(trainer, trainer.states[0])
    after = parameters_only(trainer, state_dicts(trainer))
    assert max_abs_diff(before, after, "d.") == 0.0  # (its batch-norm statistics move: D is in train mode)
    assert max_abs_diff(trainer.states[0], state_dicts(trainer), "g.") > 0
    assert all("d/total" not in logs and "g/gan" in logs for logs in trainer.logs)


def test_scale_mismatch_and_adversarial_loss_without_discriminator_fail_early(tmp_path):
    with pytest.raises(ValueError, match="upscales by 4, but task.scale is 2"):
        Trainer(tiny_config(tmp_path, task__scale=2))
    reset_accelerate()
    with pytest.raises(ValueError, match=r"losses \['fake_logits', 'real_logits'\] need a discriminator"):
        Trainer(tiny_config(tmp_path, losses={"l1": 1.0, "gan": {"name": "ragan"}}))


def test_a_dataset_smaller_than_a_batch_fails_clearly(tmp_path):
    tiny = torch.utils.data.Subset(sample_patches(32, scale=4), [0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="fewer than one batch of 2"):
            Trainer(tiny_config(tmp_path), train_dataset=tiny)


def test_tracker_choice(monkeypatch):
    import importlib.util

    from restore.train.trainer import Trainer

    real_find_spec = importlib.util.find_spec
    installed = {"tensorboard", "wandb"}
    def find_spec(name, *args):
        if name in ("tensorboard", "wandb"):
            return object() if name in installed else None
        return real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert Trainer._tracker("auto") == ["tensorboard"]  # wandb installed but not configured: no login prompt
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert Trainer._tracker("auto") == ["tensorboard", "wandb"]
    installed.clear()
    assert Trainer._tracker("auto") is None
    assert Trainer._tracker("none") is None
    assert Trainer._tracker("tensorboard, wandb") == ["tensorboard", "wandb"]
