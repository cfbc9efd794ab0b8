"""The paper's Table 3 setting: one 1 x 512 x 128 x 128 feature map, r = 64, K = 6.

Measures SA, non-local, SDPA, linear attention, EM attention and the Hamburger blocks (NMF, CD,
VQ) with ``hamburger.bench``: parameters, MACs, inference and training latency, inference and
training peak memory, each also as a ratio against SA; prints a Markdown table with the paper's
GPU figures beside ours and checks the speed/memory targets.

    python benchmarks/table3.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from hamburger.bench import (
    BENCH_MODULES,
    BenchConfig,
    build_module,
    count_flops,
    matmul_rate,
    measure_row,
    peak_memory,
    write_csv,
)
from hamburger.bench.suite import FLOP_NOTE, MEMORY_NOTE, machine_info

MODULES = (
    "self_attention", "non_local", "sdpa_fused", "linear", "em", "ham_nmf", "ham_nmf_unfolded", "ham_cd", "ham_vq",
)  # fmt: skip
HAMS = ("ham_nmf", "ham_cd", "ham_vq")
QUADRATIC = {"self_attention", "non_local", "sdpa", "sdpa_fused"}
META_MEMORY = {"self_attention", "non_local"}  # plain aten ops: the same allocations on the meta device
# Paper Table 3 (GPU; input size not stated, 1 x 512 x 128 x 128 inferred): params (M = 2^20),
# GMACs, train MB, infer MB, train ms, infer ms
PAPER = {
    "self_attention": (1.00, 292, 5253, 2148, 242.0, 82.2),
    "ham_cd": (0.50, 16.2, 162, 102, 20.0, 13.0),
    "ham_nmf": (0.50, 17.6, 202, 98, 15.6, 7.7),
}


def _unfolded(channels: int, *, rank: int, steps: int) -> torch.nn.Module:
    """The NMF block computing ``W_u (D C)`` as the paper (and the official code) does."""
    block = build_module("ham_nmf", channels, rank=rank, steps=steps)
    block.fold_upper = False
    return block


def _sdpa_contiguous(channels: int, *, rank: int, steps: int) -> torch.nn.Module:
    """The SDPA block with contiguous per-head q, k, v.

    ``SDPAttention2d._split`` returns a transposed view whose last dimension is not contiguous,
    which makes CPU ``scaled_dot_product_attention`` fall back to its math path (8 materialised
    n x n maps, > 20 GB in training at 128 x 128). Contiguous heads select the fused flash kernel.
    """
    block = build_module("sdpa", channels, rank=rank, steps=steps)
    split = block._split
    block._split = lambda t: split(t).contiguous()
    return block


# script-local: the unfolded V1 block, to time it beside the folded default, and the fused SDPA
BENCH_MODULES.setdefault("ham_nmf_unfolded", _unfolded)
BENCH_MODULES.setdefault("sdpa_fused", _sdpa_contiguous)

TARGETS = (
    ("ham_nmf fwd+bwd >= 20x faster than self_attention", "self_attention", "train_ms", 20.0),
    ("ham_nmf fwd+bwd >= 15x faster than sdpa (fused kernel)", "sdpa_fused", "train_ms", 15.0),
    ("ham_nmf training peak memory >= 10x lower than self_attention", "self_attention", "train_peak_mib", 10.0),
)


def meta_costs(name: str, args, measure: Callable = count_flops, *, fold: bool = True) -> tuple[float, float]:
    """``measure`` (FLOPs or peak memory) of inference and forward+backward from shapes alone."""
    module = build_module(name, args.channels, rank=args.rank, steps=args.steps).to("meta").eval()
    if not fold:
        module.fold_upper = False
    x = torch.empty(1, args.channels, args.size, args.size, device="meta")

    def infer():
        with torch.no_grad():
            module(x)

    xg = x.clone().requires_grad_()
    fwd = measure(infer)
    module.train()
    return fwd, measure(lambda: module(xg).backward(torch.empty_like(x)))


def markdown(rows: list[dict]) -> str:
    sa = next(r for r in rows if r["module"] == "self_attention")
    head = (
        "| module | params (M=2^20) | GMACs (unfolded) | infer ms | train ms | infer MiB | train MiB | "
        "train time / SA | train mem / SA | paper: params, GMACs, train/infer MB, train/infer ms |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]

    def macs(r: dict) -> str:
        text = f"{r['macs_fwd'] / 1e9:.1f}"
        if "macs_fwd_unfolded" in r and r["module"] != "ham_nmf_unfolded":
            text += f" ({r['macs_fwd_unfolded'] / 1e9:.1f})"
        return text

    for r in rows:
        paper = PAPER.get(r["module"].replace("_unfolded", ""))
        paper_txt = "-"
        if paper is not None:
            paper_txt = f"{paper[0]:.2f}M, {paper[1]}G, {paper[2]}/{paper[3]} MB, {paper[4]}/{paper[5]} ms"
        lines.append(
            f"| {r['module']} | {r['params'] / 2**20:.2f} | {macs(r)} | {r['infer_ms']:.0f} "
            f"[{r['infer_ms_min']:.0f}-{r['infer_ms_max']:.0f}] | {r['train_ms']:.0f} [{r['train_ms_min']:.0f}-"
            f"{r['train_ms_max']:.0f}] | {r['infer_peak_mib']:.0f} | {r['train_peak_mib']:.0f} | "
            f"{r['train_ms'] / sa['train_ms']:.3f} | {r['train_peak_mib'] / sa['train_peak_mib']:.3f} | {paper_txt} |"
        )
    return "\n".join(lines)


def check_targets(rows: list[dict]) -> list[dict]:
    by = {r["module"]: r for r in rows}
    if "ham_nmf" not in by:
        return []
    ham = by["ham_nmf"]
    out = []
    for text, other, key, need in TARGETS:
        if other in by:
            ratio = by[other][key] / ham[key]
            out.append({"target": text, "measured_ratio": ratio, "met": ratio >= need})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", nargs="+", default=list(MODULES))
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--channels", type=int, default=512)
    p.add_argument("--rank", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--repeats", type=int, default=5, help="repeats of the linear-cost modules")
    p.add_argument("--quadratic-repeats", type=int, default=1, help="repeats of SA / non-local / SDPA (slow on CPU)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--resume", action="store_true", help="keep the rows of table3_partial.json, measure the rest")
    args = p.parse_args(argv)
    if "self_attention" not in args.modules:
        print("table3: the ratios need self_attention in --modules", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    rate = matmul_rate(2048, device=args.device)
    rows = []
    partial = args.out / "table3_partial.json"
    if args.resume and partial.exists():
        rows = [r for r in json.loads(partial.read_text()) if r["module"] in args.modules]
        print("resumed: " + ", ".join(r["module"] for r in rows), flush=True)
    for name in args.modules:
        if any(r["module"] == name for r in rows):
            continue
        heavy = name in QUADRATIC
        # slow blocks: FLOPs from shapes on the meta device; the memory pass is their warm-up
        config = BenchConfig(
            device=args.device, warmup=0 if heavy else 1, repeats=args.quadratic_repeats if heavy else args.repeats,
            flops=not heavy, memory=name not in META_MEMORY,
        )  # fmt: skip
        row = measure_row(
            name, size=args.size, channels=args.channels, rank=args.rank, steps=args.steps, batch=1,
            config=config,
        )  # fmt: skip
        if heavy:
            row["flops_fwd"], row["flops_train"] = meta_costs(name, args)
            row["macs_fwd"] = row["flops_fwd"] // 2
        if name in HAMS:  # the paper counts W_u (D C); the V1 block computes (W_u D) C
            flops = meta_costs(name, args, fold=False)
            row["flops_fwd_unfolded"], row["flops_train_unfolded"] = flops
            row["macs_fwd_unfolded"] = flops[0] // 2
        if name == "ham_nmf_unfolded":
            row["macs_fwd_unfolded"] = row["macs_fwd"]
        if name in META_MEMORY:
            mib = meta_costs(name, args, lambda fn: peak_memory(fn, device=torch.device("meta")) / 2**20)
            row["infer_peak_mib"], row["train_peak_mib"] = mib
        for phase, key in (("infer", "flops_fwd"), ("train", "flops_train")):
            row[f"{phase}_gflops_per_s"] = row[key] / row[f"{phase}_ms"] / 1e6
            row[f"{phase}_frac_matmul_peak"] = row[f"{phase}_gflops_per_s"] / rate.median_gflops
        rows.append(row)
        args.out.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(rows, indent=2) + "\n")
        print(f"{name}: infer {row['infer_ms']:.1f} ms, train {row['train_ms']:.1f} ms, "
              f"mem {row['infer_peak_mib']:.0f}/{row['train_peak_mib']:.0f} MiB", flush=True)  # fmt: skip
    sa = next(r for r in rows if r["module"] == "self_attention")
    for r in rows:
        keys = ("params", "macs_fwd", "infer_ms", "train_ms", "infer_ms_min", "train_ms_min", "infer_peak_mib",
                "train_peak_mib")  # fmt: skip
        for key in keys:
            r[f"{key}_vs_sa"] = r[key] / sa[key]
    table, targets = markdown(rows), check_targets(rows)
    print(table)
    for t in targets:
        print(f"{'MET ' if t['met'] else 'MISS'} {t['target']}: measured {t['measured_ratio']:.2f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": machine_info(args.device), "matmul": vars(rate), "notes": [FLOP_NOTE, MEMORY_NOTE],
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}  # fmt: skip
    (args.out / "table3.json").write_text(json.dumps({"meta": meta, "rows": rows, "targets": targets}, indent=2) + "\n")
    write_csv(rows, args.out / "table3.csv")
    (args.out / "table3.md").write_text(table + "\n")
    _plot(rows, args.out / "table3.png")
    partial.unlink(missing_ok=True)
    return 0


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("macs_fwd_vs_sa", "MACs"), ("infer_ms_vs_sa", "infer time"), ("train_ms_vs_sa", "train time"),
            ("infer_peak_mib_vs_sa", "infer memory"), ("train_peak_mib_vs_sa", "train memory")]  # fmt: skip
    fig, ax = plt.subplots(figsize=(12, 4.5))
    width = 0.8 / len(keys)
    for i, (key, label) in enumerate(keys):
        ax.bar([j + i * width for j in range(len(rows))], [r[key] for r in rows], width, label=label)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))], [r["module"] for r in rows])
    ax.set_yscale("log")
    ax.set_ylabel("ratio to self_attention (log)")
    ax.set_title("Table 3 setting: 1 x 512 x 128 x 128, r = 64, K = 6 (" + torch.__version__ + ", CPU)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
