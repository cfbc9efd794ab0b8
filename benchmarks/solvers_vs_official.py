"""Our NMF / VQ / CD solvers against the official-style reference (official_reference.py).

For each ham: forward (eval, no_grad) and forward+backward (train, one-step gradient) at the
compare sizes, timed alternately (ours, official, ours, ...) in one process so both see the
same machine state; the achieved FLOP rate of ours as a fraction of the dense fp32 matmul rate
measured in the same run; and the log-log slope of our time against n over the slope sizes.
Optionally a torch.profiler breakdown of our NMF at the largest compare size.

    python benchmarks/solvers_vs_official.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_reference import OFFICIAL  # noqa: E402

import hamburger as hb  # noqa: E402
from hamburger.bench import count_flops, matmul_rate  # noqa: E402


def paired_times(fns: list, *, warmup: int, repeats: int) -> list[list[float]]:
    """Alternate the callables ``repeats`` times; per callable the list of times in ms."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append((time.perf_counter() - t0) * 1e3)
    return times


def make_calls(module: torch.nn.Module, x: torch.Tensor) -> tuple:
    xg = x.clone().requires_grad_()
    grad = torch.ones_like(x)

    def fwd():
        module.eval()
        with torch.no_grad():
            module(x)

    def train():
        module.train()
        xg.grad = None
        module(xg).backward(grad)

    return fwd, train


def build(ham: str, args) -> tuple[torch.nn.Module, torch.nn.Module]:
    ours = hb.create_solver(ham, rank=args.rank, steps=args.steps, eval_steps=args.steps)
    return ours, OFFICIAL[ham](rank=args.rank, steps=args.steps)


def profile_nmf(args, size: int, out: Path) -> dict:
    from torch.profiler import ProfilerActivity, profile

    ours, _ = build("nmf", args)
    x = torch.randn(1, args.channels, size, size).relu_()
    fwd, train = make_calls(ours, x)
    report = {}
    for phase, fn in (("forward", fwd), ("forward_backward", train)):
        fn()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                fn()
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        report[phase] = [
            {"op": e.key, "calls": e.count // 3, "self_ms_per_call": e.self_cpu_time_total / 3e3,
             "share": e.self_cpu_time_total / total}
            for e in events[:12]
        ]  # fmt: skip
        (out / f"profile_nmf_{size}_{phase}.txt").write_text(
            prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20)
        )
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hams", nargs="+", default=["nmf", "vq", "cd"])
    p.add_argument("--compare-sizes", nargs="+", type=int, default=[64, 128])
    p.add_argument("--slope-sizes", nargs="+", type=int, default=[32, 64, 96, 128])
    p.add_argument("--channels", type=int, default=512)
    p.add_argument("--rank", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--matmul-size", type=int, default=2048)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rate = matmul_rate(args.matmul_size, repeats=7)
    print(f"dense fp32 matmul {rate.size}^3: {rate.median_gflops:.1f} GFLOP/s median, {rate.best_gflops:.1f} best")
    rows = []
    sizes = sorted(set(args.compare_sizes) | set(args.slope_sizes))
    for ham in args.hams:
        for size in sizes:
            ours, official = build(ham, args)
            x = torch.randn(1, args.channels, size, size).relu_()
            o_fwd, o_train = make_calls(ours, x)
            r_fwd, r_train = make_calls(official, x)
            flops_fwd = count_flops(o_fwd)
            flops_train = count_flops(o_train)
            compare = size in args.compare_sizes
            fns = [o_fwd, o_train, r_fwd, r_train] if compare else [o_fwd, o_train]
            samples = paired_times(fns, warmup=args.warmup, repeats=args.repeats)
            times = [statistics.median(t) for t in samples]
            mins = [min(t) for t in samples]
            row = {
                "ham": ham, "size": size, "n": size * size, "channels": args.channels, "rank": args.rank,
                "steps": args.steps, "flops_fwd": flops_fwd, "flops_train": flops_train,
                "ours_fwd_ms": times[0], "ours_train_ms": times[1],
                "ours_fwd_ms_min": mins[0], "ours_train_ms_min": mins[1],
                "ours_fwd_frac_peak": flops_fwd / times[0] / 1e6 / rate.median_gflops,
                "ours_train_frac_peak": flops_train / times[1] / 1e6 / rate.median_gflops,
                "ours_fwd_frac_best": flops_fwd / mins[0] / 1e6 / rate.best_gflops,
                "ours_train_frac_best": flops_train / mins[1] / 1e6 / rate.best_gflops,
            }  # fmt: skip
            if compare:
                row.update(
                    official_fwd_ms=times[2], official_train_ms=times[3],
                    official_fwd_ms_min=mins[2], official_train_ms_min=mins[3],
                    speedup_fwd=times[2] / times[0], speedup_train=times[3] / times[1],
                    speedup_fwd_min=mins[2] / mins[0], speedup_train_min=mins[3] / mins[1],
                )  # fmt: skip
            rows.append(row)
            print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    slopes = {}
    for ham in args.hams:
        pts = [r for r in rows if r["ham"] == ham and r["size"] in args.slope_sizes]
        logn = np.log([r["n"] for r in pts])
        for key in ("ours_fwd_ms", "ours_train_ms", "ours_fwd_ms_min", "ours_train_ms_min"):
            slopes[f"{ham}_{key}"] = float(np.polyfit(logn, np.log([r[key] for r in pts]), 1)[0])
    print("log-log slopes of time vs n:", {k: round(v, 3) for k, v in slopes.items()})
    profile = {} if args.no_profile else profile_nmf(args, max(args.compare_sizes), args.out)
    for phase, ops in profile.items():
        print(f"NMF {phase} profile (top ops by self CPU time):")
        for op in ops[:8]:
            print(f"  {op['op']:<32} calls {op['calls']:>4}  {op['self_ms_per_call']:8.2f} ms  {op['share']:.0%}")
    result = {
        "meta": {"torch": torch.__version__, "threads": torch.get_num_threads(), "matmul": vars(rate),
                 "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                 "note": "times are medians (and mins) over alternating repeats; frac_peak = counted matmul FLOPs / "
                         "median time / median dense matmul rate; frac_best = FLOPs / min time / best matmul "
                         "rate (elementwise ops not counted)"},
        "rows": rows, "slopes": slopes, "profile_nmf": profile,
    }  # fmt: skip
    (args.out / "solvers_vs_official.json").write_text(json.dumps(result, indent=2) + "\n")
    import csv

    with open(args.out / "solvers_vs_official.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    _plot(rows, args.out / "solvers_vs_official.png")
    return 0


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, phase in zip(axes, ("fwd", "train"), strict=True):
        for ham in sorted({r["ham"] for r in rows}):
            pts = sorted((r["n"], r[f"ours_{phase}_ms"]) for r in rows if r["ham"] == ham)
            ax.plot(*zip(*pts, strict=True), marker="o", label=f"ours {ham}")
            key = f"official_{phase}_ms"
            ref = sorted((r["n"], r[key]) for r in rows if r["ham"] == ham and key in r)
            if ref:
                ax.plot(*zip(*ref, strict=True), marker="x", linestyle="--", label=f"official-style {ham}")
        ax.set(xscale="log", yscale="log", xlabel="n = H x W", ylabel="ms",
               title="forward (eval)" if phase == "fwd" else "forward + backward (train)")  # fmt: skip
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
