"""The measurement primitives of :mod:`hamburger.utils.measure` against hand counts (no timing asserted)."""

from __future__ import annotations

import torch

from hamburger.utils.measure import LiveTensorTracker, count_flops, matmul_rate, peak_memory


def test_bench_measure_re_exports_the_same_objects():
    import hamburger.bench as bench
    import hamburger.bench.measure as old
    import hamburger.utils.measure as new

    for name in old.__all__:
        assert getattr(old, name) is getattr(new, name)
    for name in ("LiveTensorTracker", "MatmulRate", "Timing", "count_flops", "matmul_rate", "peak_memory", "time_fn"):
        assert getattr(bench, name) is getattr(new, name)


def test_count_flops_includes_cpu_sdpa_kernel():
    q = torch.randn(1, 2, 10, 4)
    assert count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q)) == 2 * (2 * 2 * 10 * 10 * 4)


def test_live_tensor_tracker_counts_live_bytes_only():
    x = torch.randn(256, 256)  # allocated before: not counted
    mib = 256 * 256 * 4
    with LiveTensorTracker() as tracker:
        a = x @ x
        b = a.relu()
        view = b.view(-1)  # alias: not counted
        del a
        c = b * 2
    assert tracker.peak == 2 * mib and tracker.live == 2 * mib
    del b, c, view
    assert tracker.live == 0


def test_peak_memory_cpu_matches_hand_count():
    x = torch.randn(128, 128)
    # x @ x (64 KiB) then .relu() (64 KiB) while the first is alive -> 128 KiB
    assert peak_memory(lambda: (x @ x).relu(), device=torch.device("cpu")) == 2 * 128 * 128 * 4


def test_matmul_rate_is_positive():
    rate = matmul_rate(32, repeats=2)
    assert rate.best_gflops >= rate.median_gflops > 0
