"""Deterministic, resumable samplers and per-sample seeding.

* :class:`ResumableTrainSampler`: the permutation of epoch ``e`` is a pure function of ``(seed, e)``; each
  rank takes every ``world``-th index (padded to equal length, as ``DistributedSampler``), and the sampler can
  start part-way through an epoch, so a resumed run sees exactly the batches the uninterrupted run would.
  It yields ``(index, sample_seed)`` pairs; :class:`SeededDataset` reseeds the RNGs with ``sample_seed``
  around each item so random augmentation does not depend on workers, ranks or where a run was resumed.
* :class:`EvalSampler`: rank ``r`` takes indices ``r, r + world, ...`` with **no padding**, so the union over
  ranks is the dataset exactly once (``DistributedSampler`` would duplicate samples to even out the ranks).

Both subclass ``DistributedSampler`` so that Lightning keeps them instead of inserting its own.

The loaders (:class:`ResumableLoader`, :func:`eval_loader`) make the guarantee hold with worker processes too:

* :class:`ResumableLoader` starts its iterator on the first ``next()``, not on ``iter()``. Lightning calls
  ``iter()`` on the train loader while setting up (before ``set_epoch``), and worker processes start drawing
  indices at once; a lazy iterator draws them only after the loop has set the epoch. The loader also counts
  the samples it delivered and implements ``state_dict`` / ``load_state_dict``, so Lightning saves the
  position in the checkpoint and a resumed run skips exactly what was trained on (Lightning's "resumable
  dataloader" path).
* Every loader has its own seeded ``torch.Generator``: without one, each new iterator draws its workers'
  base seed from the global torch RNG, which changes the model's random stream (random NMF bases) depending
  on how many iterators a run created (a resumed run creates different ones).
* Workers ignore SIGTERM (:func:`worker_init`): a scheduler that signals the whole process group must not
  kill the workers under the main process while it writes its checkpoint.
"""

from __future__ import annotations

import logging
import random
import signal
from collections.abc import Callable, Iterator, Sized
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..utils import check_int, check_positive_int

__all__ = [
    "EvalSampler",
    "ResumableLoader",
    "ResumableTrainSampler",
    "SeededDataset",
    "derive_seed",
    "eval_loader",
    "worker_init",
]

log = logging.getLogger(__name__)

_MIX = 0x9E3779B97F4A7C15


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that is a pure function of ``parts`` (e.g. run seed, epoch, position)."""
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
        self._skip_epoch = check_int("epoch", epoch, 0)
        self._skip = check_int("samples_done", samples_done, 0)

    def skipped(self, epoch: int) -> int:
        """How many samples of this rank an iteration of ``epoch`` skips."""
        return self._skip if epoch == self._skip_epoch else 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator()
        g.manual_seed(derive_seed(self.seed, self.epoch))
        order = torch.randperm(len(cast(Sized, self.dataset)), generator=g).tolist()
        pad = self.total_size - len(order)
        order += (order * (pad // max(len(order), 1) + 1))[:pad]
        positions = range(self.rank, self.total_size, self.num_replicas)
        for pos in list(positions)[self.skipped(self.epoch) :]:
            yield order[pos], derive_seed(self.seed, self.epoch, pos)


class EvalSampler(DistributedSampler):
    """In-order indices ``rank::num_replicas`` without padding or duplication."""

    def __init__(self, dataset: Dataset, *, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = len(range(rank, len(cast(Sized, dataset)), num_replicas))
        self.total_size = len(cast(Sized, dataset))

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(cast(Sized, self.dataset)), self.num_replicas))


class SeededDataset(Dataset):
    """Wraps a dataset; keys ``(index, seed)`` reseed torch / numpy / random around ``dataset[index]``.

    The caller's RNG states are restored afterwards, so model randomness is untouched.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(cast(Sized, self.dataset))

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            # the CPU generator only (what fork_rng restores): torch.manual_seed would also queue a lazy CUDA
            # seeding call with a formatted traceback, ~3 ms per sample, a third of a tiny model's training step
            torch.random.default_generator.manual_seed(seed)
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


