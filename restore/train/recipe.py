"""What every recipe script shares: its command line, and running a config.

    accelerate launch recipes/sr_gan.py [--config FILE] [--data DIR] [--val DIR] [--output DIR]
        [--steps N] [--resume latest|CHECKPOINT] [--section.key VALUE ...]

Options are applied in order: the recipe's YAML (or ``--config``), then the shortcuts, then dotted
overrides such as ``--train.lr 2e-4 --losses.lpips.weight 0.1``. The resolved config is saved in
the run folder as ``config.yaml``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from .config import Config, load_config

__all__ = ["drop_terms_without_weights", "parse_recipe_args", "run_config"]


def parse_recipe_args(
    argv: Sequence[str] | None, default_config: str | os.PathLike, description: str, extra=None
) -> tuple[Config, argparse.Namespace]:
    """Parse a recipe's command line into a resolved :class:`Config` (and the parsed shortcuts).

    ``extra(parser)`` may add recipe-specific options.
    """
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Set any config value with a dotted option, e.g. --train.lr 2e-4 --losses.l1.weight 0.5",
    )
    parser.add_argument("--config", default=str(default_config), help="a YAML config (default: %(default)s)")
    parser.add_argument("--data", help="a folder of clean training images (default: the bundled samples)")
    parser.add_argument("--val", help="a validation folder (clean images, or HR/ + LR_bicubic/X<s>/)")
    parser.add_argument("--output", help="the run folder (checkpoints, samples, logs, model.safetensors)")
    parser.add_argument("--steps", type=int, help="optimiser steps to train for")
    parser.add_argument(
        "--resume", nargs="?", const="latest", help="'latest' (default) or a checkpoint folder"
    )
    if extra is not None:
        extra(parser)
    args, rest = parser.parse_known_args(argv)
    sections = {f.name for f in dataclasses.fields(Config)}
    for item in rest:
        key = item.split("=", 1)[0][2:]
        if item.startswith("--") and "." not in key and key not in sections:
            parser.error(
                f"unrecognized option {item} (config values are set as --section.key VALUE, or a whole "
                "section as --losses '{l1: 1.0}')"
            )
    shortcuts: list[str] = []
    for option, key in (
        ("data", "data.train"),
        ("val", "validation.data"),
        ("output", "output.dir"),
        ("steps", "train.steps"),
        ("resume", "output.resume"),
    ):
        value = getattr(args, option)
        if value is not None:
            shortcuts += [f"--{key}", str(value)]
    config = load_config(args.config, shortcuts + list(rest))
    return config, args


def drop_terms_without_weights(config: Config) -> list[str]:
    """For a quick run on the bundled samples: drop loss terms whose pretrained weights are missing.

    Returns the labels dropped (a warning names each and says how to provide the file). Runs on real
    data (``data.train`` set) keep every term, and a missing file fails with the loss's own message.
    """
    import losses
    from losses.perceptual import WeightsNotFoundError

    if config.data.train is not None:
        return []
    dropped = []
    terms = config.losses
    if isinstance(terms, dict) and "terms" in terms:  # {"terms": {...}, "weighting": ...}
        terms = terms["terms"]
    if not isinstance(terms, dict):
        return []
    for label in list(terms):
        try:
            losses.build({label: terms[label]})
        except WeightsNotFoundError as error:
            warnings.warn(
                f"quick run: loss term '{label}' is left out because its pretrained weights are not on this "
                f"machine. {error}",
                stacklevel=2,
            )
            dropped.append(label)
            del terms[label]
    return dropped


def run_config(config: Config):
    """Train ``config`` with :class:`restore.train.Trainer`; returns its :class:`TrainResult`."""
    from .trainer import Trainer

    drop_terms_without_weights(config)
    result = Trainer(config).train()
    if result.weights is not None:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items())
        print(f"trained {result.step} steps in {result.seconds:.0f} s; weights: {result.weights}; {metrics}")
        print(f"samples: {Path(config.output.dir) / 'samples'}; resume with --resume latest")
    return result
