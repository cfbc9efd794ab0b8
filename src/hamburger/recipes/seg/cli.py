"""``hamburger seg``: train, evaluate, predict and compare segmentation models.

    hamburger seg fit --config fashion_scenes [--trainer.max_steps=500 ...]
    hamburger seg fit --config FILE --ckpt_path last          # resume from the newest checkpoint
    hamburger seg validate --config FILE --ckpt_path CKPT [--model.eval_mode=multiscale --model.eval_flip=true]
    hamburger seg predict --ckpt_path CKPT --input PATH --output DIR
    hamburger seg compare --config fashion_scenes [--baseline tiny_attention tiny_fcn]

``fit`` / ``validate`` / ``test`` are a LightningCLI (:class:`~hamburger.training.cli.HamburgerCLI`): every
constructor argument of :class:`SegModule` (``--model.*``), :class:`SegDataModule` (``--data.*``), the Lightning
``Trainer`` (``--trainer.*``), the checkpoint callback (``--checkpoint.*``) and the curve plot (``--curves.*``)
can be set in the YAML file or on the command line; an unknown key is an error that names it. With
``--ckpt_path`` the checkpoint's model options are used unless given explicitly (command line or ``--config``);
the model architecture (``model``, ``model_kwargs``, ``num_classes``) cannot differ from the checkpoint's.
"""

from __future__ import annotations

import sys
from types import MappingProxyType
from typing import Any, ClassVar

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser

from ...training.cli import HamburgerCLI, build, error_line, run_cli
from . import compare, predict
from .datamodule import SegDataModule
from .metrics import format_table
from .module import SegModule, checkpoint_hparams

__all__ = ["SegCLI", "build_cli", "main"]

LIGHTNING_COMMANDS = ("fit", "validate", "test")
USAGE = """usage: hamburger seg {fit,validate,test,predict,compare} [options]

  fit        train (hamburger seg fit --config fashion_scenes)
  validate   evaluate a checkpoint (--config FILE --ckpt_path CKPT); prints a table, writes JSON
  test       same as validate on the data module's test split (--data.test_split)
  predict    write palette masks and overlays for an image or folder
             (--ckpt_path CKPT or --model_dir DIR, --input PATH --output DIR)
  compare    train the Hamburger model and baselines (attention, FCN) the same way; print their mIoUs

Run 'hamburger seg COMMAND --help' for the options of a command."""


class SegCLI(HamburgerCLI):
    """The segmentation LightningCLI: :class:`SegModule` + :class:`SegDataModule`, ``num_classes`` linked from
    the data, checkpoint model import paths refused unless typed, a score table after validate / test, and the
    final / best validation mIoU with the last validation's per-class table at the end of fit."""

    prog = "hamburger seg"
    summary_metric = "val/mIoU"
    summary_mode = "max"
    progress_defaults = MappingProxyType({"val_metrics": ["val/mIoU"]})
    #: print the per-class table at the end of fit up to this many classes (else only its file, e.g. ADE20K)
    summary_table_max_classes: ClassVar[int] = 30
    fixed_by_checkpoint = ("model", "model_kwargs", "num_classes")
    fixed_on_resume = (
        "optimizer", "lr", "momentum", "betas", "weight_decay", "head_lr_mult",
        "poly_power", "warmup_steps", "warmup_ratio", "min_lr",
    )  # fmt: skip

    def __init__(self, model_class: Any = SegModule, datamodule_class: Any = SegDataModule, **kwargs: Any) -> None:
        kwargs.setdefault("trainer_defaults", {"log_every_n_steps": 10})
        super().__init__(model_class, datamodule_class, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")

    def check_checkpoint(self, hparams: dict[str, Any], *, path: str) -> None:
        checkpoint_hparams(hparams, source=path, model=self.explicit.get("model.model"))

    def configure_from_checkpoint(self, model_config: Namespace, hparams: dict[str, Any]) -> None:
        model_config.pretrained = False  # the checkpoint holds the weights: nothing to download first

    def results(self, command: str) -> dict[str, Any] | None:
        scores = getattr(self.model, "last_scores", None)
        if scores is None:
            return None
        hp = self.model.hparams
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        evaluation = {k: hp.get(k) for k in ("eval_mode", "eval_scales", "eval_flip", "eval_crop_size", "eval_stride")}
        return {"model": hp.model, **evaluation, "ckpt_path": cfg.get("ckpt_path"), **scores}

    def format_results(self, results: dict[str, Any], command: str) -> str | None:
        return format_table(results, title=f"{results['model']} ({results['eval_mode']})")

    # ------------------------------------------------------------------ end of fit
    def fit_summary(self) -> dict[str, Any]:
        summary = super().fit_summary()
        scores = getattr(self.model, "last_scores", None)
        final = summary.get("final")
        if scores is not None and final is not None:  # the scores of the last validation of this fit
            summary["final_scores"] = {"step": final["step"], **{k: v for k, v in scores.items()
                                                                 if k != "confusion_matrix"}}  # fmt: skip
        return summary

    def format_metric(self, name: str, value: float) -> str:
        return f"{100 * value:.2f}%" if name == self.summary_metric else super().format_metric(name, value)

    def format_fit_summary(self, summary: dict[str, Any]) -> str:
        text = super().format_fit_summary(summary)
        scores = summary.get("final_scores")
        if not scores:
            return text
        if len(scores["per_class"]) > self.summary_table_max_classes:
            where = summary.get("summary_json") or "the fit summary"
            return f"{text}\n  per-class scores of step {scores['step']}: in {where} (final_scores)"
        table = format_table(scores, title=f"per-class validation scores at step {scores['step']}")
        return f"{text}\n{table}"


def build_cli(argv: list[str], *, run: bool = True) -> SegCLI:
    """Instantiate (and by default run) the seg CLI for ``argv`` (``[command, options...]``); errors raise."""
    return build(SegCLI, argv, run=run)


def main(argv: list[str] | None = None) -> int:
    """``hamburger seg COMMAND ...``; returns the exit code (user errors: one line on stderr, code 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "predict":
        return predict.main(rest)
    if command == "compare":
        try:
            return compare.main(rest, build_cli=build_cli)
        except SystemExit as stop:  # argparse's one-line usage errors
            return stop.code if isinstance(stop.code, int) else 2
    if command not in LIGHTNING_COMMANDS:
        choices = ", ".join([*LIGHTNING_COMMANDS, "predict", "compare"])
        message = f"unknown command {command!r}; choose from {choices} (hamburger seg --help)"
        print(error_line("hamburger seg", message), file=sys.stderr)
        return 2
    return run_cli(SegCLI, [command, *rest])


if __name__ == "__main__":
    raise SystemExit(main())
