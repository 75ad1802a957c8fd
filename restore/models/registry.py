"""The model registry: architectures with a :class:`ModelSpec`, built by name.

Each architecture lives in its own file and registers one or more named configurations::

    @register_model("edsr", task="sr", config={"num_feat": 64, "num_block": 16}, ...)
    @register_model("edsr_full", task="sr", config={"num_feat": 256, "num_block": 32, "res_scale": 0.1})
    class EDSR(nn.Module): ...

``build(name, **overrides)`` returns the module with its resolved spec attached as
``model.spec`` and the full constructor config as ``model.config`` (so :func:`restore.models.save`
can write both next to the weights). Instance attributes named like spec fields (``scale``,
``in_channels``, ``receptive_field``...) override the registered values, so a spec always
describes the built model, not the default configuration.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from losses.registry import did_you_mean

TASKS = ("sr", "inpaint", "deblur", "denoise", "restore", "discriminator", "audio", "diffusion")

# Modules that hold the built-in architectures; imported on the first registry query so that
# ``import restore.models`` stays cheap.
BUILTIN_MODULES = (
    "restore.models.srresnet",
    "restore.models.rrdbnet",
    "restore.models.edsr",
    "restore.models.compact",
    "restore.models.swinir",
    "restore.models.lama",
    "restore.models.nafnet",
    "restore.models.vgg_discriminator",
    "restore.models.unet_discriminator",
    "restore.models.patchgan",
    "restore.models.pushpull",
    "restore.models.demucs",
    "restore.models.aero",
    "restore.models.spectral_mask",
    "restore.models.dsp_denoise",
    "restore.models.msstft_discriminator",
    "restore.models.mpd",
    "restore.models.sr3",
)

# Spec fields an instance may override by having an attribute of the same name.
INSTANCE_FIELDS = ("scale", "in_channels", "out_channels", "size_multiple", "receptive_field")


@dataclass(frozen=True)
class ModelSpec:
    """What a model is and how it may be run.

    - ``task``: one of :data:`TASKS`.
    - ``scale``: output size / input size (1 for everything but super-resolution).
    - ``in_channels`` / ``out_channels``: image channels in and out. An inpainting model takes
      the image and, separately, a 1-channel mask (``inputs = ("image", "mask")``).
    - ``supports_fp16`` / ``supports_bf16``: the model gives finite, close results in that type.
    - ``size_multiple``: input height and width must be multiples of this (pad first).
    - ``receptive_field``: radius in input pixels that influences one output pixel; tiling uses
      it as the tile overlap.
    - ``exact_tiling``: the receptive field is a true bound (a stack of local operators, checked by
      a gradient test), so tiles overlapping by ``2 * receptive_field`` reproduce the whole-image
      output and are pasted without a blending ramp. False: an effective radius (deep or attention
      networks whose reach decays), blended over an extra ramp.
    - ``cpu_bf16``: bf16 autocast is this model's CPU default where the CPU has native bf16 (AMX
      or AVX512-BF16; convolution-dominated networks, 1.7-3.9x faster there with scores unchanged;
      measured by ``benchmarks/cpu_precision.py``). False: float32 on every CPU.
    - ``config``: the constructor arguments of this named configuration.
    """

    name: str
    cls: Callable[..., nn.Module] = field(compare=False)
    task: str
    scale: int = 1
    in_channels: int = 3
    out_channels: int = 3
    supports_fp16: bool = True
    supports_bf16: bool = True
    size_multiple: int = 1
    receptive_field: int = 16
    exact_tiling: bool = False
    cpu_bf16: bool = False
    inputs: tuple[str, ...] = ("image",)
    config: dict[str, Any] = field(default_factory=dict, compare=False)
    summary: str = field(default="", compare=False)

    def row(self) -> dict[str, Any]:
        """The spec as a flat dict (tables, ``restore models``)."""
        return {
            "name": self.name,
            "task": self.task,
            "scale": self.scale,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "supports_fp16": self.supports_fp16,
            "supports_bf16": self.supports_bf16,
            "size_multiple": self.size_multiple,
            "receptive_field": self.receptive_field,
            "exact_tiling": self.exact_tiling,
            "cpu_bf16": self.cpu_bf16,
            "inputs": ",".join(self.inputs),
            "summary": self.summary,
        }


_REGISTRY: dict[str, ModelSpec] = {}
_builtins_loaded = False


def register_model(name: str, *, task: str, config: dict[str, Any] | None = None, **fields: Any):
    """Class decorator registering a named configuration of an architecture.

    ``fields`` are :class:`ModelSpec` fields (``scale=4``, ``supports_fp16=False``...). Stack the
    decorator to register several configurations (``edsr`` and ``edsr_full``) of one class.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"model {name!r} is already registered by {_REGISTRY[name].cls.__name__}")
        doc = inspect.getdoc(cls) or ""
        summary = fields.pop("summary", None) or (doc.splitlines()[0] if doc else "")
        _REGISTRY[name] = ModelSpec(
            name=name, cls=cls, task=task, config=dict(config or {}), summary=summary, **fields
        )
        return cls

    return decorator


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def get_spec(name: str) -> ModelSpec:
    """The registered :class:`ModelSpec`; an unknown name raises ``KeyError`` with suggestions."""
    _load_builtins()
    if name not in _REGISTRY:
        raise KeyError(
            f"unknown model {name!r}.{did_you_mean(name, list(_REGISTRY))} "
            f"See restore.models.available() for the {len(_REGISTRY)} models."
        )
    return _REGISTRY[name]


