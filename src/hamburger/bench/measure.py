"""Measurement primitives of the benchmarks, re-exported from :mod:`hamburger.utils.measure`.

They live in ``hamburger.utils`` (level 0) so that the training core and the recipes can measure models too
(``hamburger seg compare``'s cost columns); this module keeps the names the benchmarks have always used.
"""

from __future__ import annotations

from ..utils.measure import (
    EXTRA_FLOP_FORMULAS,
    LiveTensorTracker,
    MatmulRate,
    Timing,
    count_flops,
    matmul_rate,
    peak_memory,
    time_fn,
)

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
