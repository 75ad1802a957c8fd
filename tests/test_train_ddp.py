"""Distributed data parallel training on CPU: 2 processes over gloo, launched with ``accelerate launch``.

Accelerate 1.x runs ``accelerate launch --cpu --num_processes 2`` as ONE process (its simple launcher;
several CPU processes need mpirun there), so these tests launch the torchrun path with
``--multi_gpu`` and ``ACCELERATE_USE_CPU=true``, which gives ``DistributedType.MULTI_CPU`` (gloo) on a
machine without GPUs. Each launch costs ~10 s of process start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "train_helpers.py"

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available",
)


def accelerate_launch(script: Path, args: list[str], cwd: Path, timeout: float = 120):
    """``accelerate launch`` 2 CPU processes running ``script args``; returns the finished process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true", "PYTHONUNBUFFERED": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", "0",
        str(script), *args,
    ]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_two_ranks_train_on_different_data_and_end_with_identical_weights(tmp_path):
    done = accelerate_launch(WORKER, [str(tmp_path)], cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]

    records = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for rank, record in enumerate(records):
        assert record["rank"] == rank
        assert record["num_processes"] == 2
        assert record["distributed_type"] == "DistributedType.MULTI_CPU"
        assert record["step"] == 3 and record["skipped_steps"] == 0
        assert len(record["seeds"]) == 3
    # each step the ranks trained on different items (batch sharding of one shared order)
    for step in range(3):
        assert not set(records[0]["seeds"][step]) & set(records[1]["seeds"][step])
        assert records[0]["target_sums"][step] != records[1]["target_sums"][step]

    weights = [load_file(str(tmp_path / f"rank{rank}.safetensors")) for rank in (0, 1)]
    assert weights[0].keys() == weights[1].keys()
    final_keys = [k for k in weights[0] if not k.startswith("init.")]
    assert {k.split(".")[0] for k in final_keys} == {"g", "d", "ema"}
    # the same initial weights on both ranks (seeded), and training moved them
    for key in final_keys:
        assert torch.equal(weights[0][f"init.{key}"], weights[1][f"init.{key}"]), key
    generator_keys = [k for k in final_keys if k.startswith(("g.", "ema."))]
    assert all(not torch.equal(weights[0][k], weights[0][f"init.{k}"]) for k in generator_keys)
    # identical weights after training: generator, EMA and every discriminator parameter; the
    # discriminator's batch-norm running statistics are per rank (DDP broadcasts rank 0's at each
    # wrapped forward), as in any DDP training with batch norm
    for key in final_keys:
        if "running_" in key:
            continue
        diff = float((weights[0][key].double() - weights[1][key].double()).abs().max())
        assert diff == 0.0, (key, diff)
    d_weights = [k for k in final_keys if k.startswith("d.") and k.endswith("weight")]
    assert all(not torch.equal(weights[0][k], weights[0][f"init.{k}"]) for k in d_weights)

    # the checkpoint holds every rank's RNG state and no partial folder is left behind
    root = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-3"]
    files = {p.name for p in (root / "checkpoint-3").iterdir()}
    assert {"random_states_0.pkl", "random_states_1.pkl", "trainer_state.json", "ema.safetensors"} <= files
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_sr_gan_recipe_runs_on_two_processes(tmp_path):
    out = tmp_path / "run"
    done = accelerate_launch(
        REPO / "recipes" / "sr_gan.py",
        ["--output", str(out), "--pretrain-steps", "2", "--steps", "2", "--data.patch_size", "128",
         "--data.batch_size", "2", "--validation.every", "0", "--validation.max_images", "2",
         "--validation.max_side", "128", "--output.progress", "false", "--output.tracker", "none"],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    import restore.models as models

    for folder, step in ((out / "pretrain", 2), (out, 2)):
        assert models.load(folder / "model.safetensors").spec.name == "compact_tiny"
        assert (folder / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").is_file()
        assert (folder / "samples" / f"step-{step:07d}.png").is_file()
    config = (out / "config.yaml").read_text()
    assert "pretrain/model.safetensors" in config


def test_inpaint_recipe_with_r1_runs_on_two_processes(tmp_path):
    """R1 (a double backward through the discriminator) and feature matching under DDP."""
    out = tmp_path / "run"
    done = accelerate_launch(
        REPO / "recipes" / "inpaint.py",
        ["--output", str(out), "--steps", "2", "--data.patch_size", "64", "--data.batch_size", "2",
         "--validation.every", "0", "--validation.max_images", "1", "--validation.max_side", "64",
         "--output.progress", "false", "--output.tracker", "none"],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    import json

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in rows if "d/r1" in row]
    assert steps and all(row["d/r1"] == row["d/r1"] and row["d/r1"] >= 0 for row in steps)  # finite, >= 0
    assert (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file()
