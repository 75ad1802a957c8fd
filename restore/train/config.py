"""Training configuration: nested dataclasses, loadable from YAML, with dotted command-line overrides.

    config = load_config("recipes/configs/sr_gan.yaml", ["--train.lr", "2e-4", "--losses.l1.weight", "0.1"])
    save_config(config, "runs/x/config.yaml")       # every run saves the resolved config

Sections: ``model`` (generator), ``task`` (what makes the training input), ``data``, ``losses``
(a loss-registry config, free-form), ``train`` (optimisation), ``discriminator`` (adversarial
training; ``name: null`` for none), ``validation`` and ``output``. Unknown keys fail with a "did you
mean"; values are parsed as YAML (``2e-4`` -> float, ``null`` -> None, ``[1, 2]`` -> list).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DIFFUSION_DEFAULTS",
    "Config",
    "DataConfig",
    "DiscriminatorConfig",
    "ModelConfig",
    "OutputConfig",
    "TaskConfig",
    "TrainConfig",
    "ValidationConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "save_config",
]


@dataclass
class ModelConfig:
    """The generator: a registered architecture, its arguments, and optional initial weights."""

    name: str = "compact_tiny"
    args: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None  # a .safetensors/.pth to start from (e.g. the PSNR-trained generator)


# Options of the diffusion tasks (``task.diffusion``); restore.train.tasks.DiffusionTask documents them.
DIFFUSION_DEFAULTS: dict[str, Any] = {
    "weighting": None,  # None | p2 | min_snr: per-sample weight of the denoising loss by timestep
    "p2_gamma": 1.0,
    "p2_k": 1.0,
    "min_snr_gamma": 5.0,
    "huber_c": None,  # None: constant c of the loss entry; a number: c scheduled by timestep
    "huber_schedule": "snr",  # snr | exponential | constant
    "sample_steps": 10,  # sampler steps at validation
    "scheduler": "ddim",  # ddim | dpm | ddpm (validation sampler)
    "x0_clamp": True,  # clip the predicted x0 to [0, 1] before the image losses
}


@dataclass
class TaskConfig:
    """How a clean batch becomes (input, target): ``sr``, ``deblur``, ``inpaint``, ``audio_denoise``,
    ``audio_bandwidth``, or a diffusion task: ``diffusion_sr``, ``diffusion_inpaint``, ``diffusion``.

    ``degradation``: a name of ``restore.degrade.build_degradation`` or ``{"name": ..., **kwargs}``
    (``scale`` is filled in for SR); for audio tasks null or the arguments of
    ``restore.degrade.audio.AudioDenoiseDegradation`` / ``AudioBandwidthDegradation``.
    ``mask``: arguments of ``restore.degrade.RandomMask``. ``diffusion``: the diffusion tasks'
    options (:data:`DIFFUSION_DEFAULTS`; a YAML mapping is merged into the defaults).
    """

    name: str = "sr"
    scale: int = 4
    degradation: Any = "bicubic"
    mask: dict[str, Any] = field(default_factory=lambda: {"coverage": [0.1, 0.5], "kind": "mixed"})
    diffusion: dict[str, Any] = field(default_factory=lambda: dict(DIFFUSION_DEFAULTS))


@dataclass
class DataConfig:
    """Training data: a folder (or list of folders) of clean images or speech; None = the built-in samples.

    Audio tasks also read ``noise`` (folders of noise recordings; None = synthetic noise), and cut
    ``segment_seconds`` of audio at ``sample_rate`` per item.
    """

    train: Any = None
    noise: Any = None
    sample_rate: int = 16000
    segment_seconds: float = 2.0
    patch_size: int = 128  # target patch side
    batch_size: int = 8
    num_workers: int = 0
    repeat: int = 1
    cache: bool = True
    recursive: bool = True
    on_error: str = "skip"


@dataclass
class TrainConfig:
    """Optimisation of the generator, and the run's global switches."""

    steps: int = 1000
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 0.0
    optimizer: str = "adam"  # adam | adamw
    scheduler: str = "constant"  # constant | cosine | multistep
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.5
    warmup_steps: int = 0
    ema_decay: float | None = 0.999  # None: no EMA
    ema_start: int = 0
    clip_grad_norm: float | None = None
    mixed_precision: str = "auto"  # auto (bf16 on GPUs that support it, else no) | no | fp16 | bf16
    gradient_accumulation_steps: int = 1
    seed: int = 0
    compile: bool = False
    channels_last: bool = True
    max_bad_steps: int = 10  # consecutive skipped (non-finite) steps before the run stops


@dataclass
class DiscriminatorConfig:
    """Adversarial training: the discriminator, its losses and optimiser (``name: null`` = none)."""

    name: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    losses: Any = field(default_factory=lambda: {"gan": {"weight": 1.0, "side": "discriminator"}})
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 0.0
    scheduler: str | None = None  # None: same schedule as the generator
    start_step: int = 0  # generator-only (warm-up) steps before the discriminator starts
    update_every: int = 1  # one discriminator update every N generator steps
    clip_grad_norm: float | None = None
    conditional: bool = False  # feed the degraded input as the condition (patchgan_conditional)


