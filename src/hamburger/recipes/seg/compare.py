"""``hamburger seg compare``: Hamburger vs baselines, trained and evaluated the same way.

Runs ``hamburger seg fit`` once per model with one config (same data, seed, schedule, head width), changing
only ``--model.model``, evaluates every final model on the same validation split and prints the scores side by
side (also written to ``<root>/compare.json``). The loop itself is the training core's
(:func:`hamburger.training.compare.compare_runs`); this module holds what is about segmentation: the model
names, the scores kept per run and the table.

    hamburger seg compare --config fashion_scenes [--baseline tiny_attention [tiny_fcn ...]]
        [overrides ...]
"""

from __future__ import annotations

from typing import Any

from ...training.compare import BuildCLI, compare_main, compare_runs

__all__ = ["DEFAULT_BASELINES", "format_comparison", "main", "run_compare", "seg_scores"]

DEFAULT_BASELINES = ("tiny_attention",)


def seg_scores(cli: Any) -> dict[str, Any]:
    """The scores kept per run: mIoU, aAcc, mAcc and the per-class IoU of the last validation."""
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


def format_comparison(results: list[dict]) -> str:
    lines = [f"{'model':<18} {'params':>9} {'steps':>6} {'train s':>8} {'mIoU %':>7} {'aAcc %':>7} {'mAcc %':>7}"]
    for r in results:
        seconds = r["train_seconds"] if r["train_seconds"] is not None else float("nan")
        lines.append(
            f"{r['model']:<18} {r['params']:>9,d} {r['steps']:>6d} {seconds:>8.1f} "
            f"{100 * r['mIoU']:>7.2f} {100 * r['aAcc']:>7.2f} {100 * r['mAcc']:>7.2f}"
        )
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
