"""The benchmark grid: every (module, size, channels, rank, steps, batch) combination -> one row."""

from __future__ import annotations

import itertools
import logging
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch

from .measure import count_flops, matmul_rate, peak_memory, time_fn
from .modules import DEFAULT_MODULES, build_module

logger = logging.getLogger(__name__)

FLOP_NOTE = (
    "FLOPs from torch.utils.flop_counter.FlopCounterMode: matmuls and convolutions only, 2 FLOPs per "
    "multiply-add (MACs = FLOPs / 2); elementwise ops, reductions and softmax are not counted."
)
MEMORY_NOTE = (
    "Peak memory: bytes allocated during one call above those allocated before it (parameters and the "
    "input are excluded); CUDA: max_memory_allocated, CPU: live tensor storages tracked per aten op."
)


@dataclass
class BenchConfig:
    """What to measure. Sizes are square spatial sides (``n = size^2``)."""

    modules: Sequence[str] = DEFAULT_MODULES
    sizes: Sequence[int] = (16, 32, 64, 128)
    channels: Sequence[int] = (512,)
    ranks: Sequence[int] = (64,)
    steps: Sequence[int] = (6,)
    batch_sizes: Sequence[int] = (1,)
    warmup: int = 1
    repeats: int = 5
    device: str = "cpu"
    dtype: str = "float32"
    inference: bool = True
    training: bool = True
    memory: bool = True
    flops: bool = True
    matmul_size: int = 2048
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        for name in ("sizes", "channels", "ranks", "steps", "batch_sizes"):
            values = list(getattr(self, name))
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(f"{name} must be a non-empty list of positive ints, got {values!r}")
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {self.repeats}, {self.warmup}")
        if not hasattr(torch, self.dtype) or not isinstance(getattr(torch, self.dtype), torch.dtype):
            raise ValueError(f"dtype must name a torch dtype such as 'float32', got {self.dtype!r}")


def _input(name: str, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype, seed: int) -> torch.Tensor:
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(shape, generator=gen)
    if name in ("nmf", "vq", "cd"):  # bare solvers: NMF needs non-negative data
        x = x.relu_()
    return x.to(device=device, dtype=dtype)


def measure_row(
    name: str,
    *,
    size: int,
    channels: int,
    rank: int,
    steps: int,
    batch: int,
    config: BenchConfig,
    peak_gflops: float | None = None,
) -> dict:
    """Measure one module at one setting and return the row (times in ms, memory in MiB)."""
    device, dtype = torch.device(config.device), getattr(torch, config.dtype)
    torch.manual_seed(config.seed)
    module = build_module(name, channels, rank=rank, steps=steps).to(device=device, dtype=dtype)
    x = _input(name, (batch, channels, size, size), device, dtype, config.seed)
    n = size * size
    row: dict = {
        "module": name, "batch": batch, "channels": channels, "size": size, "n": n, "rank": rank,
        "steps": steps, "params": sum(p.numel() for p in module.parameters()),
    }  # fmt: skip

    def infer() -> None:
        with torch.no_grad():
            module(x)

    x_train = x.detach().clone().requires_grad_()
    grad_out = torch.ones_like(x)

    def train() -> None:
        for p in module.parameters():
            p.grad = None
        x_train.grad = None
        module(x_train).backward(grad_out)

    if config.inference:
        module.eval()
        if config.flops:
            row["flops_fwd"] = count_flops(infer)
            row["macs_fwd"] = row["flops_fwd"] // 2
        if config.memory:  # before timing: it doubles as a warm-up
            row["infer_peak_mib"] = peak_memory(infer, device=device) / 2**20
        t = time_fn(infer, device=device, warmup=config.warmup, repeats=config.repeats)
        row.update(infer_ms=t.median_ms, infer_ms_min=t.min_ms, infer_ms_max=t.max_ms)
    if config.training:
        module.train()
        if config.flops:
            row["flops_train"] = count_flops(train)
        if config.memory:
            row["train_peak_mib"] = peak_memory(train, device=device) / 2**20
        t = time_fn(train, device=device, warmup=config.warmup, repeats=config.repeats)
        row.update(train_ms=t.median_ms, train_ms_min=t.min_ms, train_ms_max=t.max_ms)
    if peak_gflops:
        for phase, flops_key in (("infer", "flops_fwd"), ("train", "flops_train")):
            if f"{phase}_ms" in row and flops_key in row:
                rate = row[flops_key] / row[f"{phase}_ms"] / 1e6
                row[f"{phase}_gflops_per_s"] = rate
                row[f"{phase}_frac_matmul_peak"] = rate / peak_gflops
    return row


def machine_info(device: str) -> dict:
    info = {
        "torch": torch.__version__,
        "device": device,
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def run_benchmark(config: BenchConfig) -> dict:
    """Run the whole grid. Returns ``{"meta": ..., "rows": [...]}`` (JSON-serialisable)."""
    config.validate()
    rate = matmul_rate(config.matmul_size, device=config.device, dtype=getattr(torch, config.dtype))
    logger.info("dense matmul %d^3: %.1f GFLOP/s (median)", rate.size, rate.median_gflops)
    rows = []
    grid = itertools.product(config.batch_sizes, config.channels, config.ranks, config.steps, config.sizes)
    for batch, channels, rank, steps, size in grid:
        for name in config.modules:
            logger.info("measuring %s at %dx%d, C=%d, r=%d, K=%d, B=%d", name, size, size, channels, rank, steps, batch)
            rows.append(
                measure_row(
                    name,
                    size=size,
                    channels=channels,
                    rank=rank,
                    steps=steps,
                    batch=batch,
                    config=config,
                    peak_gflops=rate.median_gflops,
                )  # fmt: skip
            )
    meta = {
        "machine": machine_info(config.device),
        "matmul": asdict(rate),
        "config": {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in asdict(config).items()},
        "notes": [FLOP_NOTE, MEMORY_NOTE, "Times: median over repeats after warm-up, with min and max."],
    }
    return {"meta": meta, "rows": rows}
