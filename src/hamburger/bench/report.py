"""Benchmark output: a terminal table, CSV, JSON and log-log plots (matplotlib imported lazily)."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

COLUMNS = (
    "module", "batch", "channels", "size", "n", "rank", "steps", "params", "flops_fwd", "macs_fwd", "flops_train",
    "infer_ms", "infer_ms_min", "infer_ms_max", "train_ms", "train_ms_min", "train_ms_max",
    "infer_peak_mib", "train_peak_mib", "infer_gflops_per_s", "infer_frac_matmul_peak",
    "train_gflops_per_s", "train_frac_matmul_peak",
)  # fmt: skip


def _fmt(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(rows: Sequence[dict]) -> str:
    """Human-readable table: one line per row, times as median [min, max]."""
    header = (
        f"{'module':<17}{'HxW':>9}{'C':>6}{'r':>5}{'K':>4}{'B':>4}{'params':>11}{'GFLOPs':>10}"
        f"{'infer ms [min-max]':>30}{'train ms [min-max]':>32}{'inf MiB':>10}{'train MiB':>11}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:

        def span(key: str, r: dict = r) -> str:
            if key not in r:
                return "-"
            return f"{r[key]:.2f} [{r[key + '_min']:.2f}-{r[key + '_max']:.2f}]"

        flops = r.get("flops_fwd")
        gflops = _fmt(None if flops is None else flops / 1e9, ".3f")
        lines.append(
            f"{r['module']:<16} {str(r['size']) + 'x' + str(r['size']):>8} {r['channels']:>5} {r['rank']:>4}"
            f" {r['steps']:>3} {r['batch']:>3} {r['params']:>10} {gflops:>9}"
            f" {span('infer_ms'):>29} {span('train_ms'):>31}"
            f" {_fmt(r.get('infer_peak_mib'), '.1f'):>9} {_fmt(r.get('train_peak_mib'), '.1f'):>10}"
        )
    return "\n".join(lines)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def write_csv(rows: Sequence[dict], path: str | os.PathLike) -> Path:
    """One line per row, the columns of :data:`COLUMNS` (missing values left empty)."""
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    path = Path(path)
    _atomic_write(path, buf.getvalue())
    return path


def write_json(result: dict, path: str | os.PathLike) -> Path:
    """The full result (``meta`` and ``rows``)."""
    path = Path(path)
    _atomic_write(path, json.dumps(result, indent=2, sort_keys=False) + "\n")
    return path


def plot_scaling(rows: Sequence[dict], path: str | os.PathLike, *, title: str = "") -> Path:
    """Log-log plots of latency and peak memory against ``n``, one line per module setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("infer_ms", "inference latency (ms)"),
        ("train_ms", "forward+backward latency (ms)"),
        ("infer_peak_mib", "inference peak memory (MiB)"),
        ("train_peak_mib", "training peak memory (MiB)"),
    ]
    series: dict[str, list[dict]] = {}
    for r in rows:
        label = f"{r['module']} C={r['channels']} r={r['rank']} K={r['steps']} B={r['batch']}"
        series.setdefault(label, []).append(r)
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    for ax, (key, ylabel) in zip(axes.flat, panels, strict=True):
        for label, points in series.items():
            pts = sorted((p["n"], p[key]) for p in points if p.get(key))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("n = H x W")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
