"""``hamburger demo``: run a Hamburger block and print its cost against self-attention.

FLOPs are counted with ``torch.utils.flop_counter`` (matmuls only) for one forward pass of a
Hamburger (NMF) block and of an explicit self-attention with full-width q, k, v, out
projections, at a few resolutions, and the Hamburger block is timed on this machine.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .blocks import Hamburger


def _attention_flops(channels: int, n: int) -> int:
    """Matmul FLOPs of explicit self-attention: 4 projections (4 n C^2) and QK^T, AV (2 n^2 C), x2."""
    return 2 * (4 * n * channels**2 + 2 * n * n * channels)


def _count(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hamburger demo", description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    block = Hamburger(args.channels, ham="nmf", rank=args.rank, steps=args.steps, eval_steps=args.steps).eval()
    print(f"{block.ham}\n")
    print(f"{'size':>9} {'n':>7} {'ham GFLOPs':>11} {'attn GFLOPs':>12} {'attn/ham':>9} {'ham ms':>8}")
    for size in args.sizes:
        x = torch.randn(1, args.channels, size, size)
        with torch.no_grad():
            ham_flops = _count(lambda x=x: block(x))
            start = time.perf_counter()
            y = block(x)
            elapsed = (time.perf_counter() - start) * 1e3
        if not torch.isfinite(y).all():
            raise RuntimeError("non-finite output")
        n = size * size
        attn = _attention_flops(args.channels, n)
        ratio = attn / ham_flops
        print(f"{size:>4}x{size:<4} {n:>7} {ham_flops / 1e9:>11.2f} {attn / 1e9:>12.2f} {ratio:>8.1f}x {elapsed:>8.1f}")
    print("\nHamburger costs O(n d r) per step; attention O(n^2 d): the gap grows linearly with n.")
    return 0
