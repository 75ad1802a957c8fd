"""A shuffling sampler whose order depends only on (seed, epoch), so a resumed run sees the same data."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["EpochSampler"]


class EpochSampler(Sampler[int]):
    """A random permutation of ``range(length)`` drawn from ``seed + epoch``; ``set_epoch`` selects it.

    Every process builds the same sampler, so under DDP accelerate's batch sharding gives each rank
    its own slice of one shared order. ``shuffle=False`` yields ``0..length-1``.
    """

    def __init__(self, length: int, seed: int = 0, shuffle: bool = True) -> None:
        if length < 1:
            raise ValueError(f"cannot sample from an empty dataset (length {length})")
        self.length = int(length)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.length))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())
