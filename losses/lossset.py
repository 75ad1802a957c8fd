"""``LossSet``: several registry entries with weights, built from a dict, a list or YAML.

    >>> loss_fn = losses.build({"l1": 1.0, "ssim": {"weight": 0.2}})
    >>> total, terms = loss_fn(pred, target)          # terms: {"l1": ..., "ssim": ...}

Each term takes the inputs its entry declares (``pred``, ``target``, and extras such as
``fake_logits`` or ``mask``) from the call's keyword arguments, so one call site serves every
configuration. Arguments are checked when the set is built, never mid-training.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import registry

# Keys of a term's config that belong to the LossSet, not to the entry's constructor.
TERM_KEYS = ("name", "weight", "inputs")


class LossTerm(nn.Module):
    """One weighted entry of a :class:`LossSet`; ``inputs`` renames call arguments for it."""

    def __init__(self, label: str, loss: registry.RegisteredLoss, weight: float, inputs: dict[str, str]):
        super().__init__()
        self.label = label
        self.loss = loss
        self.weight = float(weight)
        self.inputs = dict(inputs)

    @property
    def spec(self) -> registry.LossSpec:
        return self.loss.spec

    def forward(self, values: Mapping[str, Any]) -> torch.Tensor:
        args = []
        for arg in self.spec.inputs:
            key = self.inputs.get(arg, arg)
            if values.get(key) is None:
                raise ValueError(
                    f"loss term {self.label!r} ({self.spec.name}) needs input {key!r}; "
                    f"the call gave: {', '.join(k for k, v in values.items() if v is not None) or 'nothing'}"
                )
            args.append(values[key])
        kwargs = {}
        for arg in self.spec.optional_inputs:
            key = self.inputs.get(arg, arg)
            if values.get(key) is not None:
                kwargs[arg] = values[key]
        return self.loss(*args, **kwargs)


def _term_configs(config: Any) -> list[tuple[str, dict[str, Any]]]:
    """Normalise a dict or list config to ``[(label, {"name":..., "weight":..., ...}), ...]``."""
    items: list[tuple[str, dict[str, Any]]] = []
    if isinstance(config, Mapping):
        for label, value in config.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                cfg = {"weight": float(value)}
            elif value is None:
                cfg = {}
            elif isinstance(value, Mapping):
                cfg = dict(value)
            else:
                raise TypeError(
                    f"loss term {label!r}: expected a weight (number) or a mapping of arguments, "
                    f"got {type(value).__name__}"
                )
            cfg.setdefault("name", label)
            items.append((str(label), cfg))
    elif isinstance(config, Sequence) and not isinstance(config, (str, bytes)):
        for i, value in enumerate(config):
            if isinstance(value, str):
                cfg = {"name": value}
            elif isinstance(value, Mapping):
                cfg = dict(value)
                if "name" not in cfg:
                    raise ValueError(f"loss term #{i} has no 'name': {value!r}")
            else:
                raise TypeError(f"loss term #{i}: expected a name or a mapping, got {type(value).__name__}")
            items.append((str(cfg.pop("label", cfg["name"])), cfg))
    else:
        raise TypeError(f"a loss config is a dict, a list or YAML text/path, got {type(config).__name__}")
    labels = [label for label, _ in items]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"loss terms {duplicates} appear twice; give each a distinct 'label'")
    return items


def load_config(config: Any) -> Any:
    """YAML text or a path to a YAML file -> Python objects; anything else passes through."""
    if isinstance(config, (str, os.PathLike)):
        import yaml

        text = str(config)
        path = Path(text)
        if isinstance(config, os.PathLike) or (text.endswith((".yaml", ".yml")) and "\n" not in text):
            if not path.is_file():
                raise FileNotFoundError(f"loss config file not found: {path}")
            text = path.read_text()
        return yaml.safe_load(text)
    return config


class LossSet(nn.Module):
    """Weighted terms from the registry plus a weighting strategy.

    ``forward(pred=None, target=None, **extras) -> (total, terms)``: ``total`` is the scalar to
    back-propagate, ``terms`` maps each label to its detached, unweighted value (for logging).
    """

    def __init__(self, terms: list[LossTerm], weighting: nn.Module | None = None) -> None:
        super().__init__()
        if not terms:
            raise ValueError("a LossSet needs at least one term")
        self.terms = nn.ModuleList(terms)
        from .weighting import FixedWeights

        self.weighting = weighting if weighting is not None else FixedWeights()

    @property
    def labels(self) -> list[str]:
        return [t.label for t in self.terms]

    @property
    def weights(self) -> dict[str, float]:
        return {t.label: t.weight for t in self.terms}

    def forward(
        self, pred: torch.Tensor | None = None, target: torch.Tensor | None = None, **extras: Any
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        values = {"pred": pred, "target": target, **extras}
        raw = {term.label: term(values) for term in self.terms}
        total = self.weighting(raw, self.weights, pred)
        return total, {k: v.detach() for k, v in raw.items()}

    def extra_repr(self) -> str:
        return ", ".join(f"{t.label}={t.weight:g}" for t in self.terms)


def build(config: Any, weighting: Any = None) -> LossSet:
    """Build a :class:`LossSet` from a dict, a list, YAML text or a YAML file.

    Forms accepted::

        {"l1": 1.0, "ssim": {"weight": 0.2, "window_size": 7}}
        [{"name": "vgg", "weight": 0.1, "label": "perceptual"}, "l1"]
        {"terms": {...}, "weighting": {"name": "balancer", "ema_decay": 0.99}}

    ``weighting`` (or the config key of that name) is ``"fixed"`` (default), ``"balancer"``,
    ``"uncertainty"`` or a mapping with ``name`` and arguments.
    """
    config = load_config(config)
    if isinstance(config, Mapping) and ("terms" in config or "weighting" in config):
        config = dict(config)
        if weighting is None:
            weighting = config.pop("weighting", None)
        else:
            config.pop("weighting", None)
        extra = set(config) - {"terms"}
        if extra:
            raise ValueError(f"unexpected keys {sorted(extra)} beside 'terms' and 'weighting'")
        config = config.get("terms", {})
    terms = []
    for label, cfg in _term_configs(config):
        name = cfg.pop("name")
        weight = cfg.pop("weight", 1.0)
        inputs = cfg.pop("inputs", {}) or {}
        if not isinstance(weight, (int, float)) or isinstance(weight, bool):
            raise TypeError(f"loss term {label!r}: weight must be a number, got {weight!r}")
        terms.append(LossTerm(label, registry.create(name, **cfg), weight, inputs))
    return LossSet(terms, _build_weighting(weighting, [t.label for t in terms]))


def _build_weighting(weighting: Any, labels: list[str]) -> nn.Module | None:
    if weighting is None:
        return None
    if isinstance(weighting, nn.Module):
        return weighting
    if isinstance(weighting, str):
        cfg: dict[str, Any] = {"name": weighting}
    elif isinstance(weighting, Mapping):
        cfg = dict(weighting)
    else:
        raise TypeError(f"weighting must be a name or a mapping, got {type(weighting).__name__}")
    name = cfg.pop("name", None)
    if name is None:
        raise ValueError("weighting config needs a 'name'")
    spec = registry.get(name)
    if spec.kind != "weighting":
        weighting_names = registry.available(kind="weighting")
        raise ValueError(f"{name!r} is not a weighting strategy; choose one of {weighting_names}")
    registry.check_arguments(name, cfg)
    return spec.cls(labels=labels, **cfg)
