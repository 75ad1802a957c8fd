"""Saving and loading model weights: our safetensors files and third-party files via spandrel.

- :func:`save` writes a ``.safetensors`` file whose metadata names the registered model and its
  config, so :func:`load` rebuilds exactly that model with no other information.
- :func:`load` reads ``.safetensors`` and ``.pth``/``.pt``/``.ckpt``/``.bin``. Files without our
  metadata (published ESRGAN, Real-ESRGAN, SwinIR, NAFNet, LaMa... weights) go through spandrel,
  which detects the architecture, scale and half-precision support from the state dict. When the
  architecture is one of ours (RRDBNet, SRVGGNetCompact, SwinIR, NAFNet, LaMa) the weights are
  loaded into our implementation; other architectures come back as spandrel's module with a spec
  built from its descriptor.
- Pickled files are read with ``torch.load(weights_only=True)``: tensors and plain containers only,
  never arbitrary code.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .registry import ModelSpec, build

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
METADATA_MODEL = "restore.model"
METADATA_CONFIG = "restore.config"

# Keys under which training frameworks nest the weights, most preferred first (BasicSR and
# Real-ESRGAN store the EMA weights as "params_ema").
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "model", "net_g", "generator")

# spandrel's purposes -> our tasks.
PURPOSE_TO_TASK = {"SR": "sr", "FaceSR": "sr", "Inpainting": "inpaint", "Restoration": "restore"}

# spandrel does not report a receptive field; this overlap suits the CNNs and window
# transformers it loads (tiling uses it as the overlap in input pixels).
DEFAULT_RECEPTIVE_FIELD = 32


class WeightsFormatError(ValueError):
    """A weights file that cannot be read or matched to an architecture (the message names the file)."""


def save(model: nn.Module, path: str | os.PathLike, *, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model``'s weights and spec to a ``.safetensors`` file, atomically.

    ``model`` must come from :func:`restore.models.build` (or :func:`load` of one of ours) so its
    name and config can be recorded. Extra ``metadata`` (strings) is stored alongside.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: models are saved as .safetensors, got suffix {path.suffix!r}")
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec) or spec.name.startswith("spandrel:"):
        raise TypeError(
            f"cannot save {type(model).__name__} to {path}: only models made by restore.models.build "
            "carry the name and config that load() needs"
        )
    meta = {METADATA_MODEL: spec.name, METADATA_CONFIG: json.dumps(spec.config, sort_keys=True)}
    meta.update(metadata or {})
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a saved model is as readable as any file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _unwrap(state: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint that nests it under ``params_ema``, ``state_dict``..."""
    for _ in range(3):
        if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
            return state
        if not isinstance(state, dict):
            break
        inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if isinstance(state, dict):
        # Mixed content (e.g. tensors plus an "epoch" counter): keep the tensors.
        tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise WeightsFormatError(f"{path}: no tensor state dict found (top-level type {type(state).__name__})")


def load_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a weights file into ``(state_dict, metadata)`` on the CPU, without running pickled code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                metadata = dict(f.metadata() or {})
                state = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as err:
            raise WeightsFormatError(f"{path}: not a readable safetensors file ({err})") from err
        return state, metadata
    if suffix in PICKLE_SUFFIXES:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise WeightsFormatError(
                f"{path}: refusing to unpickle it: the file holds Python objects other than tensors and "
                f"plain containers, which could run code ({str(err).splitlines()[0]}). Convert it to "
                ".safetensors with a trusted tool, or load the state dict yourself if you trust the file."
            ) from err
        except (RuntimeError, EOFError, OSError) as err:
            raise WeightsFormatError(f"{path}: not a readable PyTorch file ({err})") from err
        return _unwrap(raw, path), {}
    raise WeightsFormatError(
        f"{path}: unsupported weights suffix {path.suffix!r}; expected one of "
        f"{', '.join(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)}"
    )


def spec_from_descriptor(descriptor: Any) -> ModelSpec:
    """A :class:`ModelSpec` for a model spandrel loaded (architecture, scale, channels, half support)."""
    arch = descriptor.architecture
    task = PURPOSE_TO_TASK.get(descriptor.purpose, "restore")
    if task == "sr" and descriptor.scale == 1:
        task = "restore"
    return ModelSpec(
        name=f"spandrel:{arch.id}",
        cls=type(descriptor.model),
        task=task,
        scale=int(descriptor.scale),
        in_channels=int(descriptor.input_channels),
        out_channels=int(descriptor.output_channels),
        supports_fp16=bool(descriptor.supports_half),
        supports_bf16=bool(descriptor.supports_bfloat16),
        size_multiple=int(descriptor.size_requirements.multiple_of),
        receptive_field=DEFAULT_RECEPTIVE_FIELD,
        inputs=("image", "mask") if task == "inpaint" else ("image",),
        summary=f"{arch.name} loaded by spandrel",
    )


