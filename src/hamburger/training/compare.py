"""Train several models the same way and collect their scores, parameter counts and training times.

The generic half of a recipe's ``compare`` command: every run is ``fit`` with one config and the same
overrides, changing only the model option; each final model is then validated once more on the same split.
The recipe supplies how to build its CLI, the scores of a fitted run and how to print the table.

    results = compare_runs(build_cli, config="cfg.yaml", models=["tiny_ham", "tiny_fcn"], root="runs/cmp",
                           overrides=["--trainer.max_steps=200"], score=lambda cli: {...})

Timing protocol (the same for every model, so the order of the models does not favour any):

* a short untimed *warm-up run* (the first model, ``timing_warmup`` steps, no validation, in a temporary folder
  that is removed) comes first, so one-time costs of the process (imports, CUDA context and kernels, memory
  pools, dataset caches) are not charged to whichever model happens to run first;
* in every timed run a :class:`StepTimer` times each training step (``on_train_batch_start`` to
  ``on_train_batch_end``, the device synchronised at both ends: forward, loss, backward, optimiser step; data
  loading, validation and checkpointing are outside it) and excludes the first ``timing_warmup`` steps
  (allocator growth, cuDNN autotuning, first-call compilation). ``step_seconds`` is the mean of the other steps.

``train_seconds`` is the wall time of ``trainer.fit`` alone (CLI parsing, model and dataset construction are
outside it, validation inside); runs are made in the given order in one process.

Cost: with a recipe's ``cost(cli)`` (e.g. :func:`hamburger.training.cost.model_cost` of the trained model at the
run's batch and crop size), each row gets a ``cost`` dict measured in the same process right after the model's
fit and validation, before the next model is built (``None`` when the comparison skips it).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from ..utils import atomic_write_text, check_int, check_positive_int
from ..utils.configs import resolve_config
from .cli import USER_ERRORS, ArgumentParser, error_line, json_safe
from .cost import DEFAULT_COST_SIZE

__all__ = ["DEFAULT_TIMING_WARMUP", "StepTimer", "compare_main", "compare_runs", "count_parameters"]

BuildCLI = Callable[[list[str]], Any]
DEFAULT_TIMING_WARMUP = 5
"""Training steps of the warm-up run and steps excluded from each run's ``step_seconds``."""


