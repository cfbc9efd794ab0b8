"""The command line shared by the recipes: :class:`HamburgerCLI` (a ``LightningCLI``) and :func:`run_cli`.

A recipe subclasses :class:`HamburgerCLI` (or sets its class attributes) and gets:

* crash-safe checkpoint files (:class:`~hamburger.training.checkpoint.AtomicCheckpointIO`), CSV logs in
  ``<root>/logs`` and TensorBoard logs in ``<root>/tb`` when TensorBoard is installed;
* a ``ModelCheckpoint`` configurable under ``--checkpoint.*`` (written to ``<root>/checkpoints``) and the
  training-curve plot under ``--curves.*``;
* ``--results_json`` for ``validate`` / ``test`` (default ``<root>/<command>_results_<checkpoint stem>.json``,
  written atomically; its path is printed);
* progress that fits a terminal and a log file (:mod:`~hamburger.training.progress`): a step bar on a terminal,
  one line every ``--progress.every_n_steps`` steps otherwise (also with ``--trainer.enable_progress_bar=false``),
  and a summary at the end of ``fit`` (final / best validation score with their steps, checkpoint, curves and log
  paths, wall time; also written to ``<root>/fit_results.json``);
* known noise from Lightning and libraries silenced for the run (:data:`QUIET_WARNINGS`, :data:`QUIET_LOGS`),
  with warnings filters and logging filters that are installed by :func:`build` and removed after it;
* **explicit values win over a checkpoint's hyper-parameters**: LightningCLI copies the hyper-parameters of
  ``--ckpt_path`` over the parsed config; values given on the command line or in a ``--config`` file are put back
  on top. Keys in :attr:`HamburgerCLI.fixed_by_checkpoint` (the architecture) and, for ``fit``,
  :attr:`HamburgerCLI.fixed_on_resume` (restored from the optimiser / scheduler state) cannot change: a
  different explicit value is refused with a message;
* checkpoint hyper-parameters are plain data: class specs are refused before LightningCLI parses them
  (:func:`~hamburger.training.hparams.check_plain_hparams`), and :meth:`HamburgerCLI.check_checkpoint` lets the
  recipe refuse more (the segmentation recipe refuses model import paths the user did not type);
* no abbreviated options (``--data.crop`` is not ``--data.crop_size``) and one-line errors:
  :func:`run_cli` prints ``<prog> <command>: error: <message>`` on stderr and returns 2 for the user errors in
  :data:`USER_ERRORS`; any other exception keeps its traceback.

Only public LightningCLI hooks are overridden (``init_parser``, ``add_arguments_to_parser``,
``parse_arguments``, ``before_instantiate_classes``, ``after_instantiate_classes``, ``instantiate_trainer`` and
the ``before_<command>`` / ``after_<command>`` hooks).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Literal, TypeVar

import torch
from jsonargparse import Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from ..utils import atomic_write_text
from ..utils.cli import ArgumentParser
from ..utils.configs import resolve_config
from .checkpoint import AtomicCheckpointIO, RunCheckpoint, require_checkpoint
from .curves import TrainingCurves
from .hparams import canonical, check_plain_hparams, read_checkpoint
from .progress import ProgressLog, StepProgressBar, fit_summary, format_duration

__all__ = [
    "QUIET_LOGS",
    "QUIET_WARNINGS",
    "USER_ERRORS",
    "ArgumentParser",
    "HamburgerCLI",
    "build",
    "error_line",
    "json_safe",
    "quiet_libraries",
    "read_checkpoint",
    "run_cli",
]

log = logging.getLogger(__name__)

#: Exceptions that are a user's mistake (a bad option, value, file or folder): one line on stderr, exit 2.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    OSError,
    argparse.ArgumentError,
    MisconfigurationException,
)

#: ``--ckpt_path`` values that Lightning resolves itself (no file to read beforehand).
SPECIAL_CKPT_PATHS = ("last", "best", "hpc")

#: Warnings (message regular expressions) that say nothing to a user of the recipes, silenced while
#: :func:`build` runs:
#:
#: * the logging interval is in optimiser steps across epochs; a short "epoch" (a small data set in a step-based
#:   config) is normal;
#: * Lightning 2.6 calls torch's deprecated ``LeafSpec`` (Lightning's own code, nothing to change here);
#: * "dirpath has changed": a run started from a checkpoint of another folder (fine-tuning, or a moved run)
#:   does not carry over that folder's best/last bookkeeping, which is what we want (one run per folder);
#: * "dataloader is not resumable": our training loaders are resumable (``training.sampling``); the warning
#:   would only concern a user's own loader, for which Lightning's check stays meaningful, so it is *not* listed.
QUIET_WARNINGS: tuple[str, ...] = (
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"The dirpath has changed from",
)

#: Lightning log lines (regular expressions) dropped while :func:`build` runs: the cloud-service tips, the seed
#: (it is in the saved ``config.yaml``) and device lines when they add nothing (no GPU / TPU there; "GPU
#: available but not used" is a warning and is kept).
QUIET_LOGS: tuple[str, ...] = (
    r"💡 Tip: For seamless cloud",
    r"Seed set to \d+",
    r"GPU available: False, used: False",
    r"TPU available: False, using: 0 TPU cores",
    r"HPU available: False, using: 0 HPUs",
)
#: the Lightning loggers that emit :data:`QUIET_LOGS`
_QUIET_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.fabric.utilities.seed",
)


class _DropMessages(logging.Filter):
    def __init__(self, patterns: Sequence[str]) -> None:
        super().__init__()
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        return not self.pattern.search(message)


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence :data:`QUIET_WARNINGS` and :data:`QUIET_LOGS` inside the block; everything is restored after it
    (nothing is changed when the library is imported)."""
    drop = _DropMessages(QUIET_LOGS)
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    with warnings.catch_warnings():
        for pattern in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        for logger in loggers:
            logger.addFilter(drop)
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeFilter(drop)