def worker_init(worker_id: int) -> None:
    """``worker_init_fn`` of the loaders: a worker ignores SIGTERM (its parent shuts it down)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class _LazyIterator:
    """Iterator of a :class:`ResumableLoader`: the real one (and the workers' prefetch) starts on ``next()``."""

    def __init__(self, loader: ResumableLoader) -> None:
        self._loader = loader
        self._it: Iterator | None = None

    def __iter__(self) -> _LazyIterator:
        return self

    def __len__(self) -> int:
        return len(self._loader)

    def __next__(self):
        loader = self._loader
        if self._it is None:
            self._it = DataLoader.__iter__(loader)
            loader._begin(loader.sampler.epoch)
        batch = next(self._it)
        loader._position += loader.batch_size
        return batch


class ResumableLoader(DataLoader):
    """Training loader whose order is a pure function of ``(seed, epoch)`` and that resumes mid-epoch.

    Wraps ``dataset`` in :class:`SeededDataset` and draws from a :class:`ResumableTrainSampler`; batches are
    full (``drop_last``). ``state_dict()`` is ``{"epoch", "samples", ...}``: the epoch being iterated and how
    many samples of this rank were delivered in it. ``load_state_dict`` makes the next iteration of that
    epoch skip them (an epoch delivered completely just means the next epoch starts from its beginning).

    Args:
        dataset: the training dataset (random augmentation in it is reseeded per sample).
        batch_size: samples per batch and process.
        seed: data-order and augmentation seed.
        num_replicas: number of processes (DDP world size).
        rank: this process.
        num_workers: worker processes; with ``persistent_workers`` (default: ``num_workers > 0``) they live
            across epochs.
        **kwargs: other ``DataLoader`` options (``collate_fn``, ``pin_memory``, ...).
    """

    sampler: ResumableTrainSampler  # set in __init__ (DataLoader types it as any sampler)

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        num_workers: int = 0,
        persistent_workers: bool | None = None,
        worker_init_fn: Callable[[int], None] | None = worker_init,
        **kwargs: Any,
    ) -> None:
        check_positive_int("batch_size", batch_size)
        check_int("num_workers", num_workers, 0)
        check_int("seed", seed)
        if not isinstance(dataset, SeededDataset):
            dataset = SeededDataset(dataset)
        sampler = ResumableTrainSampler(dataset, num_replicas=num_replicas, rank=rank, seed=seed)
        if len(sampler) < batch_size:
            raise ValueError(
                f"training split has {len(dataset)} samples, fewer than batch_size={batch_size} x {num_replicas} "
                "processes"
            )
        kwargs.pop("sampler", None)
        kwargs.pop("shuffle", None)
        kwargs.pop("drop_last", None)
        generator = kwargs.pop("generator", None) or torch.Generator().manual_seed(seed)
        super().__init__(
            dataset, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=num_workers,
            persistent_workers=num_workers > 0 if persistent_workers is None else persistent_workers,
            worker_init_fn=worker_init_fn, generator=generator, **kwargs,
        )  # fmt: skip
        self._epoch = 0
        self._position = 0

    def _begin(self, epoch: int) -> None:
        self._epoch, self._position = epoch, self.sampler.skipped(epoch)

    def __iter__(self) -> _LazyIterator:  # type: ignore[override]  # stub wants the private _BaseDataLoaderIter
        return _LazyIterator(self)

    def state_dict(self) -> dict[str, Any]:
        """Where this rank is: ``epoch`` and ``samples`` delivered in it (plus ``seed`` and ``num_samples``)."""
        return {"epoch": self._epoch, "samples": self._position, "seed": self.sampler.seed,
                "num_samples": len(self.sampler)}  # fmt: skip

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume at ``state_dict["epoch"]``, skipping its first ``state_dict["samples"]`` samples."""
        epoch, samples = int(state_dict["epoch"]), int(state_dict["samples"])
        for key, now in (("seed", self.sampler.seed), ("num_samples", len(self.sampler))):
            if key in state_dict and state_dict[key] != now:
                log.warning("resuming with %s=%s, the checkpoint had %s: the data order differs", key, now,
                            state_dict[key])  # fmt: skip
        self.sampler.start_at(epoch, samples)
        self._epoch, self._position = epoch, samples


def eval_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    num_replicas: int = 1,
    rank: int = 0,
    num_workers: int = 0,
    seed: int = 0,
    **kwargs: Any,
) -> DataLoader:
    """Evaluation loader: :class:`EvalSampler` order, persistent workers, and its own seeded generator (so
    creating its iterator never draws from the global torch RNG)."""
    check_positive_int("batch_size", batch_size)
    check_int("num_workers", num_workers, 0)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=EvalSampler(dataset, num_replicas=num_replicas, rank=rank),
        num_workers=num_workers, persistent_workers=kwargs.pop("persistent_workers", num_workers > 0),
        worker_init_fn=kwargs.pop("worker_init_fn", worker_init),
        generator=kwargs.pop("generator", None) or torch.Generator().manual_seed(seed), **kwargs,
    )  # fmt: skip
