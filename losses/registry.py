"""The loss registry: entries with metadata, creation with argument checks, "did you mean".

Every entry is an ``nn.Module`` class registered with :func:`register`. The metadata says what
the entry works on and how it must be run; :func:`create` returns the module wrapped in a
:class:`RegisteredLoss`, which enforces the mixed-precision policy (``fp32`` entries run with
autocast off on float32 inputs) so a new loss gets it for free.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .precision import float32_call

MODALITIES = ("image", "audio", "any")
KINDS = (
    "pixel",
    "structural",
    "frequency",
    "perceptual",
    "adversarial",
    "spectral",
    "waveform",
    "contrastive",
    "weighting",
)

# Modules that hold the built-in entries; imported on first use of the registry, not at
# ``import losses`` (heavy optional dependencies are imported inside each entry).
BUILTIN_MODULES = (
    "losses.pixel",
    "losses.structural",
    "losses.gradient",
    "losses.frequency",
    "losses.perceptual",
    "losses.gmsd",
    "losses.adversarial",
    "losses.spectral",
    "losses.waveform",
    "losses.contrastive",
    "losses.weighting",
    "losses.diffusion",
)


@dataclass(frozen=True)
class LossSpec:
    """Metadata of one registry entry.

    ``inputs`` are the names of the required call arguments in order (``("pred", "target")``
    for most entries); ``optional_inputs`` are keyword arguments the entry uses when the caller
    provides them (a per-pixel ``weight``, a ``mask``, a ``grad_scaler``...).
    """

    name: str
    cls: Callable[..., nn.Module]
    kind: str
    modality: str = "any"
    lower_is_better: bool = True
    input_range: str = "any"
    needs_weights: bool = False
    fp32: bool = False
    inputs: tuple[str, ...] = ("pred", "target")
    optional_inputs: tuple[str, ...] = ()
    summary: str = field(default="", compare=False)

    def row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "modality": self.modality,
            "lower_is_better": self.lower_is_better,
            "input_range": self.input_range,
            "needs_weights": self.needs_weights,
            "fp32": self.fp32,
            "inputs": ", ".join(self.inputs + tuple(f"[{o}]" for o in self.optional_inputs)),
            "summary": self.summary,
        }


_REGISTRY: dict[str, LossSpec] = {}
_builtins_loaded = False


def register(
    name: str,
    *,
    kind: str,
    modality: str = "any",
    lower_is_better: bool = True,
    input_range: str = "any",
    needs_weights: bool = False,
    fp32: bool = False,
    inputs: tuple[str, ...] = ("pred", "target"),
    optional_inputs: tuple[str, ...] = (),
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that adds an ``nn.Module`` loss to the registry under ``name``."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"loss {name!r} is already registered by {_REGISTRY[name].cls.__qualname__}")
        doc = inspect.getdoc(cls) or ""
        _REGISTRY[name] = LossSpec(
            name=name,
            cls=cls,
            kind=kind,
            modality=modality,
            lower_is_better=lower_is_better,
            input_range=input_range,
            needs_weights=needs_weights,
            fp32=fp32,
            inputs=tuple(inputs),
            optional_inputs=tuple(optional_inputs),
            summary=doc.splitlines()[0] if doc else "",
        )
        return cls

    return decorator


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """A " Did you mean 'x'?" suffix for an error message, or "" when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


def get(name: str) -> LossSpec:
    """The :class:`LossSpec` of an entry; an unknown name raises ``KeyError`` with suggestions."""
    _load_builtins()
    if name not in _REGISTRY:
        raise KeyError(
            f"unknown loss {name!r}.{did_you_mean(name, list(_REGISTRY))} "
            f"See losses.available() or `restore losses` for the {len(_REGISTRY)} entries."
        )
    return _REGISTRY[name]


def available(modality: str | None = None, kind: str | None = None) -> list[str]:
    """Sorted entry names; ``modality="image"`` also lists the modality-agnostic ("any") entries."""
    _load_builtins()
    if modality is not None and modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}{did_you_mean(kind, KINDS)}")
    names = []
    for name, spec in _REGISTRY.items():
        if modality is not None and spec.modality not in (modality, "any"):
            continue
        if kind is not None and spec.kind != kind:
            continue
        names.append(name)
    return sorted(names)


def specs() -> list[LossSpec]:
    """Every :class:`LossSpec`, sorted by kind then name."""
    _load_builtins()
    return sorted(_REGISTRY.values(), key=lambda s: (KINDS.index(s.kind), s.name))


def parameters(name: str) -> dict[str, inspect.Parameter]:
    """The constructor parameters an entry accepts."""
    params = inspect.signature(get(name).cls).parameters
    return {k: p for k, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def describe(name: str) -> str:
    """A readable description: metadata, constructor parameters with defaults, and the docstring."""
    spec = get(name)
    lines = [f"{spec.name} ({spec.kind}, modality={spec.modality})"]
    for key, value in spec.row().items():
        if key not in ("name", "summary"):
            lines.append(f"  {key}: {value}")
    params = parameters(name)
    if params:
        lines.append("  parameters:")
        for pname, p in params.items():
            default = "" if p.default is inspect.Parameter.empty else f" = {p.default!r}"
            lines.append(f"    {pname}{default}")
    doc = inspect.getdoc(spec.cls)
    if doc:
        lines.append("")
        lines.append(doc)
    return "\n".join(lines)


class RegisteredLoss(nn.Module):
    """A registry entry's module together with its :class:`LossSpec`.

    Calling it runs the entry; an ``fp32`` entry runs with autocast disabled and its floating
    tensor inputs cast to float32, whatever the caller's autocast state.
    """

    def __init__(self, spec: LossSpec, loss: nn.Module) -> None:
        super().__init__()
        self.spec = spec
        self.loss = loss

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.spec.fp32:
            return float32_call(self.loss, *args, **kwargs)
        return self.loss(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"name={self.spec.name!r}, fp32={self.spec.fp32}"


def check_arguments(name: str, kwargs: dict[str, Any]) -> None:
    """Raise ``TypeError`` naming the entry when ``kwargs`` holds an argument it does not take."""
    params = parameters(name)
    for key in kwargs:
        if key not in params:
            raise TypeError(
                f"loss {name!r} has no argument {key!r}.{did_you_mean(key, list(params))} "
                f"It takes: {', '.join(params) or 'no arguments'}."
            )


def create(name: str, **kwargs: Any) -> RegisteredLoss:
    """Build one entry, checking its arguments first: ``create("ssim", window_size=7)``."""
    spec = get(name)
    if spec.kind == "weighting":
        raise ValueError(
            f"{name!r} is a weighting strategy, not a loss term: use it as "
            f"losses.build({{...}}, weighting={name!r}) or the config key 'weighting'."
        )
    check_arguments(name, kwargs)
    try:
        module = spec.cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise type(err)(f"loss {name!r}: {err}") from err
    return RegisteredLoss(spec, module)
