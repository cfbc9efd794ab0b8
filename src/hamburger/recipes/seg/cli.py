"""``hamburger seg``: train, evaluate, predict and compare segmentation models.

    hamburger seg fit --config configs/seg/fashion_scenes.yaml [--trainer.max_steps=500 ...]
    hamburger seg fit --config FILE --ckpt_path last          # resume from the newest checkpoint
    hamburger seg validate --config FILE --ckpt_path CKPT [--model.eval_mode=multiscale]
    hamburger seg predict --ckpt_path CKPT --input PATH --output DIR
    hamburger seg compare --config configs/seg/fashion_scenes.yaml [--baseline tiny_attention tiny_fcn]

``fit`` / ``validate`` / ``test`` are a LightningCLI (jsonargparse): every constructor argument of
:class:`SegModule` (``--model.*``), :class:`SegDataModule` (``--data.*``), the Lightning ``Trainer``
(``--trainer.*``), the checkpoint callback (``--checkpoint.*``) and the curve plot (``--curves.*``) can be
set in the YAML file or on the command line; an unknown key is an error that names it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import warnings
from typing import Any

__all__ = ["build_cli", "main"]

log = logging.getLogger(__name__)

LIGHTNING_COMMANDS = ("fit", "validate", "test")
USAGE = """usage: hamburger seg {fit,validate,test,predict,compare} [options]

  fit        train (hamburger seg fit --config configs/seg/fashion_scenes.yaml)
  validate   evaluate a checkpoint (--config FILE --ckpt_path CKPT); prints a table, writes JSON
  test       same as validate on the data module's test loader
  predict    write palette masks and overlays for an image or folder (--ckpt_path --input --output)
  compare    train the Hamburger model and baselines (attention, FCN) the same way; print their mIoUs

Run 'hamburger seg COMMAND --help' for the options of a command."""


def _seg_cli_class():
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

    from ...training.checkpoint import AtomicCheckpointIO, RunCheckpoint, require_checkpoint
    from ...training.curves import TrainingCurves

    class SegCLI(LightningCLI):
        """LightningCLI with atomic checkpoints, CSV (+ TensorBoard) logs and the training-curve plot."""

        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
            parser.set_defaults(
                {
                    "checkpoint.filename": "step{step:07d}",
                    "checkpoint.every_n_train_steps": 500,
                    "checkpoint.save_top_k": 1,
                    "checkpoint.save_last": True,
                    "checkpoint.auto_insert_metric_name": False,
                }
            )
            parser.add_lightning_class_args(TrainingCurves, "curves")
            parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
            parser.add_argument(
                "--results_json",
                type=str | None,
                default=None,
                help="validate/test: where to write the scores (default <root>/<cmd>_results.json)",
            )
            parser.add_argument(
                "--allow_no_checkpoint",
                type=bool,
                default=False,
                help="validate/test: score the model as built (no --ckpt_path), e.g. weights loaded by its factory",
            )

        def before_instantiate_classes(self) -> None:
            cfg = self.config[self.subcommand] if self.subcommand else self.config
            root = cfg.trainer.default_root_dir or os.getcwd()
            if cfg.checkpoint.dirpath is None:
                cfg.checkpoint.dirpath = os.path.join(root, "checkpoints")
            if self.subcommand in ("validate", "test") and not cfg.allow_no_checkpoint:
                require_checkpoint(self.subcommand, cfg.get("ckpt_path"), dirpath=cfg.checkpoint.dirpath)

        def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> Any:
            from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
            from lightning.pytorch.plugins.io import CheckpointIO

            root = config.get("default_root_dir") or os.getcwd()
            if config.get("logger") in (None, True):
                loggers: list = [CSVLogger(root, name="logs")]
                if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
                    loggers.append(TensorBoardLogger(root, name="tb"))
                config["logger"] = loggers
            plugins = config.get("plugins") or []
            plugins = plugins if isinstance(plugins, list) else [plugins]
            if not any(isinstance(p, CheckpointIO) for p in plugins):
                plugins.append(AtomicCheckpointIO())
            config["plugins"] = plugins
            return super()._instantiate_trainer(config, callbacks)

    return SegCLI


def build_cli(argv: list[str], *, run: bool = True):
    """Instantiate (and by default run) the LightningCLI for ``argv`` (``[command, options...]``)."""
    cli_class = _seg_cli_class()
    with warnings.catch_warnings():  # args are given on purpose even when sys.argv holds the outer command
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        return _make(cli_class, argv, run)


def _make(cli_class, argv: list[str], run: bool):
    from .datamodule import SegDataModule
    from .module import SegModule

    return cli_class(
        SegModule,
        SegDataModule,
        args=argv,
        run=run,
        subclass_mode_model=False,
        subclass_mode_data=False,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"log_every_n_steps": 10},
        auto_configure_optimizers=False,
    )


def _report(cli, command: str) -> None:
    from .metrics import format_table, write_json

    scores = getattr(cli.model, "last_scores", None)
    if scores is None or not cli.trainer.is_global_zero:
        return
    cfg = cli.config[command]
    root = cfg.trainer.default_root_dir or os.getcwd()
    path = cfg.get("results_json") or os.path.join(root, f"{command}_results.json")
    hp = cli.model.hparams
    write_json({"model": hp.model, "eval_mode": hp.eval_mode, "ckpt_path": cfg.get("ckpt_path"), **scores}, path)
    print(format_table(scores, title=f"{hp.model} ({hp.eval_mode})"))
    print(f"scores written to {path}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "predict":
        from .predict import main as predict_main

        return predict_main(rest)
    if command == "compare":
        from .compare import main as compare_main

        return compare_main(rest)
    if command not in LIGHTNING_COMMANDS:
        print(f"hamburger seg: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    try:
        cli = build_cli([command, *rest])
    except SystemExit as stop:  # argument errors (jsonargparse prints the offending key), --help, SIGTERM (143)
        return int(stop.code or 0) if isinstance(stop.code, int | None) else 2
    except (ValueError, TypeError, FileNotFoundError) as err:  # user errors: one line, no traceback
        print(f"hamburger seg {command}: {err}", file=sys.stderr)
        return 2
    if command in ("validate", "test"):
        _report(cli, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
