"""Perceptual losses on pretrained networks: ``vgg`` (BasicSR's PerceptualLoss) and ``lpips``.

Both take ``pred`` and ``target`` images ``(N, 3, H, W)`` in [0, 1]. The frozen backbone may run
under autocast; feature normalisation, Gram matrices and distances run in float32 with autocast
off.

Weights (``weights=``):

- ``"imagenet"`` (default): torchvision's ImageNet weights, read from torch.hub's cache
  (``torch.hub.get_dir()/checkpoints/<torchvision file name>``, e.g. ``vgg19-dcbb9e9d.pth``)
  without downloading. When the file is absent, :class:`WeightsNotFoundError` says which file to
  put where and the URL it comes from; ``allow_download=True`` lets torchvision download it.
- a path to a local ``.pth`` or ``.safetensors`` state dict of the backbone (a torchvision model
  state dict, its ``features`` alone, or the lpips package's ``net.sliceK.*`` keys).
- an injected state dict (any mapping of the same keys), e.g. weights already in memory.
- ``"random"``: torchvision's random initialisation (for tests).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .precision import float32_call
from .reduction import check_reduction, weighted_reduce
from .registry import did_you_mean, register

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsNotFoundError(RuntimeError):
    """Pretrained weights were asked for but the file is not on this machine (nothing is downloaded)."""


# ---------------------------------------------------------------------------------------------
# Backbones: torchvision ``features`` stacks, built without the classifier, and their weights
# ---------------------------------------------------------------------------------------------


def torchvision_weights_url(arch: str) -> str:
    """The URL of torchvision's ImageNet weights for ``arch`` (``"vgg19"``, ``"alexnet"``...)."""
    import torchvision

    return torchvision.models.get_model_weights(arch).IMAGENET1K_V1.url


