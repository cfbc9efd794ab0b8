"""``hamburger seg compare``: Hamburger vs baselines, trained and evaluated the same way.

Runs ``hamburger seg fit`` once per model with one config (same data, seed, schedule, head width), changing
only ``--model.model``, evaluates every final model on the same validation split and prints the scores side by
side (also written to ``<root>/compare.json``).

    hamburger seg compare --config configs/seg/fashion_scenes.yaml [--baseline tiny_attention [tiny_fcn ...]]
        [overrides ...]
"""

from __future__ import annotations

import argparse
import os
import time

__all__ = ["main", "run_compare"]


def run_compare(config: str, *, models: list[str], root: str, overrides: list[str]) -> list[dict]:
    """Fit each of ``models`` with ``config`` + ``overrides`` under ``root/<model>``; return their results.

    A comparison always trains from scratch: checkpoints of an earlier comparison in ``root`` are replaced."""
    from .cli import build_cli

    results = []
    for name in models:
        start = time.perf_counter()
        cli = build_cli(
            ["fit", "--config", config, "--checkpoint.overwrite=true", *overrides, f"--model.model={name}",
             f"--trainer.default_root_dir={os.path.join(root, name)}"]
        )  # fmt: skip
        train_s = time.perf_counter() - start
        cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
        scores = cli.model.last_scores
        results.append(
            {
                "model": name,
                "params": sum(p.numel() for p in cli.model.net.parameters()),
                "steps": cli.trainer.global_step,
                "train_seconds": round(train_s, 1),
                "mIoU": scores["mIoU"],
                "aAcc": scores["aAcc"],
                "mAcc": scores["mAcc"],
                "per_class_IoU": {k: v["IoU"] for k, v in scores["per_class"].items()},
                "checkpoint_dir": cli.trainer.checkpoint_callback.dirpath,
            }
        )
    return results


def format_comparison(results: list[dict]) -> str:
    lines = [f"{'model':<18} {'params':>9} {'steps':>6} {'train s':>8} {'mIoU %':>7} {'aAcc %':>7} {'mAcc %':>7}"]
    for r in results:
        lines.append(
            f"{r['model']:<18} {r['params']:>9,d} {r['steps']:>6d} {r['train_seconds']:>8.1f} "
            f"{100 * r['mIoU']:>7.2f} {100 * r['aAcc']:>7.2f} {100 * r['mAcc']:>7.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hamburger seg compare",
        description="Train the config's model and one or more baselines the same way; print their mIoUs.",
        epilog="Any other option (e.g. --trainer.max_steps=200) is passed to both 'fit' runs.",
    )
    parser.add_argument("--config", required=True, help="fit config (its model.model is the Hamburger model)")
    parser.add_argument("--model", default=None, help="Hamburger model (default: the config's model.model)")
    parser.add_argument(
        "--baseline", nargs="+", default=["tiny_attention"], metavar="MODEL",
        help="one or more baseline model names (default: tiny_attention)",
    )  # fmt: skip
    parser.add_argument("--root", default=None, help="output folder (default: <config's default_root_dir>/compare)")
    args, overrides = parser.parse_known_args(argv)
    if not os.path.isfile(args.config):
        parser.error(f"--config: file not found: {args.config}")
    import yaml

    with open(args.config) as f:
        cfg = yaml.safe_load(f) or {}
    model = args.model or (cfg.get("model") or {}).get("model") or "tiny_ham"
    root = args.root or os.path.join((cfg.get("trainer") or {}).get("default_root_dir") or "runs/seg", "compare")
    start = time.perf_counter()
    try:
        models = list(dict.fromkeys([model, *args.baseline]))  # in order, each model once
        from ...models import list_models

        unknown = [m for m in models if m not in list_models()]
        if unknown:  # before any training, so a typo in the last baseline costs nothing
            parser.error(f"unknown model name(s) {unknown}; registered models: {list_models()}")
        results = run_compare(args.config, models=models, root=root, overrides=overrides)
    except SystemExit as stop:  # a bad override: jsonargparse already printed the offending key
        return int(stop.code) if isinstance(stop.code, int) else 2
    wall = time.perf_counter() - start
    from .metrics import write_json

    write_json(
        {"config": args.config, "overrides": overrides, "wall_seconds": wall, "results": results},
        os.path.join(root, "compare.json"),
    )
    print()
    print(format_comparison(results))
    print(f"total wall time {wall:.0f} s; details in {os.path.join(root, 'compare.json')}")
    return 0
