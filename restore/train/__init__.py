"""The Accelerate training engine: configs, the trainer, EMA, checkpoints, validation.

    from restore.train import Trainer, load_config
    result = Trainer(load_config("recipes/configs/sr.yaml", ["--train.steps", "200"])).train()

Importing this package does not import accelerate; the trainer module does.
"""

from __future__ import annotations

from .config import (
    Config,
    DataConfig,
    DiscriminatorConfig,
    ModelConfig,
    OutputConfig,
    TaskConfig,
    TrainConfig,
    ValidationConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)

__all__ = [
    "Config",
    "DataConfig",
    "DiscriminatorConfig",
    "ModelConfig",
    "OutputConfig",
    "TaskConfig",
    "TrainConfig",
    "Trainer",
    "TrainResult",
    "ValidationConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "save_config",
]


def __getattr__(name: str):
    if name in ("Trainer", "TrainResult", "NonFiniteLossError"):
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'restore.train' has no attribute {name!r}")
