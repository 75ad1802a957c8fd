"""Contrastive losses: PatchNCE (CUT) and image-level InfoNCE, with the decoupled (DCL) option.

Both share one core, :func:`nce_per_query`: features are L2-normalised in float32, the logits are
``q @ k^T / temperature`` within each group of ``M`` rows, the positive of query ``i`` is key
``i`` and the other ``M - 1`` keys of its group are the negatives.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .precision import float32
from .reduction import check_reduction, tensor_list, weighted_reduce
from .registry import register

FeatureInput = torch.Tensor | Sequence[torch.Tensor]


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``x / sqrt(sum(x^2) + eps)`` over the last dimension: finite gradients at ``x = 0``."""
    return x * torch.rsqrt(x.square().sum(-1, keepdim=True) + eps)


@float32
def nce_per_query(
    query: torch.Tensor,
    key: torch.Tensor,
    temperature: float = 0.07,
    decoupled: bool = False,
    normalize: bool = True,
    eps: float = 1e-12,
) -> torch.Tensor:
    """InfoNCE of each query against the keys of its group; runs in float32 with autocast off.

    ``query``, ``key``: ``(..., M, C)``; leading dimensions index independent groups. Returns
    ``(..., M)``: ``logsumexp_j(l_ij) - l_ii`` with ``l = q k^T / temperature`` (cross entropy
    with the diagonal as targets), or with ``decoupled=True`` (DCL, Yeh et al. 2022) the
    positive left out of the denominator: ``-l_ii + logsumexp_{j != i}(l_ij)``.
    """
    if query.shape != key.shape:
        raise ValueError(f"query and key shapes differ: {tuple(query.shape)} vs {tuple(key.shape)}")
    if query.ndim < 2 or query.shape[-2] < 2:
        raise ValueError(
            f"contrastive losses need at least 2 rows per group (the others are the negatives), "
            f"got query of shape {tuple(query.shape)}"
        )
    if normalize:
        query, key = l2_normalize(query, eps), l2_normalize(key, eps)
    logits = query @ key.transpose(-1, -2) / temperature
    positive = logits.diagonal(dim1=-2, dim2=-1)
    if decoupled:
        eye = torch.eye(logits.shape[-1], dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(eye, float("-inf"))
    return torch.logsumexp(logits, dim=-1) - positive


def _check_temperature(temperature: float) -> float:
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return float(temperature)


def patchnce_loss(
    query: FeatureInput,
    key: FeatureInput,
    temperature: float = 0.07,
    decoupled: bool = False,
    negatives_within_batch: bool = True,
    detach_key: bool = True,
    normalize: bool = True,
) -> torch.Tensor:
    """PatchNCE loss of CUT (Park et al. 2020): each query patch against the key patches.

    ``query``/``key``: ``(N, C)`` (all ``N`` patches are one group), ``(B, N, C)``, or a list of
    such tensors, one per encoder layer (the result is the mean over layers). For 3-D input,
    ``negatives_within_batch=True`` (CUT's default) takes the negatives from the other patches
    of the same image (one group per image); ``False`` pools all ``B * N`` patches of the batch
    (CUT's ``--nce_includes_all_negatives_from_minibatch``). ``detach_key`` (CUT: true) stops
    gradients through the keys (the real image's features). Returns a float32 scalar.
    """
    _check_temperature(temperature)
    queries, keys = tensor_list(query, "query"), tensor_list(key, "key")
    if len(queries) != len(keys):
        raise ValueError(f"query and key have {len(queries)} and {len(keys)} layers")
    per_layer = []
    for q, k in zip(queries, keys, strict=True):
        if q.ndim not in (2, 3):
            raise ValueError(f"patchnce features must be (N, C) or (B, N, C), got shape {tuple(q.shape)}")
        if detach_key:
            k = k.detach()
        if q.ndim == 3 and not negatives_within_batch:
            q, k = q.reshape(1, -1, q.shape[-1]), k.reshape(1, -1, k.shape[-1])
        per_layer.append(nce_per_query(q, k, temperature, decoupled, normalize).mean())
    return torch.stack(per_layer).mean()


def infonce_loss(
    query: torch.Tensor,
    key: torch.Tensor,
    temperature: float = 0.07,
    symmetric: bool = False,
    decoupled: bool = False,
    normalize: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    """Image-level InfoNCE between paired embeddings ``(N, C)``: row ``i`` of ``key`` is the positive.

    The other ``N - 1`` keys of the batch are the negatives. ``symmetric=True`` averages the
    query->key and key->query directions (CLIP). Gradients flow into both inputs. With
    ``reduction="none"`` returns ``(N,)`` (per pair; the mean of both directions if symmetric).
    """
    _check_temperature(temperature)
    check_reduction(reduction)
    if query.ndim != 2:
        raise ValueError(f"infonce features must be (N, C), got shape {tuple(query.shape)}")
    loss = nce_per_query(query, key, temperature, decoupled, normalize)
    if symmetric:
        loss = 0.5 * (loss + nce_per_query(key, query, temperature, decoupled, normalize))
    return weighted_reduce(loss, None, reduction)


@register("patchnce", kind="contrastive", input_range="features", fp32=True, inputs=("query", "key"))
class PatchNCELoss(nn.Module):
    """PatchNCE contrastive loss of CUT (InfoNCE over patches; optional decoupled DCL form).

    ``query``/``key``: ``(N, C)``, ``(B, N, C)`` or a list of those (one per layer, averaged).
    Positives are the same index; negatives the other patches of the same image
    (``negatives_within_batch=True``) or of the whole batch. Keys are detached by default.
    Features are L2-normalised in float32; ``temperature`` defaults to CUT's 0.07.
    """

    def __init__(
        self,
        temperature: float = 0.07,
        decoupled: bool = False,
        negatives_within_batch: bool = True,
        detach_key: bool = True,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.temperature = _check_temperature(temperature)
        self.decoupled = bool(decoupled)
        self.negatives_within_batch = bool(negatives_within_batch)
        self.detach_key = bool(detach_key)
        self.normalize = bool(normalize)

    def forward(self, query: FeatureInput, key: FeatureInput) -> torch.Tensor:
        return patchnce_loss(
            query,
            key,
            self.temperature,
            self.decoupled,
            self.negatives_within_batch,
            self.detach_key,
            self.normalize,
        )

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, decoupled={self.decoupled}"


@register("infonce", kind="contrastive", input_range="features", fp32=True, inputs=("query", "key"))
class InfoNCELoss(nn.Module):
    """Image-level InfoNCE between paired (N, C) embeddings; symmetric option as in CLIP.

    Row ``i`` of ``key`` is the positive of row ``i`` of ``query``; the rest of the batch are
    negatives. Gradients flow into both inputs. ``decoupled=True`` gives DCL.
    """

    def __init__(
        self,
        temperature: float = 0.07,
        symmetric: bool = False,
        decoupled: bool = False,
        normalize: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.temperature = _check_temperature(temperature)
        self.symmetric, self.decoupled, self.normalize = bool(symmetric), bool(decoupled), bool(normalize)
        self.reduction = check_reduction(reduction)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return infonce_loss(
            query, key, self.temperature, self.symmetric, self.decoupled, self.normalize, self.reduction
        )

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, symmetric={self.symmetric}, decoupled={self.decoupled}"
