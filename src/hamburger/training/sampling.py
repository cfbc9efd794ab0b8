"""Deterministic, resumable samplers and per-sample seeding.

* :class:`ResumableTrainSampler`: the permutation of epoch ``e`` is a pure function of ``(seed, e)``; each
  rank takes every ``world``-th index (padded to equal length, as ``DistributedSampler``), and the sampler can
  start part-way through an epoch, so a resumed run sees exactly the batches the uninterrupted run would.
  It yields ``(index, sample_seed)`` pairs; :class:`SeededDataset` reseeds the RNGs with ``sample_seed``
  around each item so random augmentation does not depend on workers, ranks or where a run was resumed.
* :class:`EvalSampler`: rank ``r`` takes indices ``r, r + world, ...`` with **no padding**, so the union over
  ranks is the dataset exactly once (``DistributedSampler`` would duplicate samples to even out the ranks).

Both subclass ``DistributedSampler`` so that Lightning keeps them instead of inserting its own.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

__all__ = ["EvalSampler", "ResumableTrainSampler", "SeededDataset"]

_MIX = 0x9E3779B97F4A7C15


def _seed_of(*parts: int) -> int:
    value = 0
    for p in parts:
        value = (value * _MIX + int(p) + 1) % (2**63 - 1)
    return value


class ResumableTrainSampler(DistributedSampler):
    """Shuffled, rank-sharded indices seeded by ``(seed, epoch)``; ``start_at`` skips into an epoch."""

    def __init__(self, dataset: Dataset, *, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self._skip_epoch = -1
        self._skip = 0

    def start_at(self, epoch: int, samples_done: int) -> None:
        """Resume: in epoch ``epoch`` skip the first ``samples_done`` samples of this rank."""
        self._skip_epoch, self._skip = int(epoch), int(samples_done)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator()
        g.manual_seed(_seed_of(self.seed, self.epoch))
        order = torch.randperm(len(self.dataset), generator=g).tolist()
        pad = self.total_size - len(order)
        order += (order * (pad // max(len(order), 1) + 1))[:pad]
        positions = range(self.rank, self.total_size, self.num_replicas)
        skip = self._skip if self.epoch == self._skip_epoch else 0
        for pos in list(positions)[skip:]:
            yield order[pos], _seed_of(self.seed, self.epoch, pos)


class EvalSampler(DistributedSampler):
    """In-order indices ``rank::num_replicas`` without padding or duplication."""

    def __init__(self, dataset: Dataset, *, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = len(range(rank, len(dataset), num_replicas))
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.dataset), self.num_replicas))


class SeededDataset(Dataset):
    """Wraps a dataset; keys ``(index, seed)`` reseed torch / numpy / random around ``dataset[index]``.

    The caller's RNG states are restored afterwards, so model randomness is untouched.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)

    def __getattr__(self, name: str):
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