def torchvision_weights_path(arch: str) -> Path:
    """Where torch.hub keeps torchvision's weights for ``arch``: ``get_dir()/checkpoints/<file>``."""
    filename = os.path.basename(torchvision_weights_url(arch))
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` or ``.pth`` state dict on the CPU (``torch.load(weights_only=True)``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return dict(state)


def backbone_state_dict(
    arch: str, weights: str | os.PathLike | Mapping[str, torch.Tensor], allow_download: bool = False
) -> dict | None:
    """The state dict for a backbone: ``"imagenet"`` from torch.hub's cache, a local file, an
    injected state dict (a mapping, passed through), or ``None`` for ``"random"``. Missing
    ImageNet weights raise :class:`WeightsNotFoundError`."""
    if isinstance(weights, Mapping):
        return dict(weights)
    if isinstance(weights, str) and weights == "random":
        return None
    if isinstance(weights, str) and weights == "imagenet":
        path = torchvision_weights_path(arch)
        if path.is_file():
            return load_state_dict_file(path)
        url = torchvision_weights_url(arch)
        if allow_download:
            import torchvision

            return torchvision.models.get_model_weights(arch).IMAGENET1K_V1.get_state_dict(progress=True)
        raise WeightsNotFoundError(
            f"ImageNet weights for {arch} are not on this machine and nothing is downloaded by default. "
            f"Expected the file {path.name!r} in the directory {str(path.parent)!r} "
            f"(torch.hub.get_dir()/checkpoints; TORCH_HOME moves it). Get it from {url} and put it there, "
            f"or pass weights='/path/to/{path.name}' (a .pth or .safetensors state dict), "
            f"or allow_download=True to let torchvision download it, or weights='random' for tests."
        )
    if isinstance(weights, str) and not Path(weights).suffix and not Path(weights).expanduser().exists():
        choices = ["imagenet", "random"]
        raise ValueError(
            f"weights must be 'imagenet', 'random' or a .pth/.safetensors file, got {weights!r}."
            f"{did_you_mean(weights.lower(), choices)}"
        )
    if isinstance(weights, (str, os.PathLike)):
        return load_state_dict_file(weights)
    raise ValueError(f"weights must be 'imagenet', 'random', a file path or a state dict, got {weights!r}")


_SLICE_KEY = re.compile(r"^(?:net\.)?slice\d+\.")


def _features_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys of a torchvision model (``features.3.weight``), of its ``features`` (``3.weight``) or of
    the lpips package (``net.slice2.3.weight``) -> ``3.weight``; other keys (classifier) dropped."""
    out = {}
    for key, value in state.items():
        if key.startswith("module."):
            key = key[len("module.") :]
        if key.startswith("features."):
            key = key[len("features.") :]
        elif _SLICE_KEY.match(key):
            key = _SLICE_KEY.sub("", key)
        if key[:1].isdigit():
            out[key] = value
    return out


def _init_features(features: nn.Sequential, family: str) -> None:
    """torchvision's random initialisation of a ``features`` stack (VGG, AlexNet, SqueezeNet)."""
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            if family == "vgg":
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif family == "squeezenet":
                nn.init.kaiming_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            else:
                module.reset_parameters()
        elif isinstance(module, nn.BatchNorm2d):
            module.reset_parameters()


def build_features(
    arch: str,
    depth: int | None = None,
    weights: str | os.PathLike | Mapping[str, torch.Tensor] = "random",
    allow_download: bool = False,
) -> nn.Sequential:
    """torchvision ``<arch>().features[:depth]``, initialised or loaded, frozen and in eval mode.

    The classifier is never built (the model is made on the meta device), so a VGG19 costs only
    its convolutions.
    """
    import torchvision

    state = backbone_state_dict(arch, weights, allow_download)
    with torch.device("meta"):
        model = getattr(torchvision.models, arch)(weights=None)
    features = model.features if depth is None else model.features[:depth]
    features = features.to_empty(device="cpu")
    if state is None:
        family = (
            "vgg" if arch.startswith("vgg") else "squeezenet" if arch.startswith("squeezenet") else "alexnet"
        )
        _init_features(features, family)
    else:
        state = _features_keys(state)
        own = features.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise ValueError(
                f"the weights for {arch} lack {len(missing)} backbone entries, e.g. {missing[:4]}; "
                f"expected a torchvision {arch} state dict (keys 'features.N.weight') or its features"
            )
        wrong = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
        if wrong:
            k = wrong[0]
            raise ValueError(
                f"the weights do not fit {arch}: {k} has shape {tuple(state[k].shape)}, "
                f"expected {tuple(own[k].shape)}"
            )
        features.load_state_dict({k: state[k] for k in own})
    features.requires_grad_(False)
    return features.eval()


def _run(features: nn.Sequential, x: torch.Tensor, taps: Mapping[int, Any]) -> dict[Any, torch.Tensor]:
    """Run ``features`` and return the outputs of the layers listed in ``taps`` (index -> key)."""
    param = next(features.parameters(), None)
    if param is not None and param.dtype != x.dtype:
        x = x.to(param.dtype)  # a backbone converted with .half()/.bfloat16() outside autocast
    # channels_last: measured ~1.5-4x faster convolutions on CPU, and what CUDA tensor cores want
    x = x.contiguous(memory_format=torch.channels_last)
    out = {}
    last = max(taps)
    for index, layer in enumerate(features):
        x = layer(x)
        if index in taps:
            out[taps[index]] = x
        if index == last:
            break
    return out


class _FrozenBackboneLoss(nn.Module):
    """Keeps its backbone in eval mode whatever ``train()`` says, and out of ``state_dict()``.

    The frozen backbone comes from its weights source (torchvision's file, a local path), not
    from training, so saving it would only add ~80 MB (VGG19) to every checkpoint that holds the
    loss; loading a state dict without it is accepted.
    """

    features: nn.Sequential

    def train(self, mode: bool = True) -> _FrozenBackboneLoss:
        super().train(mode)
        self.features.eval()
        return self

    def state_dict(
        self, *args: Any, destination: Any = None, prefix: str = "", keep_vars: bool = False
    ) -> Any:
        state = super().state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)
        for key in [k for k in state if k.startswith(prefix + "features.")]:
            del state[key]
        return state

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        # a state dict saved without the backbone keeps the backbone this loss was built with
        for key, value in self.features.state_dict(prefix=prefix + "features.").items():
            state_dict.setdefault(key, value)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _check_images(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"expected RGB images (N, 3, H, W), got shape {tuple(pred.shape)}")


# ---------------------------------------------------------------------------------------------
# VGG perceptual + style loss (BasicSR's PerceptualLoss)
# ---------------------------------------------------------------------------------------------

VGG_NETWORKS = ("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")
CRITERIA = ("l1", "l2", "fro")


def vgg_layer_names(features: nn.Sequential) -> list[str]:
    """BasicSR's layer names for a VGG ``features`` stack: conv1_1, relu1_1, ..., pool1, conv2_1...

    With batch norm: conv1_1, bn1_1, relu1_1... (BasicSR's ``insert_bn``).
    """
    names, block, index = [], 1, 0
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            index += 1
            names.append(f"conv{block}_{index}")
        elif isinstance(layer, nn.BatchNorm2d):
            names.append(f"bn{block}_{index}")
        elif isinstance(layer, nn.ReLU):
            names.append(f"relu{block}_{index}")
        elif isinstance(layer, nn.MaxPool2d):
            names.append(f"pool{block}")
            block, index = block + 1, 0
        else:  # pragma: no cover - torchvision VGGs hold only these
            raise TypeError(f"unexpected layer in a VGG: {layer}")
    return names


def _vgg_names(network: str) -> list[str]:
    import torchvision

    with torch.device("meta"):
        return vgg_layer_names(getattr(torchvision.models, network)(weights=None).features)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``f f^T / (c h w)`` of features ``(N, C, H, W)`` -> ``(N, C, C)`` (BasicSR)."""
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def feature_distance(x: torch.Tensor, y: torch.Tensor, criterion: str = "l1") -> torch.Tensor:
    """Mean absolute (``l1``) or squared (``l2``) difference, or the Frobenius norm (``fro``) of it."""
    if criterion == "l1":
        return F.l1_loss(x, y)
    if criterion == "l2":
        return F.mse_loss(x, y)
    if criterion == "fro":
        return torch.linalg.vector_norm(x - y)  # zero gradient (not NaN) at x == y
    raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")


def perceptual_style_loss(
    pred_features: Mapping[str, torch.Tensor],
    target_features: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float],
    perceptual_weight: float = 1.0,
    style_weight: float = 0.0,
    criterion: str = "l1",
) -> torch.Tensor:
    """``perceptual_weight * sum_k w_k d(f_k, g_k) + style_weight * sum_k w_k d(G(f_k), G(g_k))``.

    Run it in float32 (the registry entry calls it through ``float32_call``).
    """
    total = pred_features[next(iter(layer_weights))].new_zeros(())
    if perceptual_weight > 0:
        percep = sum(
            feature_distance(pred_features[k], target_features[k], criterion) * w
            for k, w in layer_weights.items()
        )
        total = total + perceptual_weight * percep
    if style_weight > 0:
        style = sum(
            feature_distance(gram_matrix(pred_features[k]), gram_matrix(target_features[k]), criterion) * w
            for k, w in layer_weights.items()
        )
        total = total + style_weight * style
    return total


@register("vgg", kind="perceptual", modality="image", input_range="[0,1]", needs_weights=True)
class PerceptualLoss(_FrozenBackboneLoss):
    """VGG perceptual and style (Gram) loss, as BasicSR's PerceptualLoss (ESRGAN: conv5_4, L1).

    ``layer_weights`` maps BasicSR layer names (``conv1_1``, ``relu1_1``, ``pool1``, ...,
    ``conv5_4``, ``relu5_4``) to weights; by default the network's last convolution before its
    activation (``{"conv5_4": 1.0}`` for VGG19). The backbone is cut after the deepest requested
    layer and frozen. As in BasicSR, the target's features are computed without gradient.
    Inputs ``(N, 3, H, W)`` in [0, 1] (``range_norm=True`` for [-1, 1]); returns a scalar.
    """

    def __init__(
        self,
        layer_weights: Mapping[str, float] | None = None,
        network: str = "vgg19",
        use_input_norm: bool = True,
        range_norm: bool = False,
        perceptual_weight: float = 1.0,
        style_weight: float = 0.0,
        criterion: str = "l1",
        weights: str | os.PathLike | Mapping[str, torch.Tensor] = "imagenet",
        allow_download: bool = False,
    ) -> None:
        super().__init__()
        if network not in VGG_NETWORKS:
            raise ValueError(
                f"network must be one of {VGG_NETWORKS}, got {network!r}{did_you_mean(network, VGG_NETWORKS)}"
            )
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
        if perceptual_weight < 0 or style_weight < 0:
            raise ValueError("perceptual_weight and style_weight must be >= 0")
        if perceptual_weight == 0 and style_weight == 0:
            raise ValueError("perceptual_weight and style_weight are both 0: the loss would be constant")
        names = _vgg_names(network)
        if layer_weights is None:
            layer_weights = {[n for n in names if n.startswith("conv")][-1]: 1.0}
        if not isinstance(layer_weights, Mapping) or not layer_weights:
            raise ValueError(
                f"layer_weights must be a non-empty mapping of layer name -> weight, got {layer_weights!r}"
            )
        for name, weight in layer_weights.items():
            if name not in names:
                raise ValueError(
                    f"unknown layer {name!r} for {network}.{did_you_mean(name, names)} "
                    f"Layers: {', '.join(names)}"
                )
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ValueError(f"layer weight for {name!r} must be a number, got {weight!r}")
        self.network = network
        self.layer_weights = {name: float(w) for name, w in layer_weights.items()}
        self.layer_index = {name: names.index(name) for name in self.layer_weights}
        self.use_input_norm, self.range_norm = bool(use_input_norm), bool(range_norm)
        self.perceptual_weight, self.style_weight = float(perceptual_weight), float(style_weight)
        self.criterion = criterion
        depth = max(self.layer_index.values()) + 1
        self.features = build_features(network, depth, weights, allow_download)
        for module in self.features.modules():
            if isinstance(module, nn.ReLU):
                module.inplace = False  # a tapped conv output must survive the ReLU after it
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def extract(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The requested layers' outputs for images ``(N, 3, H, W)``."""
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        taps = {index: name for name, index in self.layer_index.items()}
        return _run(self.features, x, taps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_images(pred, target)
        pred_features = self.extract(pred)
        with torch.no_grad():
            target_features = self.extract(target.detach())
        return float32_call(
            perceptual_style_loss,
            pred_features,
            target_features,
            self.layer_weights,
            self.perceptual_weight,
            self.style_weight,
            self.criterion,
        )

    def extra_repr(self) -> str:
        return (
            f"network={self.network!r}, layer_weights={self.layer_weights}, criterion={self.criterion!r}, "
            f"perceptual_weight={self.perceptual_weight}, style_weight={self.style_weight}"
        )


# ---------------------------------------------------------------------------------------------
# LPIPS (Zhang et al. 2018) on the lpips package's networks and linear layers
# ---------------------------------------------------------------------------------------------

# net -> (torchvision arch, indices of the layers whose outputs are compared, their channels);
# the same slices as lpips.pretrained_networks.
LPIPS_NETS: dict[str, tuple[str, tuple[int, ...], tuple[int, ...]]] = {
    "alex": ("alexnet", (1, 4, 7, 9, 11), (64, 192, 384, 256, 256)),
    "vgg": ("vgg16", (3, 8, 15, 22, 29), (64, 128, 256, 512, 512)),
    "squeeze": ("squeezenet1_1", (1, 4, 7, 9, 10, 11, 12), (64, 128, 256, 384, 384, 512, 512)),
}
_LIN_KEY = re.compile(r"^lins?\.?(\d+)(?:\.model\.\d+)?\.weight$")


def lpips_package_lin_path(net: str, version: str = "0.1") -> Path:
    """The linear-layer weights shipped inside the lpips package: ``lpips/weights/v0.1/<net>.pth``."""
    try:
        import lpips
    except ImportError as err:  # pragma: no cover - lpips is a dependency
        raise ImportError("lin_weights='package' needs the lpips package: pip install lpips") from err
    return Path(lpips.__file__).resolve().parent / "weights" / f"v{version}" / f"{net}.pth"


def normalize_features(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Unit-normalise features ``(N, C, H, W)`` along channels: ``x / sqrt(sum_c x^2 + eps)``.

    The eps is inside the square root: lpips' ``x / (sqrt(sum x^2) + eps)`` has a NaN gradient
    where a feature vector is all zero.
    """
    return x / torch.sqrt(x.square().sum(dim=1, keepdim=True) + eps)


def lpips_from_features(
    pred_features: list[torch.Tensor],
    target_features: list[torch.Tensor],
    lin_weights: list[torch.Tensor],
    eps: float = 1e-10,
) -> torch.Tensor:
    """LPIPS per image ``(N,)`` from the backbone features and the 1x1 linear weights ``(1, C, 1, 1)``.

    ``sum_l mean_hw(w_l . (n(f_l) - n(g_l))^2)``, as ``lpips.LPIPS.forward`` (spatial average).
    """
    total = None
    for f, g, w in zip(pred_features, target_features, lin_weights, strict=True):
        diff = (normalize_features(f, eps) - normalize_features(g, eps)).square()
        layer = F.conv2d(diff, w.to(diff.dtype)).mean(dim=(2, 3))
        total = layer if total is None else total + layer
    return total.flatten()


@register("lpips", kind="perceptual", modality="image", input_range="[0,1]", needs_weights=True)
class LPIPSLoss(_FrozenBackboneLoss):
    """LPIPS (Zhang et al. 2018) with the lpips package's networks and linear layers, NaN-free.

    ``net``: ``"alex"``, ``"vgg"`` or ``"squeeze"`` (version 0.1). Inputs ``(N, 3, H, W)`` in
    [0, 1] are mapped to [-1, 1] here. Same value as ``lpips.LPIPS(net=net)(pred, target,
    normalize=True)``, with the eps of the channel normalisation inside the square root so all-zero
    features give finite gradients. ``weights`` is for the backbone (see the module docstring);
    ``lin_weights`` is ``"package"`` (the lpips package's file), a path, or ``"random"``.
    Returns the mean over the batch (``reduction="none"``: ``(N,)``).
    """

    def __init__(
        self,
        net: str = "alex",
        version: str = "0.1",
        weights: str | os.PathLike | Mapping[str, torch.Tensor] = "imagenet",
        lin_weights: str | os.PathLike = "package",
        allow_download: bool = False,
        eps: float = 1e-10,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if net == "vgg16":
            net = "vgg"
        if net not in LPIPS_NETS:
            raise ValueError(
                f"net must be one of {tuple(LPIPS_NETS)}, got {net!r}{did_you_mean(net, list(LPIPS_NETS))}"
            )
        if str(version) != "0.1":
            raise ValueError(
                f"only LPIPS version '0.1' is supported (the lpips package's weights), got {version!r}"
            )
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.reduction = check_reduction(reduction)
        self.net, self.version, self.eps = net, "0.1", float(eps)
        arch, self.taps, channels = LPIPS_NETS[net]
        self.features = build_features(arch, self.taps[-1] + 1, weights, allow_download)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in channels)
        if not (isinstance(lin_weights, str) and lin_weights == "random"):
            path = lpips_package_lin_path(net) if lin_weights == "package" else lin_weights
            self._load_lins(load_state_dict_file(path), path)
        self.lins.requires_grad_(False)
        # lpips.ScalingLayer: [-1, 1] -> ImageNet-normalised
        self.register_buffer(
            "shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)

    def _load_lins(self, state: Mapping[str, torch.Tensor], source: Any) -> None:
        found = {}
        for key, value in state.items():
            match = _LIN_KEY.match(key)
            if match:
                found[int(match.group(1))] = value
        for k, lin in enumerate(self.lins):
            if k not in found:
                raise ValueError(
                    f"{source}: no weights for LPIPS linear layer {k} (keys like 'lin{k}.model.1.weight')"
                )
            if tuple(found[k].shape) != tuple(lin.weight.shape):
                raise ValueError(
                    f"{source}: linear layer {k} has shape {tuple(found[k].shape)}, "
                    f"expected {tuple(lin.weight.shape)}"
                )
            with torch.no_grad():
                lin.weight.copy_(found[k])

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The compared backbone outputs for images ``(N, 3, H, W)`` in [0, 1]."""
        x = (2 * x - 1 - self.shift) / self.scale
        out = _run(self.features, x, {index: k for k, index in enumerate(self.taps)})
        return [out[k] for k in range(len(self.taps))]

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_images(pred, target)
        with torch.set_grad_enabled(torch.is_grad_enabled() and target.requires_grad):
            target_features = self.extract(target)  # no graph for a target that needs no gradient
        dist = float32_call(
            lpips_from_features,
            self.extract(pred),
            target_features,
            [lin.weight for lin in self.lins],
            self.eps,
        )
        return weighted_reduce(dist, None, self.reduction)

    def extra_repr(self) -> str:
        return f"net={self.net!r}, version={self.version!r}, eps={self.eps}, reduction={self.reduction!r}"
