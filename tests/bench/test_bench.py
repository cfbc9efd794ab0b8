"""The benchmark suite at toy sizes: row contents, parameter counts and FLOPs against hand counts.

Timings are never asserted (the machine is shared); only that they are positive and ordered.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch

from hamburger.bench import (
    BENCH_MODULES,
    BenchConfig,
    count_flops,
    format_table,
    run_benchmark,
)
from hamburger.bench.cli import main
from hamburger.bench.modules import build_module

B, C, S, R, K = 2, 16, 6, 4, 3  # batch, channels, side, rank, steps
N = S * S


def hand_flops(name: str, b: int = B, c: int = C, n: int = N, r: int = R, k: int = K) -> int:
    """Forward FLOPs of the matmuls/convolutions (2 per multiply-add), counted by hand."""
    d = c
    # V1 blocks fold the upper bread into the dictionary: lower bread, W_u D, (W_u D) C (no D C^T)
    breads = 2 * n * c * d + 2 * c * d * r + 2 * n * c * r - 2 * n * d * r
    nmf = 2 * n * d * r * (2 * k + 2) + 2 * r * r * (d + n) * (2 * k + 1)  # X^T D_0 shared, K x (C, D), final C, D C^T
    vq = 2 * n * d * r * (2 * k + 2)  # K x (X^T D, X C), final X^T D, D C^T
    cd = vq + 2 * d * r * r  # + the r x r Gram matrix of the ridge solve
    per_sample = {
        "self_attention": 2 * (4 * n * c * c + 2 * n * n * c),
        "sdpa": 2 * (4 * n * c * c + 2 * n * n * c),
        "non_local": 2 * (2 * n * c * c + n * n * c),
        "linear": 2 * (4 * n * c * c + 2 * n * c * c),
        "em": 2 * (2 * n * c * c) + 2 * n * c * 64 * (2 * 3 + 2),  # 64 bases, 3 EM stages
        "nmf": nmf,
        "vq": vq,
        "cd": cd,
        "ham_nmf": breads + nmf,
        "ham_vq": breads + vq,
        "ham_cd": breads + cd,
    }
    return b * per_sample[name]


def hand_params(name: str, c: int = C) -> int:
    bn = 2 * c
    return {
        "self_attention": 4 * c * c + bn,
        "sdpa": 4 * c * c + bn,
        "linear": 4 * c * c + bn,
        "non_local": 4 * c * (c // 2) + 3 * (c // 2) + c + bn,
        "em": 2 * c * c + c + bn,
        "ham_nmf": 2 * c * c + c + bn,
        "ham_vq": 2 * c * c + c + bn,
        "ham_cd": 2 * c * c + c + bn,
        "nmf": 0,
        "vq": 0,
        "cd": 0,
    }[name]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Toy-size ops on a shared 2-core machine: one thread avoids OpenMP spin contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def result():
    config = BenchConfig(
        modules=list(BENCH_MODULES), sizes=[S], channels=[C], ranks=[R], steps=[K], batch_sizes=[B],
        warmup=0, repeats=2, matmul_size=64,
    )  # fmt: skip
    return run_benchmark(config)


def test_one_row_per_module_with_hand_counted_params_and_flops(result):
    rows = {r["module"]: r for r in result["rows"]}
    assert len(result["rows"]) == len(BENCH_MODULES) and set(rows) == set(BENCH_MODULES)
    for name, row in rows.items():
        assert (row["n"], row["channels"], row["rank"], row["steps"], row["batch"]) == (N, C, R, K, B)
        assert row["params"] == hand_params(name), name
        assert row["flops_fwd"] == hand_flops(name), name
        assert row["macs_fwd"] * 2 == row["flops_fwd"]
        assert row["flops_train"] > row["flops_fwd"]
        assert 0 < row["infer_ms_min"] <= row["infer_ms"] <= row["infer_ms_max"]
        assert 0 < row["train_ms_min"] <= row["train_ms"] <= row["train_ms_max"]
        assert row["infer_peak_mib"] > 0 and row["train_peak_mib"] > 0
        assert row["infer_gflops_per_s"] > 0 and row["infer_frac_matmul_peak"] > 0


def test_attention_training_flops_are_three_times_forward(result):
    # every matmul/conv has two backward products of the same size (input and weight/other operand)
    rows = {r["module"]: r for r in result["rows"]}
    for name in ("self_attention", "non_local"):
        assert rows[name]["flops_train"] == 3 * rows[name]["flops_fwd"], name
    # fused SDPA (flash kernel) recomputes Q K^T in backward: 5 attention products instead of 4
    n, c = S * S, C
    attention = B * 2 * (2 * n * n * c)
    assert rows["sdpa"]["flops_train"] == 3 * rows["sdpa"]["flops_fwd"] + attention // 2


def test_meta_reports_matmul_rate_and_conventions(result):
    meta = result["meta"]
    assert meta["matmul"]["size"] == 64 and meta["matmul"]["median_gflops"] > 0
    assert any("MACs = FLOPs / 2" in note for note in meta["notes"])
    assert meta["config"]["sizes"] == [S]
    json.dumps(result)  # serialisable
    table = format_table(result["rows"])
    assert len(table.splitlines()) == 2 + len(BENCH_MODULES)


def _measured_macs_and_params(name: str, *, channels: int, side: int, rank: int, steps: int) -> tuple[int, int]:
    """The bench's own counter on the bench's own module, on the meta device (shapes only: no memory, no math)."""
    with torch.device("meta"):
        module = build_module(name, channels, rank=rank, steps=steps).eval()
        x = torch.empty(1, channels, side, side)

    def infer() -> None:
        with torch.no_grad():
            module(x)

    return count_flops(infer) // 2, sum(p.numel() for p in module.parameters())


def test_paper_table3_sa_macs_and_params_measured():
    # Table 3 (paper-facts.md section 2.3): SA 1.00M params, 292G MACs; Ham 0.50M params. The setting
    # (1 x 512 x 128 x 128, r=64, K=6) is inferred in paper-facts.md section 1.6; "M" is 2**20 there.
    macs, params = _measured_macs_and_params("self_attention", channels=512, side=128, rank=64, steps=6)
    assert round(macs / 1e9) == 292
    assert round(params / 2**20, 2) == 1.00
    for ham in ("ham_nmf", "ham_cd"):
        _, params = _measured_macs_and_params(ham, channels=512, side=128, rank=64, steps=6)
        assert round(params / 2**20, 2) == 0.50, ham
    # Ham MACs are NOT Table 3's 17.6G / 16.2G: our V1 block folds the upper bread into the
    # dictionary (see hand_flops), so only the ratio SA / Ham > 20 is checked here.
    ham_macs, _ = _measured_macs_and_params("ham_nmf", channels=512, side=128, rank=64, steps=6)
    assert macs / ham_macs > 20


def test_cli_quick_writes_csv_json_and_plot(tmp_path, capsys):
    code = main(["--quick", "--modules", "ham_nmf", "sdpa", "--out", str(tmp_path)])
    assert code == 0
    assert "ham_nmf" in capsys.readouterr().out
    with open(tmp_path / "bench.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["module"] for r in rows] == ["ham_nmf", "sdpa"] * 2  # two quick sizes
    assert json.loads((tmp_path / "bench.json").read_text())["meta"]["matmul"]["size"] == 512
    assert (tmp_path / "bench.png").stat().st_size > 10_000


def test_cli_rejects_bad_grid(capsys):
    assert main(["--sizes", "0", "--modules", "sdpa"]) == 2
    assert "sizes" in capsys.readouterr().err
