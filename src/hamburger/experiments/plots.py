"""PNG plots of an experiment's results (matplotlib's object API: no display, no pyplot state).

* ``bars``: mIoU (mean ± std over seeds) per arm and evaluation;
* ``eval_k``: mIoU against the eval ``K`` for each training ``K`` (the ``steps`` experiment);
* ``cost``: accuracy (mIoU and ctx acc) against the context block's FLOPs and latency (the ``context`` experiment);
* ``branch_stats``: gate value and branch / shortcut RMS over training (the ``diagnostics`` experiment);
* ``spectrum``: singular-value energy before and after the block per arm;
* ``code_maps``: the spectrum module's code-map PNG of each arm's first seed, copied beside the others.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..utils import atomic_write
from .registry import Experiment

__all__ = ["make_plots"]


def _mean(row: Mapping[str, Any], key: str, scale: float = 1.0) -> tuple[float, float]:
    stats = row["metrics"].get(key) or {}
    mean, std = stats.get("mean"), stats.get("std")
    return (math.nan if mean is None else scale * mean), (0.0 if std is None else scale * std)


def _save(figure: Any, path: str) -> str:
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    return path


def _subplots(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """A figure and its axes without pyplot (no global backend or figure registry is touched)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    return figure, figure.subplots(nrows, ncols, **kwargs)


def _bars(experiment: Experiment, rows: Sequence[Mapping[str, Any]], path: str) -> str:
    labels = [r["arm"] + (f"\n{r['evaluation']}" if r["evaluation"] else "") for r in rows]
    values = [_mean(r, "mIoU", 100) for r in rows]
    figure, axis = _subplots((max(4.0, 0.6 * len(rows) + 1), 3.2))
    axis.bar(range(len(rows)), [v[0] for v in values], yerr=[v[1] for v in values], capsize=3, color="#1f77b4")
    axis.set_xticks(range(len(rows)), labels, rotation=45, ha="right", fontsize=8)
    axis.set_ylabel("val mIoU %")
    axis.set_title(f"{experiment.name}: mIoU (mean ± std over seeds)")
    return _save(figure, path)


def _eval_k(rows: Sequence[Mapping[str, Any]], path: str) -> str:
    figure, axis = _subplots((5, 3.2))
    for arm in dict.fromkeys(r["arm"] for r in rows):
        mine = [r for r in rows if r["arm"] == arm]
        ks = [int("".join(ch for ch in r["evaluation"] if ch.isdigit()) or 0) for r in mine]
        values = [_mean(r, "mIoU", 100) for r in mine]
        axis.errorbar(
            ks, [v[0] for v in values], yerr=[v[1] for v in values], marker="o", capsize=3, label=f"train {arm}"
        )
    axis.set_xlabel("eval K")
    axis.set_ylabel("val mIoU %")
    axis.legend(fontsize=8)
    return _save(figure, path)


def _cost(rows: Sequence[Mapping[str, Any]], path: str) -> str:
    figure, axes = _subplots((9, 3.4), 1, 2)
    for axis, key, label in ((axes[0], "context_mflops", "context block MFLOPs"),
                             (axes[1], "context_latency_ms", "context block latency ms (CPU, batch 1)")):  # fmt: skip
        for r in rows:
            x, _ = _mean(r, key)
            for metric, marker in (("mIoU", "o"), ("ctx_acc", "^")):
                y, err = _mean(r, metric, 100)
                if math.isfinite(x) and math.isfinite(y):
                    axis.errorbar(
                        [x], [y], yerr=[err], marker=marker, capsize=3, color="C0" if metric == "mIoU" else "C1"
                    )
                    axis.annotate(r["arm"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        axis.set_xlabel(label)
        axis.set_ylabel("% (o: mIoU, ^: ctx acc)")
    figure.suptitle("accuracy vs cost")
    return _save(figure, path)


def _branch_stats(report: Mapping[str, Any], path: str) -> str | None:
    curves = [(r["arm"], r["seed"], (r.get("measures") or {}).get("branch_stats") or []) for r in report["runs"]]
    keys = sorted({k for _, _, recs in curves for rec in recs for k, v in rec.items()
                   if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)})  # fmt: skip
    if not keys:
        return None
    figure, axes = _subplots((4 * len(keys), 3.2), 1, len(keys), squeeze=False)
    for axis, key in zip(axes[0], keys, strict=True):
        for arm, seed, recs in curves:
            points = [(rec.get("step", i), rec[key]) for i, rec in enumerate(recs) if key in rec]
            if points:
                axis.plot(*zip(*points, strict=True), label=f"{arm} s{seed}")
        axis.set_xlabel("step")
        axis.set_title(key, fontsize=9)
    axes[0][0].legend(fontsize=7)
    return _save(figure, path)


def _spectrum(rows: Sequence[Mapping[str, Any]], path: str) -> str | None:
    rows = [r for r in rows if "energy_before" in r["metrics"] or "energy_after" in r["metrics"]]
    if not rows:
        return None
    figure, axis = _subplots((max(4.0, 1.2 * len(rows) + 1), 3.2))
    width = 0.38
    for shift, key in ((-width / 2, "energy_before"), (width / 2, "energy_after")):
        values = [_mean(r, key) for r in rows]
        axis.bar([i + shift for i in range(len(rows))], [v[0] for v in values], width, yerr=[v[1] for v in values],
                 capsize=3, label=key.replace("_", " "))  # fmt: skip
    axis.set_xticks(range(len(rows)), [r["arm"] for r in rows])
    axis.set_ylabel("singular-value energy")
    axis.legend(fontsize=8)
    return _save(figure, path)


def _code_maps(experiment: Experiment, report: Mapping[str, Any], output: str) -> list[str | None]:
    """The first seed's code-map PNG of each arm, copied to ``output/NAME_code_maps_ARM.png``."""
    import shutil

    paths: list[str | None] = []
    for run in report["runs"]:
        source = (run.get("measures") or {}).get("code_maps")
        if run["seed"] != 0 or not isinstance(source, str) or not os.path.isfile(source):
            continue
        path = os.path.join(output, f"{experiment.name}_code_maps_{run['arm']}.png")

        def copy(tmp: str, source: str = source) -> None:
            shutil.copyfile(source, tmp)

        atomic_write(path, copy)
        paths.append(path)
    return paths


def make_plots(experiment: Experiment, report: Mapping[str, Any], output: str) -> list[str]:
    """Write the experiment's plots as ``output/NAME_PLOT.png``; return their paths (a plot without data is left
    out)."""
    rows = report["rows"]
    if not rows:
        return []
    paths: list[str | None] = []
    for plot in experiment.plots:
        path = os.path.join(output, f"{experiment.name}_{plot}.png")
        if plot == "bars":
            paths.append(_bars(experiment, rows, path))
        elif plot == "eval_k":
            paths.append(_eval_k(rows, path))
        elif plot == "cost":
            paths.append(_cost(rows, path))
        elif plot == "branch_stats":
            paths.append(_branch_stats(report, path))
        elif plot == "spectrum":
            paths.append(_spectrum(rows, path))
        elif plot == "code_maps":
            paths += _code_maps(experiment, report, output)
        else:
            raise ValueError(f"unknown plot {plot!r} in experiment {experiment.name!r}")
    return [p for p in paths if p is not None]
