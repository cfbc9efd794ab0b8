"""Measurement primitives: FLOPs, latency and peak memory of a callable, and the matmul rate.

Level 0, so the benchmarks (:mod:`hamburger.bench`), the training core and the recipes share them; importing
this module imports torch (``import hamburger.utils`` does not import it).

* FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode` (shape formulas per aten
  op, forward and backward). It counts matmuls and convolutions (2 FLOPs per multiply-add, so
  MACs = FLOPs / 2) and ignores elementwise ops, reductions and softmax. The CPU flash-attention
  kernel behind ``scaled_dot_product_attention`` is not in its table; we add it.
* Latency: median, min and max over ``repeats`` calls after ``warmup`` calls, with
  ``time.perf_counter`` on CPU and CUDA events on GPU.
* Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the bytes already allocated
  before the call; on CPU a dispatch mode that follows every storage created during the call
  until it is freed (so parameters and the input, allocated before, are not counted).
"""

from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

aten = torch.ops.aten

__all__ = [
    "EXTRA_FLOP_FORMULAS",
    "LiveTensorTracker",
    "MatmulRate",
    "Timing",
    "count_flops",
    "matmul_rate",
    "peak_memory",
    "time_fn",
]


def _cpu_sdpa_flop(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward_flop(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


EXTRA_FLOP_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flop,
}


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matmuls and convolutions that ``fn()`` runs (backward included if it runs one)."""
    with FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
        fn()
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class Timing:
    """Latency statistics in milliseconds."""

    median_ms: float
    min_ms: float
    max_ms: float
    repeats: int


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], object], *, device: torch.device, warmup: int = 2, repeats: int = 5) -> Timing:
    """Run ``fn`` ``warmup`` times, then time ``repeats`` calls one by one."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times.append((time.perf_counter() - t0) * 1e3)
    return Timing(statistics.median(times), min(times), max(times), repeats)


class LiveTensorTracker(TorchDispatchMode):
    """Peak bytes of the CPU storages created inside the ``with`` block and still alive.

    Each new storage an op returns is added to the live total and removed when it is freed
    (a weak reference to the storage; PyTorch keeps one Python object per live storage).
    Outputs that alias an input (views, in-place ops) are not counted again. Meta tensors are
    tracked too, so a module whose ops do not depend on the backend can be measured from shapes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, weakref.ref] = {}

    def _release(self, key: int, nbytes: int) -> None:
        if self._refs.pop(key, None) is not None:
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {id(t.untyped_storage()) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = id(storage)
            if key in inputs or key in self._refs:
                continue
            nbytes = storage.nbytes()
            self._refs[key] = weakref.ref(storage, lambda _, key=key, nbytes=nbytes: self._release(key, nbytes))
            self.live += nbytes
            self.peak = max(self.peak, self.live)
        return out


def peak_memory(fn: Callable[[], object], *, device: torch.device) -> int:
    """Peak bytes allocated by one call of ``fn`` above what was allocated before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    with LiveTensorTracker() as tracker:  # CPU or meta
        fn()
    return int(tracker.peak)


@dataclass(frozen=True)
class MatmulRate:
    """Dense ``size x size`` matmul throughput in GFLOP/s (median and best over the repeats)."""

    size: int
    dtype: str
    median_gflops: float
    best_gflops: float


def matmul_rate(
    size: int = 2048, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, repeats: int = 5
) -> MatmulRate:
    """Measure the dense matmul rate, the yardstick for a module's achieved FLOP rate."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    timing = time_fn(lambda: torch.mm(a, b, out=out), device=device, warmup=2, repeats=repeats)
    flops = 2 * size**3
    return MatmulRate(
        size=size,
        dtype=str(dtype).replace("torch.", ""),
        median_gflops=flops / timing.median_ms / 1e6,
        best_gflops=flops / timing.min_ms / 1e6,
    )