def one_line(message: object) -> str:
    """``message`` on one line: its lines stripped and joined with ``" "``."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def error_line(prog: str, err: BaseException | str) -> str:
    """``"<prog>: error: <message>"`` on one line (the exception's message, or its type when it has none)."""
    text = one_line(err) or type(err).__name__
    return f"{prog}: error: {text}"


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN as ``None``, one-element tensors as numbers and tuples as lists (for ``json.dumps``)."""
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return json_safe(obj.item())
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _shown(value: Any) -> str:
    return json.dumps(canonical(value), default=str)


def _config_files(args: Sequence[str]) -> list[str]:
    files = []
    for i, arg in enumerate(args):
        if arg in ("-c", "--config") and i + 1 < len(args):
            files.append(args[i + 1])
        elif arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
    return files


def _resolve_config_names(args: Sequence[str]) -> list[str]:
    """``args`` with each ``--config NAME`` that is not a file replaced by the packaged config of that name."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg in ("-c", "--config") and i + 1 < len(out):
            out[i + 1] = resolve_config(out[i + 1])
        elif arg.startswith("--config="):
            out[i] = "--config=" + resolve_config(arg.split("=", 1)[1])
    return out


def _check_config_file(path: str) -> None:
    """An empty or non-mapping YAML ``--config`` is an error that says so (jsonargparse: 'Unexpected config')."""
    import yaml

    if not os.path.isfile(path):
        return  # jsonargparse names the missing file
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return  # jsonargparse reports it
    if data is None:
        raise ValueError(f"--config {path}: the file is empty (expected a YAML mapping of options)")
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a YAML mapping of options, got a {type(data).__name__}")


class HamburgerCLI(LightningCLI):
    """LightningCLI with the training core's defaults; see the module docstring for what it adds.

    Recipes configure it with class attributes:

    Attributes:
        prog: the command name shown in usage and error lines (``"hamburger seg"``).
        checkpoint_class: the checkpoint callback configured under ``--checkpoint.*``.
        checkpoint_defaults: defaults of the ``--checkpoint.*`` (``ModelCheckpoint``) options.
        curves_defaults: defaults of the ``--curves.*`` (:class:`TrainingCurves`) options.
        progress_defaults: defaults of the ``--progress.*`` (:class:`~.progress.ProgressLog`) options.
        summary_metric: the validation metric reported at the end of ``fit`` (default: the checkpoint's
            ``monitor``, else the first one the progress callback recorded).
        summary_mode: ``"max"`` if a higher :attr:`summary_metric` is better, ``"min"`` if lower.
        fixed_by_checkpoint: model hyper-parameters that define the checkpoint's architecture; an explicit
            different value with ``--ckpt_path`` is refused.
        fixed_on_resume: model hyper-parameters that ``fit --ckpt_path`` restores from the optimiser and
            scheduler state (so an explicit new value could not apply); a different value is refused.

    After a run, ``fit_seconds`` holds the wall time of ``trainer.fit`` (set up excluded) and ``summary`` what
    :meth:`fit_summary` returned.
    """

    prog: ClassVar[str] = "hamburger"
    checkpoint_class: ClassVar[type[ModelCheckpoint]] = RunCheckpoint
    checkpoint_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {
            "filename": "step{step:07d}",
            "every_n_train_steps": 500,
            "save_top_k": 1,
            "save_last": True,
            "auto_insert_metric_name": False,
        }
    )
    curves_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    progress_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    summary_metric: ClassVar[str | None] = None
    summary_mode: ClassVar[Literal["max", "min"]] = "max"
    fixed_by_checkpoint: ClassVar[tuple[str, ...]] = ()
    fixed_on_resume: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        model_class: Any = None,
        datamodule_class: Any = None,
        *,
        args: Any = None,
        run: bool = True,
        parser_kwargs: dict[str, Any] | None = None,
        save_config_kwargs: dict[str, Any] | None = None,
        auto_configure_optimizers: bool = False,
        **kwargs: Any,
    ) -> None:
        self.explicit = Namespace()  #: options given on the command line or in --config files
        self.checkpoint_path: str | None = None  #: the checkpoint whose hyper-parameters were read
        self.checkpoint_hparams: dict[str, Any] | None = None
        self.fit_seconds: float | None = None
        self.summary: dict[str, Any] | None = None
        super().__init__(
            model_class,
            datamodule_class,
            args=args,
            run=run,
            parser_kwargs={"prog": self.prog, **(parser_kwargs or {})},
            save_config_kwargs={"overwrite": True, **(save_config_kwargs or {})},
            auto_configure_optimizers=auto_configure_optimizers,
            **kwargs,
        )

    # ------------------------------------------------------------------ parser
    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        kwargs.setdefault("exit_on_error", False)  # errors raise; run_cli prints them on one line
        kwargs.setdefault("allow_abbrev", False)  # --data.crop must not silently mean --data.crop_size
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(self.checkpoint_class, "checkpoint")
        parser.set_defaults({f"checkpoint.{k}": v for k, v in self.checkpoint_defaults.items()})
        parser.add_lightning_class_args(TrainingCurves, "curves")
        if self.curves_defaults:
            parser.set_defaults({f"curves.{k}": v for k, v in self.curves_defaults.items()})
        parser.add_lightning_class_args(ProgressLog, "progress")
        if self.progress_defaults:
            parser.set_defaults({f"progress.{k}": v for k, v in self.progress_defaults.items()})
        parser.add_argument(
            "--results_json",
            type=str | None,
            default=None,
            help="validate/test: where to write the scores (default <root>/<command>_results_<checkpoint>.json)",
        )
        parser.add_argument(
            "--allow_no_checkpoint",
            type=bool,
            default=False,
            help="validate/test: score the model as built (no --ckpt_path), e.g. weights loaded by its factory",
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        if isinstance(args, (list, tuple)):
            args = _resolve_config_names(args)  # --config fashion_scenes: the packaged config of that name
            for path in _config_files(args):
                _check_config_file(path)
        super().parse_arguments(parser, args)
        if isinstance(args, (dict, Namespace)):
            given = parser.parse_object(args, defaults=False)
        else:
            given = parser.parse_args(args, defaults=False)
        command = self.config.get("subcommand")
        self.explicit = (given.get(command) if command else given) or Namespace()
        ckpt_path = self._section(self.config, command).get("ckpt_path")
        if ckpt_path and not self._resolved_by_lightning(ckpt_path):
            # read (and vet) the checkpoint before LightningCLI parses its hyper-parameters into the config
            self._read_checkpoint_hparams(ckpt_path)

    # ------------------------------------------------------------------ checkpoint hyper-parameters
    @staticmethod
    def _resolved_by_lightning(ckpt_path: str) -> bool:
        return ckpt_path in SPECIAL_CKPT_PATHS or ckpt_path.startswith("registry") or "://" in ckpt_path

    def _read_checkpoint_hparams(self, path: str) -> None:
        ckpt = read_checkpoint(path)
        hparams = check_plain_hparams(ckpt.get("hyper_parameters") or {}, source=path)
        self.checkpoint_path, self.checkpoint_hparams = path, hparams
        self.check_checkpoint(hparams, path=path)

    def check_checkpoint(self, hparams: dict[str, Any], *, path: str) -> None:
        """Recipe hook: raise ``ValueError`` for a checkpoint whose (plain) hyper-parameters must not be used.

        Called before LightningCLI merges them into the config; :attr:`explicit` holds what the user gave.
        """

    def configure_from_checkpoint(self, model_config: Namespace, hparams: dict[str, Any]) -> None:
        """Recipe hook: adjust the final model config when the weights come from a checkpoint (e.g. do not
        download pretrained backbone weights that the checkpoint overwrites anyway)."""

    def _apply_checkpoint(self, cfg: Namespace, command: str | None) -> None:
        """Put explicit model options back over the checkpoint's; refuse those that cannot change."""
        hparams = self.checkpoint_hparams or {}
        fixed = set(self.fixed_by_checkpoint)
        if command == "fit":
            fixed |= set(self.fixed_on_resume)
        explicit = self.explicit.get("model")
        explicit = explicit if isinstance(explicit, Namespace) else Namespace()
        for key in dict.fromkeys(k.split(".", 1)[0] for k in explicit.keys()):
            value = explicit.get(key)
            if key in hparams and key in fixed and canonical(value) != canonical(hparams[key]):
                if key in self.fixed_by_checkpoint:
                    why = "it defines the checkpoint's architecture"
                else:
                    why = "fit --ckpt_path restores it from the checkpoint's optimiser and scheduler state"
                raise ValueError(
                    f"model.{key}={_shown(value)} (command line or --config) differs from the checkpoint's "
                    f"{_shown(hparams[key])} ({self.checkpoint_path}), and {why}: leave the option out or give "
                    "the checkpoint's value"
                )
            cfg.model[key] = value
        self.configure_from_checkpoint(cfg.model, hparams)

    # ------------------------------------------------------------------ instantiation
    @staticmethod
    def _section(config: Namespace, command: str | None) -> Namespace:
        return config[command] if command else config

    def before_instantiate_classes(self) -> None:
        command = self.subcommand
        cfg = self._section(self.config, command)
        root = cfg.trainer.default_root_dir or os.getcwd()
        if cfg.get("checkpoint") is not None and cfg.checkpoint.dirpath is None:
            cfg.checkpoint.dirpath = os.path.join(root, "checkpoints")
        ckpt_path = cfg.get("ckpt_path")
        if command in ("validate", "test") and not cfg.get("allow_no_checkpoint"):
            dirpath = cfg.checkpoint.dirpath if cfg.get("checkpoint") is not None else None
            require_checkpoint(command, ckpt_path, dirpath=dirpath)
        if self.checkpoint_hparams is None and command == "fit" and ckpt_path == "last" and cfg.get("checkpoint"):
            last = os.path.join(cfg.checkpoint.dirpath, "last.ckpt")
            if os.path.isfile(last):  # the file Lightning resumes from: treat it as if its path had been given
                self._read_checkpoint_hparams(last)
                # what LightningCLI does for a checkpoint file: its hyper-parameters under the config
                self.config = self.parser.parse_object({command: {"model": self.checkpoint_hparams}}, self.config)
                cfg = self._section(self.config, command)
        if self.checkpoint_hparams is not None:
            self._apply_checkpoint(cfg, command)
        if command in ("validate", "test"):
            self._check_writable(self.results_path(command))

    def after_instantiate_classes(self) -> None:
        hparams = self.checkpoint_hparams
        if hparams is None or self.model is None:
            return
        built = getattr(self.model, "hparams", {})
        for key in self.fixed_by_checkpoint:
            if key in hparams and key in built and canonical(built[key]) != canonical(hparams[key]):
                raise ValueError(
                    f"model.{key}={_shown(built[key])} (from the config or the data) does not match the "
                    f"checkpoint's {_shown(hparams[key])} ({self.checkpoint_path})"
                )

    def default_loggers(self, root: str) -> list:
        """CSV logs in ``<root>/logs``, plus TensorBoard in ``<root>/tb`` when it is installed."""
        from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

        loggers: list = [CSVLogger(root, name="logs")]
        if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
            loggers.append(TensorBoardLogger(root, name="tb"))
        return loggers

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        from lightning.pytorch.plugins.io import CheckpointIO

        trainer_cfg = self._section(self.config_init, self.subcommand).get("trainer") or {}
        root = trainer_cfg.get("default_root_dir") or os.getcwd()
        if "logger" not in kwargs and trainer_cfg.get("logger") in (None, True):
            kwargs["logger"] = self.default_loggers(root)
        plugins = kwargs.get("plugins", trainer_cfg.get("plugins")) or []
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())
        kwargs["plugins"] = plugins
        if trainer_cfg.get("enable_progress_bar") is not False and "callbacks" not in kwargs:
            # our step bar instead of Lightning's per-epoch one, unless the config names a progress bar
            from lightning.pytorch.callbacks import ProgressBar

            callbacks = trainer_cfg.get("callbacks")
            callbacks = [] if callbacks is None else list(callbacks) if isinstance(callbacks, list) else [callbacks]
            defaults = self.trainer_defaults.get("callbacks") or []
            defaults = defaults if isinstance(defaults, list) else [defaults]
            if not any(isinstance(c, ProgressBar) for c in [*callbacks, *defaults]):
                kwargs["callbacks"] = [*callbacks, StepProgressBar()]
        return super().instantiate_trainer(**kwargs)

    # ------------------------------------------------------------------ run hooks
    def before_fit(self) -> None:
        self._fit_start = time.perf_counter()

    def after_fit(self) -> None:
        self.fit_seconds = time.perf_counter() - self._fit_start
        if not self.trainer.is_global_zero:
            return
        self.summary = self.fit_summary()
        path = self.fit_results_path()
        try:
            atomic_write_text(path, json.dumps(json_safe(self.summary), indent=2) + "\n")
        except OSError as err:  # the run itself is done and saved: say so, do not fail it
            log.warning("could not write the fit summary %s: %s", path, err)
        else:
            self.summary["summary_json"] = path
        print(self.format_fit_summary(self.summary))

    def after_validate(self) -> None:
        self.report("validate")

    def after_test(self) -> None:
        self.report("test")

    # ------------------------------------------------------------------ fit summary
    def fit_results_path(self) -> str:
        """``<root>/fit_results.json``: the summary of the last ``fit`` in ``<root>``."""
        cfg = self._section(self.config, self.subcommand)
        return os.path.join(cfg.trainer.default_root_dir or os.getcwd(), "fit_results.json")

    def fit_summary(self) -> dict[str, Any]:
        """What the finished fit produced (recipes extend it): see :func:`~.progress.fit_summary`."""
        return fit_summary(self.trainer, metric=self.summary_metric, mode=self.summary_mode, seconds=self.fit_seconds)

    def format_metric(self, name: str, value: float) -> str:
        """How :meth:`format_fit_summary` shows a value of the summary metric (recipes override)."""
        return f"{value:.4g}"

    def format_fit_summary(self, summary: dict[str, Any]) -> str:
        """The lines printed at the end of ``fit`` (recipes append theirs)."""
        total = summary.get("max_steps")
        wall = summary.get("wall_seconds")
        head = f"fit finished: {summary['steps']}{f'/{total}' if total else ''} steps"
        lines = [head + (f" in {format_duration(wall)}" if wall is not None else "")]
        metric = summary.get("metric")
        final, best = summary.get("final"), summary.get("best")
        if metric and final and best:
            shown_final = self.format_metric(metric, final["value"])
            shown_best = self.format_metric(metric, best["value"])
            lines.append(
                f"  {metric}: final {shown_final} (step {final['step']}), "
                f"best {shown_best} (step {best['step']}, {summary['mode']})"
            )
        elif metric:
            lines.append(f"  {metric}: no validation ran")
        if summary.get("last_checkpoint"):
            lines.append(f"  last checkpoint: {summary['last_checkpoint']}")
        if summary.get("best_checkpoint"):
            lines.append(f"  best checkpoint: {summary['best_checkpoint']}")
        elif summary.get("checkpoint_dir"):
            lines.append(f"  checkpoints: {summary['checkpoint_dir']}")
        for key, label in (("curves", "curves"), ("logs", "logs"), ("summary_json", "summary")):
            if summary.get(key):
                lines.append(f"  {label}: {summary[key]}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ results
    def results_path(self, command: str) -> str:
        """``--results_json``, or ``<root>/<command>_results_<checkpoint stem>.json`` (``<command>_results.json``
        without a checkpoint), so that evaluating several checkpoints keeps one file each."""
        cfg = self._section(self.config, self.subcommand)
        if cfg.get("results_json"):
            return cfg.results_json
        root = cfg.trainer.default_root_dir or os.getcwd()
        ckpt_path = cfg.get("ckpt_path")
        if not ckpt_path:
            return os.path.join(root, f"{command}_results.json")
        stem = os.path.splitext(os.path.basename(os.fspath(ckpt_path).rstrip("/")))[0]
        stem = re.sub(r"[^\w.=-]+", "_", stem) or "checkpoint"
        return os.path.join(root, f"{command}_results_{stem}.json")

    @staticmethod
    def _check_writable(path: str) -> None:
        """Fail before the run, not after it, when the results file cannot be written."""
        if os.path.isdir(path):
            raise IsADirectoryError(f"--results_json {path} is a folder, expected a file name")
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise OSError(f"--results_json {path}: cannot create its folder ({err.strerror or err})") from err
        if not os.access(folder, os.W_OK):
            raise PermissionError(f"--results_json {path}: folder {folder} is not writable")

    def results(self, command: str) -> dict[str, Any] | None:
        """What ``validate`` / ``test`` write to JSON (recipes override); default: the logged metrics."""
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if torch.as_tensor(v).numel() == 1}
        cfg = self._section(self.config, self.subcommand)
        return {"command": command, "ckpt_path": cfg.get("ckpt_path"), **metrics}

    def format_results(self, results: dict[str, Any], command: str) -> str | None:
        """A table of ``results`` to print (recipes override); ``None`` prints nothing but the file name."""
        return None

    def report(self, command: str) -> None:
        """Write :meth:`results` to :meth:`results_path` (atomically) and print :meth:`format_results`."""
        if not self.trainer.is_global_zero:
            return
        results = self.results(command)
        if results is None:
            return
        path = self.results_path(command)
        atomic_write_text(path, json.dumps(json_safe(results), indent=2) + "\n")
        table = self.format_results(results, command)
        if table:
            print(table)
        print(f"scores written to {path}")


