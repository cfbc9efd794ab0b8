"""Benchmarks of Hamburger against attention and the other context modules.

Python API::

    from hamburger.bench import BenchConfig, run_benchmark, format_table
    result = run_benchmark(BenchConfig(modules=["ham_nmf", "sdpa"], sizes=[32, 64], channels=[256]))
    print(format_table(result["rows"]))

Command line: ``hamburger bench --help``.
"""

from .measure import LiveTensorTracker, MatmulRate, Timing, count_flops, matmul_rate, peak_memory, time_fn
from .modules import BENCH_MODULES, DEFAULT_MODULES, build_module
from .report import format_table, plot_scaling, write_csv, write_json
from .suite import BenchConfig, measure_row, run_benchmark

__all__ = [
    "BENCH_MODULES",
    "DEFAULT_MODULES",
    "BenchConfig",
    "LiveTensorTracker",
    "MatmulRate",
    "Timing",
    "build_module",
    "count_flops",
    "format_table",
    "matmul_rate",
    "measure_row",
    "peak_memory",
    "plot_scaling",
    "run_benchmark",
    "time_fn",
    "write_csv",
    "write_json",
]