@dataclass
class ValidationConfig:
    """Validation: a folder of clean images or a paired SR layout (``HR/`` + ``LR_bicubic/X{s}/``)."""

    data: Any = None  # None: the bundled samples (whole images, degraded with a fixed seed)
    every: int = 500
    max_images: int = 8
    max_side: int = 512  # clean images are centre-cropped to at most this side
    max_seconds: float = 8.0  # audio clips are cut to at most this length
    lpips: bool = True  # when LPIPS weights are present locally
    samples: int = 4  # images in the sample grid
    use_ema: bool = True


@dataclass
class OutputConfig:
    """Where the run writes checkpoints, samples, logs and the final weights."""

    dir: str = "runs/restore"
    save_every: int = 500
    keep: int = 3  # checkpoints kept (oldest deleted)
    resume: str | None = None  # None | "latest" | a checkpoint folder
    log_every: int = 10
    tracker: str | None = "auto"  # auto | tensorboard | wandb | "tensorboard,wandb" | none
    progress: bool = True


@dataclass
class Config:
    """A whole training run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    losses: Any = field(default_factory=lambda: {"l1": 1.0})
    train: TrainConfig = field(default_factory=TrainConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


# ----------------------------------------------------------------------------- dict <-> dataclass


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain nested dict (YAML-safe) of a config dataclass."""
    return dataclasses.asdict(config)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _unknown_key(key: str, known: list[str], where: str) -> KeyError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else f" Known: {', '.join(known)}."
    return KeyError(f"unknown config key '{where}{key}'.{hint}")


def _check_value(value: Any, tp: Any, path: str) -> Any:
    """Check (and lightly coerce: int -> float) ``value`` against the annotation ``tp``."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_value(value, option, path)
            except (TypeError, ValueError) as error:
                errors.append(str(error))
        raise TypeError(f"config '{path}': {value!r} does not fit {tp}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"config '{path}' must be a list, got {value!r}")
        (item_type,) = typing.get_args(tp)[:1] or (Any,)
        return [_check_value(v, item_type, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"config '{path}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"config '{path}' must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"config '{path}' must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise TypeError(f"config '{path}' must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise TypeError(f"config '{path}' must be a string, got {value!r}")
        return value
    return value


def config_from_dict(data: dict[str, Any] | None, cls: type = Config, path: str = "") -> Any:
    """Build the dataclass ``cls`` from a nested dict; missing keys keep their defaults."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise TypeError(f"config section '{path.rstrip('.') or 'root'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in fields:
            raise _unknown_key(key, list(fields), path)
        tp = hints[key]
        if _is_dataclass_type(tp):
            values[key] = config_from_dict(value, tp, f"{path}{key}.")
        else:
            values[key] = _check_value(value, tp, f"{path}{key}")
    return cls(**values)


# ----------------------------------------------------------------------------- overrides


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads exponent floats without a dot (``2e-4``), as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml(text: str) -> Any:
    """YAML text -> Python objects (safe: a SafeLoader subclass)."""
    return yaml.load(text, Loader=_Loader)


def _parse_value(text: str) -> Any:
    """A command-line value as YAML: numbers, booleans, null, lists and mappings."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" (no dot) as a string
            return float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
        except ValueError:
            return value
    return value


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, defaults: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``dotted = "a.b.c"``, checking keys of dataclass sections."""
    keys = dotted.split(".")
    node, spec = data, defaults
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
            names = [f.name for f in dataclasses.fields(spec)]
            if key not in names:
                raise _unknown_key(key, names, ".".join(keys[:i]) + ("." if i else ""))
            spec = getattr(spec, key)
        else:
            spec = None
        if last:
            node[key] = value
            return
        child = node.get(key)
        if not isinstance(child, dict):
            # a loss given as a bare weight (`l1: 1.0`) becomes {"weight": 1.0} when a field is set
            child = (
                {"weight": child} if isinstance(child, (int, float)) and not isinstance(child, bool) else {}
            )
            node[key] = child
        node = child


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Apply ``["--train.lr", "2e-4", "--losses.l1=1"]`` (or ``{"train.lr": 2e-4}``) to a config dict."""
    pairs: list[tuple[str, Any]] = []
    if isinstance(overrides, dict):
        pairs = list(overrides.items())
    else:
        items = list(overrides)
        i = 0
        while i < len(items):
            item = items[i]
            if not item.startswith("--"):
                raise ValueError(f"expected an option like --section.key VALUE, got {item!r}")
            key = item[2:]
            if "=" in key:
                key, text = key.split("=", 1)
                i += 1
            else:
                if i + 1 >= len(items):
                    raise ValueError(f"option {item} needs a value")
                text = items[i + 1]
                i += 2
            pairs.append((key.replace("-", "_") if "." not in key else key, _parse_value(text)))
    defaults = Config()
    for key, value in pairs:
        _set_dotted(data, key, value, defaults)
    return data


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into ``base`` for dataclass sections; free-form values are replaced whole."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("losses", "args"):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(
    path: str | os.PathLike | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    base: Config | dict[str, Any] | None = None,
) -> Config:
    """Resolve a config: ``base`` (a recipe's defaults), then the YAML file, then the overrides."""
    data = config_to_dict(base) if isinstance(base, Config) else config_to_dict(config_from_dict(base or {}))
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: '{path}'")
        loaded = _yaml(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file '{path}' must hold a mapping, got {type(loaded).__name__}")
        config_from_dict(loaded)  # unknown keys in the file fail here, naming the key
        data = _merge(data, loaded)
    if overrides:
        data = apply_overrides(data, overrides)
    return config_from_dict(data)


def save_config(config: Config, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (what ``load_config(path)`` reads back)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return path
