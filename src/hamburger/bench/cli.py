"""``hamburger bench``: measure parameters, FLOPs, latency and peak memory over a grid.

Examples::

    hamburger bench --quick
    hamburger bench --modules ham_nmf sdpa self_attention --sizes 32 64 128 --channels 512 --out results/
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from ..utils.cli import ArgumentParser
from .modules import BENCH_MODULES, DEFAULT_MODULES

QUICK = {
    "sizes": [8, 16],
    "channels": [32],
    "ranks": [8],
    "steps": [3],
    "batch_sizes": [1],
    "warmup": 1,
    "repeats": 3,
    "matmul_size": 512,
}


QUICK_NOTE = (
    "note: --quick measures toy sizes (8x8 and 16x16 maps, 32 channels) to check that everything runs; its "
    "ratios mean nothing for real feature maps, where the Hamburger's advantage over attention grows with H*W "
    "(measure e.g. --modules ham_nmf self_attention --channels 256 --sizes 14 28 56 --no-train)"
)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="hamburger bench",
        description="Benchmark Hamburger blocks against attention and other context modules.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--modules", nargs="+", default=list(DEFAULT_MODULES), choices=sorted(BENCH_MODULES),
                   metavar="NAME", help=f"modules to measure, from {sorted(BENCH_MODULES)}")  # fmt: skip
    p.add_argument("--sizes", nargs="+", type=int, default=[16, 32, 64, 128], help="square spatial sides")
    p.add_argument("--channels", nargs="+", type=int, default=[512])
    p.add_argument("--rank", dest="ranks", nargs="+", type=int, default=[64], help="r of the hams (EM: fixed 64)")
    p.add_argument("--steps", nargs="+", type=int, default=[6], help="K, the solver steps (train and eval)")
    p.add_argument("--batch-size", dest="batch_sizes", nargs="+", type=int, default=[1])
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu", help="'cpu' or 'cuda[:i]'")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads for the run (default: torch's choice; 1 with --quick)")  # fmt: skip
    p.add_argument("--matmul-size", type=int, default=2048, help="side of the dense matmul used as the peak rate")
    p.add_argument("--no-train", action="store_true", help="skip forward+backward")
    p.add_argument("--no-infer", action="store_true", help="skip inference")
    p.add_argument("--no-memory", action="store_true", help="skip peak-memory measurement")
    p.add_argument("--quick", action="store_true",
                   help=f"toy grid for a smoke run (overrides sizes/channels/rank/steps/...: {QUICK})")  # fmt: skip
    p.add_argument("--out", type=Path, default=None, help="folder for bench.csv, bench.json and bench.png")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    from .report import format_table, plot_scaling, write_csv, write_json
    from .suite import BenchConfig, run_benchmark

    options = {
        "sizes": args.sizes, "channels": args.channels, "ranks": args.ranks, "steps": args.steps,
        "batch_sizes": args.batch_sizes, "warmup": args.warmup, "repeats": args.repeats,
        "matmul_size": args.matmul_size,
    }  # fmt: skip
    if args.quick:
        options.update(QUICK)
    config = BenchConfig(
        modules=args.modules, device=args.device, dtype=args.dtype, inference=not args.no_infer,
        training=not args.no_train, memory=not args.no_memory, **options,
    )  # fmt: skip
    try:
        config.validate()
    except ValueError as err:
        print(f"hamburger bench: {err}", file=sys.stderr)
        return 2
    if args.quick and args.threads is None:
        # toy sizes: one thread; several threads spinning on a busy machine take 10x longer
        args.threads = 1
    import torch

    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    try:
        result = run_benchmark(config)
    finally:  # main() may be called in-process (tests, notebooks): leave the thread count as it was
        torch.set_num_threads(threads)
    matmul = result["meta"]["matmul"]
    print(format_table(result["rows"]))
    print(
        f"\ndense {matmul['dtype']} matmul {matmul['size']}^3 on {args.device}: {matmul['median_gflops']:.1f} GFLOP/s "
        f"(median; best {matmul['best_gflops']:.1f})"
    )
    print("GFLOPs = forward matmul/conv FLOPs (MACs = FLOPs / 2; elementwise ops not counted).")
    print(f"took {time.perf_counter() - start:.1f} s")
    if args.quick:
        print(QUICK_NOTE)
    if args.out is not None:
        paths = [write_csv(result["rows"], args.out / "bench.csv"), write_json(result, args.out / "bench.json")]
        if not args.no_plot:
            paths.append(plot_scaling(result["rows"], args.out / "bench.png", title=f"hamburger bench ({args.device})"))
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
