"""``hamburger seg compare``: Hamburger vs baselines, trained and evaluated the same way.

Runs ``hamburger seg fit`` once per model with one config (same data, seed, schedule, head width), changing
only ``--model.model``, evaluates every final model on the same validation split and prints the scores side by
side (also written to ``<root>/compare.json``). The loop itself is the training core's
(:func:`hamburger.training.compare.compare_runs`); this module holds what is about segmentation: the model
names, the scores kept per run and the table.

    hamburger seg compare --config fashion_scenes [--baseline tiny_attention [tiny_fcn ...]]
        [--timing_warmup N] [overrides ...]
"""

from __future__ import annotations

from typing import Any

from ...training.compare import BuildCLI, compare_main, compare_runs

__all__ = ["DEFAULT_BASELINES", "format_comparison", "main", "run_compare", "seg_scores"]

DEFAULT_BASELINES = ("tiny_attention",)


def seg_scores(cli: Any) -> dict[str, Any]:
    """The scores kept per run: mIoU, aAcc, mAcc and the per-class IoU (class name -> IoU) of the last validation."""
    scores = cli.model.last_scores
    return {
        "mIoU": scores["mIoU"],
        "aAcc": scores["aAcc"],
        "mAcc": scores["mAcc"],
        "per_class_IoU": {k: v["IoU"] for k, v in scores["per_class"].items()},
    }


def check_model_names(models: list[str]) -> None:
    """Refuse names that are not registered models (before anything is trained)."""
    from ...models import list_models

    unknown = [m for m in models if m not in list_models()]
    if unknown:
        raise ValueError(f"unknown model name(s) {unknown}; registered models: {list_models()}")


def run_compare(config: str, *, models: list[str], root: str, overrides: list[str], build_cli: BuildCLI) -> list[dict]:
    """Fit each of ``models`` with ``config`` + ``overrides`` under ``root/<model>``; return their results."""
    return compare_runs(build_cli, config=config, models=models, root=root, overrides=overrides, score=seg_scores)


def _pct(value: float | None, width: int) -> str:
    if value is None or value != value:  # no IoU: the class is neither in the labels nor predicted
        return f"{'-':>{width}}"
    return f"{100 * value:>{width}.2f}"


def format_comparison(results: list[dict]) -> str:
    """The summary table (one row per model), then the per-class IoU (one row per class, one column per model).

    ``s/step`` is the mean time of a training step after the untimed warm-up steps (see
    :class:`hamburger.training.compare.StepTimer`), ``train s`` the whole ``trainer.fit``.
    """
    lines = [
        f"{'model':<18} {'params':>9} {'steps':>6} {'s/step':>8} {'train s':>8} {'mIoU %':>7} {'aAcc %':>7} "
        f"{'mAcc %':>7}"
    ]
    for r in results:
        seconds = r["train_seconds"] if r["train_seconds"] is not None else float("nan")
        step = r.get("step_seconds")
        step_text = f"{step:>8.4f}" if step is not None else f"{'n/a':>8}"
        lines.append(
            f"{r['model']:<18} {r['params']:>9,d} {r['steps']:>6d} {step_text} {seconds:>8.1f} "
            f"{100 * r['mIoU']:>7.2f} {100 * r['aAcc']:>7.2f} {100 * r['mAcc']:>7.2f}"
        )
    timed = [r for r in results if r.get("warmup_steps") is not None]
    if timed:
        warmups = sorted({r["warmup_steps"] for r in timed})
        lines.append(f"s/step: mean over the steps after {'/'.join(map(str, warmups))} untimed warm-up step(s)")
    classes = list(dict.fromkeys(name for r in results for name in r.get("per_class_IoU", {})))
    if classes:
        width = max([len("class"), *map(len, classes)])
        columns = [max(len(r["model"]), 6) for r in results]
        lines.append("")
        lines.append("IoU % per class")
        lines.append(
            f"{'class':<{width}}" + "".join(f"  {r['model']:>{w}}" for r, w in zip(results, columns, strict=True))
        )
        for name in classes:
            cells = "".join(
                f"  {_pct(r.get('per_class_IoU', {}).get(name), w)}" for r, w in zip(results, columns, strict=True)
            )
            lines.append(f"{name:<{width}}{cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None, *, build_cli: BuildCLI) -> int:
    """``hamburger seg compare``; ``build_cli`` builds and runs one ``fit`` (the seg CLI's ``build_cli``)."""
    return compare_main(
        argv,
        prog="hamburger seg compare",
        build_cli=build_cli,
        score=seg_scores,
        format_results=format_comparison,
        check_models=check_model_names,
        default_model="tiny_ham",
        default_baselines=DEFAULT_BASELINES,
        default_root="runs/seg",
    )
