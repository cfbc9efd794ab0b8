"""Train several models the same way and collect their scores, parameter counts and training times.

The generic half of a recipe's ``compare`` command: every run is ``fit`` with one config and the same
overrides, changing only the model option; each final model is then validated once more on the same split.
The recipe supplies how to build its CLI, the scores of a fitted run and how to print the table.

    results = compare_runs(build_cli, config="cfg.yaml", models=["tiny_ham", "tiny_fcn"], root="runs/cmp",
                           overrides=["--trainer.max_steps=200"], score=lambda cli: {...})

``train_seconds`` is the wall time of ``trainer.fit`` alone (CLI parsing, model and dataset construction are
outside it); runs are made in the given order in one process.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..utils import atomic_write_text
from ..utils.configs import resolve_config
from .cli import USER_ERRORS, ArgumentParser, error_line, json_safe

__all__ = ["compare_main", "compare_runs", "count_parameters"]

BuildCLI = Callable[[list[str]], Any]


def count_parameters(module: Any) -> int:
    """Number of parameter elements of ``module`` (buffers such as BN statistics are not counted)."""
    return sum(p.numel() for p in module.parameters())


def compare_runs(
    build_cli: BuildCLI,
    *,
    config: str,
    models: Sequence[str],
    root: str,
    overrides: Sequence[str] = (),
    score: Callable[[Any], dict[str, Any]],
    model_option: str = "--model.model",
) -> list[dict[str, Any]]:
    """Fit each of ``models`` with ``config`` + ``overrides`` under ``root/<model>``; validate; return rows.

    Each row holds ``model``, ``params``, ``steps``, ``train_seconds`` (``trainer.fit`` only), the recipe's
    ``score(cli)`` and ``checkpoint_dir``. A comparison always trains from scratch: checkpoints of an earlier
    comparison in ``root`` are replaced (``--checkpoint.overwrite=true``).
    """
    results = []
    for name in models:
        cli = build_cli(
            ["fit", "--config", config, "--checkpoint.overwrite=true", *overrides, f"{model_option}={name}",
             f"--trainer.default_root_dir={os.path.join(root, name)}"]
        )  # fmt: skip
        cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
        fit_seconds = getattr(cli, "fit_seconds", None)
        results.append(
            {
                "model": name,
                "params": count_parameters(cli.model),
                "steps": int(cli.trainer.global_step),
                "train_seconds": None if fit_seconds is None else round(fit_seconds, 1),
                **score(cli),
                "checkpoint_dir": getattr(cli.trainer.checkpoint_callback, "dirpath", None),
            }
        )
    return results


def _config_value(config: dict, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def compare_main(
    argv: Sequence[str] | None,
    *,
    prog: str,
    build_cli: BuildCLI,
    score: Callable[[Any], dict[str, Any]],
    format_results: Callable[[list[dict[str, Any]]], str],
    check_models: Callable[[list[str]], None] = lambda models: None,
    default_model: str,
    default_baselines: Sequence[str],
    default_root: str,
    description: str = "Train the config's model and one or more baselines the same way; print their scores.",
) -> int:
    """A ``compare`` command: parse ``argv``, :func:`compare_runs`, write ``<root>/compare.json``, print.

    ``--config`` (required), ``--model`` (default: the config's ``model.model``), ``--baseline MODEL ...``
    and ``--root`` (default ``<config's trainer.default_root_dir>/compare``); every other option goes to each
    ``fit``. ``check_models`` runs before any training (raise ``ValueError`` for unknown names). Returns the
    exit code; user errors are one line on stderr (code 2).
    """
    parser = ArgumentParser(
        prog=prog,
        description=description,
        epilog="Any other option (e.g. --trainer.max_steps=200) is passed to every 'fit' run.",
    )
    parser.add_argument("--config", required=True, help="fit config: a YAML file or a packaged config name")
    parser.add_argument("--model", default=None, help="main model (default: the config's model.model)")
    parser.add_argument(
        "--baseline", nargs="+", default=list(default_baselines), metavar="MODEL",
        help=f"one or more baseline model names (default: {' '.join(default_baselines)})",
    )  # fmt: skip
    parser.add_argument("--root", default=None, help="output folder (default: <config's default_root_dir>/compare)")
    args, overrides = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    try:
        args.config = resolve_config(args.config)  # a packaged config's name (fashion_scenes) works too
    except ValueError as err:
        parser.error(f"--config: {err}")
    if not os.path.isfile(args.config):
        parser.error(f"--config: file not found: {args.config}")
    import yaml

    try:
        with open(args.config, encoding="utf-8") as f:
            cfg = yaml.safe_load(f) or {}
        if not isinstance(cfg, dict):
            raise ValueError(f"--config {args.config}: expected a YAML mapping of options")
        model = args.model or _config_value(cfg, "model.model") or default_model
        root = args.root or os.path.join(_config_value(cfg, "trainer.default_root_dir") or default_root, "compare")
        models = list(dict.fromkeys([model, *args.baseline]))  # in order, each model once
        check_models(models)  # before any training, so a typo in the last baseline costs nothing
        start = time.perf_counter()
        results = compare_runs(
            build_cli, config=args.config, models=models, root=root, overrides=overrides, score=score
        )
        wall = time.perf_counter() - start
        report = {"config": args.config, "overrides": overrides, "wall_seconds": wall, "results": results}
        path = os.path.join(root, "compare.json")
        atomic_write_text(path, json.dumps(json_safe(report), indent=2) + "\n")
    except yaml.YAMLError as err:
        print(error_line(prog, f"--config {args.config}: {err}"), file=sys.stderr)
        return 2
    except USER_ERRORS as err:
        print(error_line(prog, err), file=sys.stderr)
        return 2
    except SystemExit as stop:  # --help of an override
        return stop.code if isinstance(stop.code, int) else 2
    print()
    print(format_results(results))
    print(f"total wall time {wall:.0f} s; details in {path}")
    return 0