def available(task: str | None = None) -> list[str]:
    """Sorted model names, optionally only those of one task."""
    _load_builtins()
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}{did_you_mean(task, TASKS)}")
    return sorted(n for n, s in _REGISTRY.items() if task is None or s.task == task)


def specs() -> list[ModelSpec]:
    """Every registered :class:`ModelSpec`, sorted by task then name."""
    _load_builtins()
    return sorted(_REGISTRY.values(), key=lambda s: (TASKS.index(s.task), s.name))


def parameters(name: str) -> dict[str, inspect.Parameter]:
    """The constructor parameters a model accepts."""
    params = inspect.signature(get_spec(name).cls).parameters
    return {k: p for k, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def resolve_spec(spec: ModelSpec, model: nn.Module, config: dict[str, Any]) -> ModelSpec:
    """``spec`` with the instance's own ``scale``, channels, size multiple and receptive field."""
    updates = {k: getattr(model, k) for k in INSTANCE_FIELDS if isinstance(getattr(model, k, None), int)}
    return dataclasses.replace(spec, config=dict(config), **updates)


def build(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model: ``build("rrdbnet", scale=2)``.

    Unknown arguments raise ``TypeError`` with a "did you mean"; the returned module carries
    ``model.spec`` (:class:`ModelSpec` of this instance) and ``model.config`` (all arguments).
    """
    spec = get_spec(name)
    params = parameters(name)
    for key in overrides:
        if key not in params:
            raise TypeError(
                f"model {name!r} has no argument {key!r}.{did_you_mean(key, list(params))} "
                f"It takes: {', '.join(params) or 'no arguments'}."
            )
    config = {**spec.config, **overrides}
    try:
        model = spec.cls(**config)
    except (TypeError, ValueError) as err:
        raise type(err)(f"model {name!r}: {err}") from err
    attach_spec(model, resolve_spec(spec, model, config))
    return model


def attach_spec(model: nn.Module, spec: ModelSpec) -> nn.Module:
    """Set ``model.spec`` and ``model.config`` (plain attributes, not part of the state dict)."""
    model.spec = spec
    model.config = dict(spec.config)
    return model


def spec_of(model: nn.Module) -> ModelSpec:
    """The spec of a model made by :func:`build` or :func:`restore.models.load`."""
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise TypeError(
            f"{type(model).__name__} has no restore ModelSpec; make it with restore.models.build() "
            "or restore.models.load()"
        )
    return spec


def describe(name: str) -> str:
    """Spec, constructor parameters with this configuration's values, and the docstring."""
    spec = get_spec(name)
    lines = [f"{spec.name} ({spec.task}, x{spec.scale})"]
    for key, value in spec.row().items():
        if key not in ("name", "summary"):
            lines.append(f"  {key}: {value}")
    lines.append("  parameters:")
    for pname, p in parameters(name).items():
        value = spec.config.get(pname, p.default)
        shown = "" if value is inspect.Parameter.empty else f" = {value!r}"
        lines.append(f"    {pname}{shown}")
    doc = inspect.getdoc(spec.cls)
    if doc:
        lines += ["", doc]
    return "\n".join(lines)