class StepTimer(pl.Callback):
    """Wall time of each training step after the first ``warmup_steps`` (forward, backward, optimiser step).

    A step is timed from ``on_train_batch_start`` to ``on_train_batch_end`` with the module's device synchronised
    at both ends (CUDA / MPS run asynchronously), so data loading, validation and checkpoint writing are not
    counted. The first ``warmup_steps`` steps are counted in ``warmup_seen`` but not timed.

    Attributes:
        warmup_steps: steps excluded at the start of the run.
        warmup_seen: steps excluded so far (``min(steps, warmup_steps)``).
        timed_steps: steps timed.
        timed_seconds: their total time.
    """

    def __init__(self, warmup_steps: int = DEFAULT_TIMING_WARMUP) -> None:
        super().__init__()
        self.warmup_steps = check_int("warmup_steps", warmup_steps, 0)
        self.warmup_seen = 0
        self.timed_steps = 0
        self.timed_seconds = 0.0
        self._start: float | None = None

    @staticmethod
    def _synchronize(module: torch.nn.Module) -> None:
        device = getattr(module, "device", None)
        if not isinstance(device, torch.device):
            return
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elif device.type == "mps":
            torch.mps.synchronize()

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._synchronize(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._start is None:
            return
        self._synchronize(pl_module)
        elapsed = time.perf_counter() - self._start
        self._start = None
        if self.warmup_seen < self.warmup_steps:
            self.warmup_seen += 1
        else:
            self.timed_steps += 1
            self.timed_seconds += elapsed

    @property
    def seconds_per_step(self) -> float | None:
        """Mean time of a timed step; ``None`` when the run had no step after the warm-up."""
        return self.timed_seconds / self.timed_steps if self.timed_steps else None

    def cli_option(self) -> str:
        """The ``--trainer.callbacks+=`` option that adds a timer with this ``warmup_steps`` to a ``fit``."""
        spec = {"class_path": f"{__name__}.StepTimer", "init_args": {"warmup_steps": self.warmup_steps}}
        return f"--trainer.callbacks+={json.dumps(spec)}"


def _step_timer(cli: Any) -> StepTimer | None:
    return next((cb for cb in getattr(cli.trainer, "callbacks", ()) if isinstance(cb, StepTimer)), None)


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
    timing_warmup: int = DEFAULT_TIMING_WARMUP,
    cost: Callable[[Any], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Fit each of ``models`` with ``config`` + ``overrides`` under ``root/<model>``; validate; return rows.

    Each row holds ``model``, ``params``, ``steps``, ``step_seconds`` (mean time of a training step after
    ``timing_warmup`` untimed ones, see :class:`StepTimer`), ``timed_steps``, ``warmup_steps``,
    ``train_seconds`` (``trainer.fit`` in total), the recipe's ``score(cli)``, ``cost`` (the recipe's
    ``cost(cli)`` of the trained model, measured after the validation; ``None`` without ``cost``) and
    ``checkpoint_dir``. With
    ``timing_warmup > 0`` an untimed warm-up run of the first model comes first (see the module docstring).
    A comparison always trains from scratch: checkpoints of an earlier comparison in ``root`` are replaced
    (``--checkpoint.overwrite=true``).
    """
    timing_warmup = check_int("timing_warmup", timing_warmup, 0)
    base = ["fit", "--config", config, "--checkpoint.overwrite=true", *overrides]
    if timing_warmup and models:
        os.makedirs(root, exist_ok=True)
        scratch = tempfile.mkdtemp(prefix=".warmup-", dir=root)
        try:
            build_cli(
                [*base, f"{model_option}={models[0]}", f"--trainer.default_root_dir={scratch}",
                 f"--trainer.max_steps={timing_warmup}", "--trainer.limit_val_batches=0", "--trainer.logger=false"]
            )  # fmt: skip
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    results = []
    for name in models:
        cli = build_cli(
            [*base, StepTimer(timing_warmup).cli_option(), f"{model_option}={name}",
             f"--trainer.default_root_dir={os.path.join(root, name)}"]
        )  # fmt: skip
        cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
        fit_seconds = getattr(cli, "fit_seconds", None)
        timer = _step_timer(cli)
        step_seconds = timer.seconds_per_step if timer is not None else None
        results.append(
            {
                "model": name,
                "params": count_parameters(cli.model),
                "steps": int(cli.trainer.global_step),
                "step_seconds": None if step_seconds is None else round(step_seconds, 6),
                "timed_steps": timer.timed_steps if timer is not None else 0,
                "warmup_steps": timer.warmup_seen if timer is not None else 0,
                "train_seconds": None if fit_seconds is None else round(fit_seconds, 1),
                **score(cli),
                "cost": cost(cli) if cost is not None else None,
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
    cost: Callable[..., dict[str, Any]] | None = None,
    default_model: str,
    default_baselines: Sequence[str],
    default_root: str,
    description: str = "Train the config's model and one or more baselines the same way; print their scores.",
) -> int:
    """A ``compare`` command: parse ``argv``, :func:`compare_runs`, write ``<root>/compare.json``, print.

    ``--config`` (required), ``--model`` (default: the config's ``model.model``), ``--baseline MODEL ...``,
    ``--root`` (default ``<config's trainer.default_root_dir>/compare``) and ``--timing_warmup N`` (see
    :func:`compare_runs`); with a recipe's ``cost(cli, *, large_size)`` also ``--cost_size S`` (the large side,
    default :data:`~hamburger.training.cost.DEFAULT_COST_SIZE`) and ``--no_cost`` (skip the cost measurement).
    Every other option goes to each ``fit``. ``check_models`` runs before any training (raise ``ValueError`` for
    unknown names). Returns the exit code; user errors are one line on stderr (code 2).
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
    parser.add_argument(
        "--timing_warmup", type=int, default=DEFAULT_TIMING_WARMUP, metavar="N",
        help=f"untimed steps at the start of every run, and the length of an untimed warm-up run of the first "
        f"model before the timed runs (0: none; default {DEFAULT_TIMING_WARMUP})",
    )  # fmt: skip
    if cost is not None:
        parser.add_argument(
            "--cost_size", type=int, default=DEFAULT_COST_SIZE, metavar="S",
            help=f"side of the large square input of the cost columns: forward FLOPs and latency of one SxS image "
            f"(default {DEFAULT_COST_SIZE})",
        )  # fmt: skip
        parser.add_argument(
            "--no_cost", action="store_true",
            help="skip the cost measurement (peak memory of a training step, FLOPs, latency) after each fit",
        )  # fmt: skip
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
        check_int("--timing_warmup", args.timing_warmup, 0)
        measure = None
        if cost is not None and not args.no_cost:
            large_size = check_positive_int("--cost_size", args.cost_size)
            measure = functools.partial(cost, large_size=large_size)
        start = time.perf_counter()
        results = compare_runs(
            build_cli, config=args.config, models=models, root=root, overrides=overrides, score=score,
            timing_warmup=args.timing_warmup, cost=measure,
        )  # fmt: skip
        wall = time.perf_counter() - start
        report = {
            "config": args.config, "overrides": overrides, "timing_warmup": args.timing_warmup,
            "cost": measure is not None, "wall_seconds": wall, "results": results,
        }  # fmt: skip
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
