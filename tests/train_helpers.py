"""Helpers for the training-engine tests: tiny configs, Accelerate state resets, and the DDP worker.

Run as a script (under ``accelerate launch``) it is the worker of tests/test_train_ddp.py:

    accelerate launch --num_processes 2 --cpu tests/train_helpers.py OUT_DIR

Each rank trains a tiny GAN for a few steps and writes ``OUT_DIR/rank{i}.safetensors`` (initial and
final generator, discriminator and EMA weights, unwrapped) and ``OUT_DIR/rank{i}.json`` (the batch
seeds and target checksums it trained on).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]

# Sizes that keep a step in the tens of milliseconds on 2 CPU cores.
TINY: dict[str, Any] = {
    "model.name": "compact_tiny",
    "data.patch_size": 32,
    "data.batch_size": 2,
    "train.steps": 3,
    "train.mixed_precision": "no",
    "validation.every": 0,
    "validation.max_images": 2,
    "validation.max_side": 64,
    "output.progress": False,
    "output.tracker": "none",
    "output.save_every": 0,
    "output.log_every": 1,
}

# A relativistic GAN with a small PatchGAN discriminator (batch norm, 2 convs of 8 and 16 filters).
GAN: dict[str, Any] = {
    "losses": {"l1": 1.0, "gan": {"name": "ragan", "weight": 0.1}},
    "discriminator.name": "patchgan",
    "discriminator.args": {"n_layers": 1, "ndf": 8},
    "discriminator.losses": {"gan": {"name": "ragan", "side": "discriminator"}},
}


def reset_accelerate() -> None:
    """Forget Accelerate's process-wide state so that the next Trainer builds a fresh Accelerator."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@contextlib.contextmanager
def isolated_training():
    """A fresh Accelerate state before and after, and one torch thread (tiny models gain nothing from
    more, and lose a lot on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    reset_accelerate()
    try:
        yield
    finally:
        reset_accelerate()
        torch.set_num_threads(threads)


def tiny_config(output_dir: str | Path, *, gan: bool = False, **overrides: Any):
    """A :class:`restore.train.Config` for a few-step CPU run; ``overrides`` use ``__`` for dots."""
    from restore.train import load_config

    values = dict(TINY)
    if gan:
        values.update(GAN)
    values["output.dir"] = str(output_dir)
    values.update({key.replace("__", "."): value for key, value in overrides.items()})
    return load_config(None, values)


def state_dicts(trainer) -> dict[str, torch.Tensor]:
    """Unwrapped generator (``g.``), discriminator (``d.``) and EMA (``ema.``) tensors, cloned to CPU."""
    out = {}
    modules = {"g": trainer._unwrap(trainer.generator)}
    if trainer.discriminator is not None:
        modules["d"] = trainer._unwrap(trainer.discriminator)
    if trainer.ema is not None:
        modules["ema"] = trainer.ema.module
    for prefix, module in modules.items():
        for key, value in module.state_dict().items():
            out[f"{prefix}.{key}"] = value.detach().cpu().clone().contiguous()
    return out


def recording_trainer(config, *, keep_states: bool = False, **kwargs):
    """A Trainer that records every batch it trains on and what each ``train_step`` returned.

    ``trainer.seen``: ``(seeds, target checksum)`` per batch; ``trainer.logs``: the step's logged
    terms; with ``keep_states``, ``trainer.states``: :func:`state_dicts` before each step.
    """
    from restore.train import Trainer

    class RecordingTrainer(Trainer):
        def train_step(self, batch):
            self.seen.append((batch["seed"].tolist(), float(batch["target"].double().sum())))
            if keep_states:
                self.states.append(state_dicts(self))
            logs = super().train_step(batch)
            self.logs.append(logs)
            return logs

    trainer = RecordingTrainer(config, **kwargs)
    trainer.seen, trainer.logs, trainer.states = [], [], []
    return trainer


class PoisonedDataset(torch.utils.data.Dataset):
    """A dataset whose ``bad``-th fetched items (1-based, in fetch order) get a NaN in their target.

    ``bad=None`` poisons every item. With ``num_workers=0`` items are fetched in batch order, so
    with batch size B the k-th batch holds fetches ``(k-1)*B+1 .. k*B``.
    """

    def __init__(self, base, bad: list[int] | None) -> None:
        self.base = base
        self.bad = None if bad is None else set(bad)
        self.calls = 0

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict:
        self.calls += 1
        item = dict(self.base[index])
        if self.bad is None or self.calls in self.bad:
            target = item["target"].clone()
            target[:, 0, 0] = float("nan")
            item["target"] = target
        return item


def sample_patches(patch_size: int, scale: int = 1, seed: int = 0):
    """Patches of the bundled sample images (5 files), as the trainer's default dataset makes them."""
    from restore.data import CleanImageFolder, sample_images_dir

    return CleanImageFolder(sample_images_dir(), patch_size, scale=scale, seed=seed)


def ddp_worker(out_dir: Path) -> None:
    """Train the tiny GAN for 3 steps on every rank; save each rank's weights and the data it saw."""
    from safetensors.torch import save_file

    config = tiny_config(out_dir / "run", gan=True, train__ema_decay=0.5)
    trainer = recording_trainer(config)
    rank = trainer.accelerator.process_index
    if rank != 0:
        # a slower rank (a slow disk): its part of each checkpoint arrives a moment later, which the
        # main process must wait for before it renames the folder
        trainer.accelerator.register_save_state_pre_hook(lambda models, weights, folder: time.sleep(1.0))
    initial = {f"init.{k}": v for k, v in state_dicts(trainer).items()}
    result = trainer.train()
    final = state_dicts(trainer)
    save_file({**initial, **final}, str(out_dir / f"rank{rank}.safetensors"))
    record = {
        "rank": rank,
        "num_processes": trainer.accelerator.num_processes,
        "distributed_type": str(trainer.accelerator.distributed_type),
        "step": result.step,
        "skipped_steps": result.skipped_steps,
        "seeds": [seeds for seeds, _ in trainer.seen],
        "target_sums": [checksum for _, checksum in trainer.seen],
    }
    (out_dir / f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    ddp_worker(Path(sys.argv[1]))
