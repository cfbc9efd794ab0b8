"""Cost of the gradient modes: forward+backward time and training memory of a ham, as ratios to one-step.

All modes are timed interleaved in one process (mode A, B, C, ..., A, B, C, ...), so they see the same machine
state; the figures that matter are the ratios to ``one_step``. Memory is the peak of the storages created during
one forward+backward (CPU dispatch-mode tracker of ``hamburger.bench.measure``; CUDA allocator stats on GPU).

    python benchmarks/grad_modes.py --ham nmf --channels 512 --size 128 --rank 64 --steps 6 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import hamburger as hb
from hamburger.bench.measure import peak_memory
from hamburger.utils import atomic_write_text

MODES = {
    "one_step": {"grad_mode": "one_step"},
    "truncated-2": {"grad_mode": "truncated", "grad_steps": 2},
    "implicit-1": {"grad_mode": "implicit", "grad_steps": 1},
    "implicit-3": {"grad_mode": "implicit", "grad_steps": 3},
    "implicit-5": {"grad_mode": "implicit", "grad_steps": 5},
    "bptt": {"grad_mode": "bptt"},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ham", default="nmf", choices=["nmf", "vq", "cd"])
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="folder for grad_modes_<ham>.json / .md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    torch.manual_seed(0)
    x = torch.rand(1, args.channels, args.size, args.size)
    bases = torch.rand(1, args.channels, args.rank)
    bases = bases / bases.norm(dim=1, keepdim=True)
    hams = {name: hb.create_solver(args.ham, rank=args.rank, steps=args.steps, **opts).train()
            for name, opts in MODES.items()}  # fmt: skip

    def run(name: str) -> None:
        xi = x.clone().requires_grad_(True)
        hams[name](xi, bases=bases).sum().backward()

    for name in MODES:  # warm-up
        run(name)
    times: dict[str, list[float]] = {name: [] for name in MODES}
    for _ in range(args.repeats):
        for name in MODES:
            t0 = time.perf_counter()
            run(name)
            times[name].append((time.perf_counter() - t0) * 1e3)
    memory = {name: peak_memory(lambda name=name: run(name), device=device) for name in MODES}
    base_t, base_m = statistics.median(times["one_step"]), memory["one_step"]
    rows = [
        {
            "mode": name,
            "median_ms": statistics.median(times[name]),
            "time_ratio": statistics.median(times[name]) / base_t,
            "peak_mib": memory[name] / 2**20,
            "memory_ratio": memory[name] / base_m,
        }
        for name in MODES
    ]
    shape = f"1x{args.channels}x{args.size}x{args.size}"
    setting = f"{args.ham} {shape} r={args.rank} K={args.steps}, {args.threads} threads"
    lines = [f"fwd+bwd of the ham alone, {setting}, median of {args.repeats} interleaved repeats", "",
             "| mode | ms | time / one_step | peak MiB | memory / one_step |", "|---|---:|---:|---:|---:|"]  # fmt: skip
    lines += [
        f"| {r['mode']} | {r['median_ms']:.1f} | {r['time_ratio']:.2f} | {r['peak_mib']:.1f} "
        f"| {r['memory_ratio']:.2f} |"
        for r in rows
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        payload = {"setting": setting, "torch": torch.__version__, "rows": rows}
        atomic_write_text(out / f"grad_modes_{args.ham}.json", json.dumps(payload, indent=2) + "\n")
        atomic_write_text(out / f"grad_modes_{args.ham}.md", text + "\n")


if __name__ == "__main__":
    main()