def _our_config(descriptor: Any) -> tuple[str, dict[str, Any]] | None:
    """The registered model and config equivalent to a spandrel-detected one, if we have it."""
    arch = descriptor.architecture.id
    hp = getattr(descriptor.model, "hyperparameters", {})
    if arch == "ESRGAN" and not hp.get("plus") and hp.get("upsampler") == "upconv" and hp.get("norm") is None:
        return "rrdbnet", {
            "scale": int(descriptor.scale),
            "num_in_ch": int(descriptor.input_channels),
            "num_out_ch": int(descriptor.output_channels),
            "num_feat": hp["num_filters"],
            "num_block": hp["num_blocks"],
        }
    if arch == "Compact":
        keys = ("num_in_ch", "num_out_ch", "num_feat", "num_conv", "act_type")
        return "compact", {"scale": hp["upscale"], **{k: hp[k] for k in keys}}
    if arch == "SwinIR":
        defaults = {"patch_size": 1, "qkv_bias": True, "qk_scale": None, "ape": False, "patch_norm": True,
                    "start_unshuffle": 1}
        if any(hp.get(k, v) != v for k, v in defaults.items()):
            return None
        keys = ("embed_dim", "depths", "num_heads", "window_size", "mlp_ratio", "upsampler",
                "resi_connection", "img_size", "img_range")
        config = {"scale": hp["upscale"], "in_channels": hp["in_chans"], "drop_path_rate": 0.0}
        return "swinir_light", {**config, **{k: hp[k] for k in keys}}
    if arch == "NAFNet":
        keys = ("img_channel", "width", "middle_blk_num", "enc_blk_nums", "dec_blk_nums")
        return "nafnet", {k: hp[k] for k in keys}
    if arch == "LaMa":
        return "lama", {"in_channels": hp["in_nc"] - 1, "out_channels": hp["out_nc"]}
    return None


def _as_ours(descriptor: Any, state: dict[str, torch.Tensor]) -> nn.Module | None:
    """Our implementation of a spandrel-detected model with its weights, or None.

    Ours runs the numerically fragile parts in float32 under autocast (LaMa's FFTs, NAFNet's
    layer norm, SwinIR's softmax), carries a full spec and can be saved with :func:`save`. The
    weights are taken as found in the file or as spandrel canonicalised them, whichever fits.
    """
    found = _our_config(descriptor)
    if found is None:
        return None
    name, config = found
    try:
        model = build(name, **config)
    except (KeyError, TypeError, ValueError):
        return None
    for candidate in (state, descriptor.model.state_dict()):
        try:
            model.load_state_dict(candidate, strict=True)
        except RuntimeError:
            continue
        return model
    return None


def _load_with_spandrel(state: dict[str, torch.Tensor], path: Path) -> nn.Module:
    from spandrel import ModelLoader, UnsupportedModelError

    try:
        descriptor = ModelLoader().load_from_state_dict(state)
    except UnsupportedModelError as err:
        raise WeightsFormatError(
            f"{path}: no known architecture matches these weights ({len(state)} tensors, first key "
            f"{next(iter(state), '<none>')!r}); neither restore's metadata nor spandrel recognised them"
        ) from err
    ours = _as_ours(descriptor, state)
    if ours is not None:
        return ours
    model = descriptor.model
    model.spec = spec_from_descriptor(descriptor)
    model.config = {}
    return model


def load(path: str | os.PathLike, *, device: str | torch.device = "cpu", strict: bool = True) -> nn.Module:
    """Load a model from a weights file; the module returned carries ``.spec`` and is in eval mode.

    ``.safetensors`` written by :func:`save` rebuild our registered model; anything else
    (published ``.pth`` or ``.safetensors`` files) is identified by spandrel.
    """
    path = Path(path)
    state, metadata = load_state_dict(path)
    if METADATA_MODEL in metadata:
        name = metadata[METADATA_MODEL]
        config = json.loads(metadata.get(METADATA_CONFIG, "{}"))
        try:
            model = build(name, **config)
        except KeyError as err:
            raise WeightsFormatError(f"{path}: {err.args[0]}") from err
        try:
            model.load_state_dict(state, strict=strict)
        except RuntimeError as err:
            raise WeightsFormatError(f"{path}: weights do not fit model {name!r}: {err}") from err
    else:
        model = _load_with_spandrel(state, path)
    return model.to(device).eval()