def _exit_code(stop: SystemExit) -> int:
    if stop.code is None:
        return 0
    return stop.code if isinstance(stop.code, int) else 2


CLI = TypeVar("CLI", bound="HamburgerCLI")


def build(cli_class: type[CLI], argv: Sequence[str], **kwargs: Any) -> CLI:
    """Instantiate (and by default run) ``cli_class`` for ``argv`` (``[command, options...]``); errors raise."""
    with warnings.catch_warnings(), quiet_libraries():
        # args are given on purpose even when sys.argv holds the outer command
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        return cli_class(args=list(argv), **kwargs)


def run_cli(cli_class: type[HamburgerCLI], argv: Sequence[str], **kwargs: Any) -> int:
    """Run ``cli_class`` on ``argv``; return the exit code (0, or 2 after a one-line error on stderr).

    Exceptions in :data:`USER_ERRORS` raised while parsing, instantiating or running become
    ``<prog> <command>: error: <message>``; other exceptions propagate with their traceback.
    """
    argv = list(argv)
    command = argv[0] if argv and not argv[0].startswith("-") else ""
    prog = f"{cli_class.prog} {command}".strip()
    try:
        build(cli_class, argv, **kwargs)
    except SystemExit as stop:  # --help, --print_config
        return _exit_code(stop)
    except USER_ERRORS as err:
        log.debug("%s failed", prog, exc_info=True)
        print(error_line(prog, err), file=sys.stderr)
        return 2
    return 0
