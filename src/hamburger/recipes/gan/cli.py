"""``hamburger gan``: train a class-conditional GAN, draw sample grids, score it.

    hamburger gan fit --config fashion_hamgan [--trainer.max_steps=3000 ...]
    hamburger gan fit --config FILE --ckpt_path last              # resume from the newest checkpoint
    hamburger gan sample --ckpt_path CKPT --output grid.png [--classes 0 3 7] [--num 8] [--seed 0]
    hamburger gan evaluate --ckpt_path CKPT [--num-samples 10000] [--features fmnist|inception|PATH]

``fit`` is a LightningCLI (:class:`~hamburger.training.cli.HamburgerCLI`): the options of :class:`GANModule`
(``--model.*``), :class:`GANDataModule` (``--data.*``), the Trainer, the checkpoint (``--checkpoint.*``), the loss
curves (``--curves.*``) and the sample grids (``--samples.*``); ``data.n_critic`` follows ``model.n_critic``.
"""

from __future__ import annotations

import logging
import sys
import warnings
from types import MappingProxyType
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser

from ...training.cli import HamburgerCLI, build, error_line, run_cli
from ...utils.cli import ArgumentParser
from .callbacks import SampleGrid
from .data import GANDataModule
from .module import GANModule, checkpoint_hparams

__all__ = ["GANCLI", "build_cli", "find_unused_parameters", "main"]

log = logging.getLogger(__name__)


def find_unused_parameters(strategy: Any) -> bool:
    """Make a DDP ``strategy`` (however it was chosen: ``ddp``, ``ddp_spawn``, ``auto`` on several devices, an
    object) wrap the module with ``find_unused_parameters=True``; returns whether it changed anything.

    Each discriminator step leaves the generator's parameters without gradient and each generator step the
    discriminator's (they are frozen), which plain DDP refuses ("parameters that were not used in producing the
    loss"). Other strategies are left alone. Call it on the Trainer's resolved strategy before ``fit`` (DDP wraps
    the module in its setup)."""
    from lightning.pytorch.strategies import DDPStrategy

    if not isinstance(strategy, DDPStrategy) or strategy._ddp_kwargs.get("find_unused_parameters"):
        return False
    strategy._ddp_kwargs["find_unused_parameters"] = True  # what Lightning's "ddp_find_unused_parameters_true" sets
    return True


#: Lightning warnings that do not apply to this recipe (silenced during fit)
GAN_QUIET_WARNINGS = (
    r"Found \d+ module\(s\) in eval mode at the start of training",
    r"Using ModelCheckpoint with manual optimization and every_n_train_steps",
)

USAGE = """usage: hamburger gan {fit,sample,evaluate} [options]

  fit        train (hamburger gan fit --config fashion_hamgan); resume with --ckpt_path last
  sample     write a grid of the EMA generator, one row per class (--ckpt_path CKPT --output grid.png)
  evaluate   FID / KID / IS of the EMA generator (--ckpt_path CKPT [--num-samples N] [--features NAME|PATH])

Run 'hamburger gan COMMAND --help' for the options of a command."""


class GANCLI(HamburgerCLI):
    """The GAN LightningCLI: :class:`GANModule` + :class:`GANDataModule`, sample grids under ``--samples.*``,
    loss curves of D and G, no validation loop (score checkpoints with ``hamburger gan evaluate``)."""

    prog = "hamburger gan"
    checkpoint_defaults = MappingProxyType({**HamburgerCLI.checkpoint_defaults, "save_top_k": -1})
    curves_defaults = MappingProxyType(
        {"train_metrics": ["loss_d", "loss_g"], "val_metrics": [], "train_label": "hinge loss", "every_n_steps": 10}
    )
    progress_defaults = MappingProxyType({"loss": "loss_d", "val_metrics": []})
    fixed_by_checkpoint = ("model", "model_kwargs")
    fixed_on_resume = ("lr_g", "lr_d", "betas", "n_critic")

    def __init__(self, model_class: Any = GANModule, datamodule_class: Any = GANDataModule, **kwargs: Any) -> None:
        kwargs.setdefault("trainer_defaults", {"log_every_n_steps": 10, "num_sanity_val_steps": 0})
        super().__init__(model_class, datamodule_class, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_lightning_class_args(SampleGrid, "samples")
        parser.link_arguments("model.n_critic", "data.n_critic", apply_on="instantiate")

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        trainer = super().instantiate_trainer(**kwargs)
        if find_unused_parameters(trainer.strategy):
            log.info("%s: find_unused_parameters=True (G and D steps each leave the other's parameters unused)",
                     type(trainer.strategy).__name__)  # fmt: skip
        return trainer

    def before_fit(self) -> None:
        super().before_fit()
        # inside build()'s warnings context (restored after it): the EMA generator is in eval mode on purpose,
        # and a step checkpoint holds the state after the step's updates, which is what resuming needs
        for pattern in GAN_QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)

    def check_checkpoint(self, hparams: dict[str, Any], *, path: str) -> None:
        checkpoint_hparams(hparams, source=path, model=self.explicit.get("model.model"))

    def fit_summary(self) -> dict[str, Any]:
        summary = super().fit_summary()
        grid = next((c for c in self.trainer.callbacks if isinstance(c, SampleGrid)), None)  # type: ignore[attr-defined]
        if grid is not None:
            summary["samples"] = grid.last_path
        return summary

    def format_fit_summary(self, summary: dict[str, Any]) -> str:
        text = super().format_fit_summary(summary)
        return f"{text}\n  samples: {summary['samples']}" if summary.get("samples") else text


def build_cli(argv: list[str], *, run: bool = True) -> GANCLI:
    """Instantiate (and by default run) the GAN LightningCLI for ``argv`` (``["fit", options...]``)."""
    return build(GANCLI, argv, run=run)


# ---------------------------------------------------------------------- sample / evaluate
def _sample_parser() -> ArgumentParser:
    p = ArgumentParser(prog="hamburger gan sample", description="Write a grid of a checkpoint's EMA generator: "
                       "one row per class, the same noise in every row.")  # fmt: skip
    p.add_argument("--ckpt_path", "--ckpt-path", required=True, help="a checkpoint of 'hamburger gan fit'")
    p.add_argument("--output", required=True, help="the PNG to write")
    p.add_argument("--classes", type=int, nargs="+", default=None, help="class ids of the rows (default: up to 10)")
    p.add_argument("--num", type=int, default=8, help="samples per class (columns)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise")
    p.add_argument("--model", default=None, help="the model import path a checkpoint names, if you trust it")
    p.add_argument("--device", default="cpu", help="torch device")
    return p


def _evaluate_parser() -> ArgumentParser:
    p = ArgumentParser(prog="hamburger gan evaluate", description="FID / KID / IS of a checkpoint's EMA generator "
                       "against its training images; writes a JSON.")  # fmt: skip
    p.add_argument("--ckpt_path", "--ckpt-path", required=True, help="a checkpoint of 'hamburger gan fit'")
    p.add_argument("--num-samples", "--num_samples", dest="num_samples", type=int, default=10000,
                   help="generated images scored")  # fmt: skip
    p.add_argument("--features", default="fmnist", help="feature network: fmnist, mobilenet_v2, inception or a path")
    p.add_argument("--output", default=None, help="the JSON (default: <checkpoint stem>_scores.json beside it)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and labels")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=250)
    p.add_argument("--num-real", "--num_real", dest="num_real", type=int, default=None,
                   help="use only the first N real images")  # fmt: skip
    p.add_argument("--data-root", "--data_root", dest="data_root", default=None,
                   help="the training data folder, if it moved")  # fmt: skip
    p.add_argument("--model", default=None, help="the model import path a checkpoint names, if you trust it")
    p.add_argument("--device", default="cpu", help="torch device")
    return p


def _run(command: str, rest: list[str]) -> int:
    from . import generate

    if command == "sample":
        args = _sample_parser().parse_args(rest)
        path = generate.sample(args.ckpt_path, output=args.output, classes=args.classes, num=args.num,
                               seed=args.seed, model=args.model, device=args.device)  # fmt: skip
        print(f"wrote {path}")
        return 0
    args = _evaluate_parser().parse_args(rest)
    scores = generate.evaluate(args.ckpt_path, num_samples=args.num_samples, features=args.features,
                               output=args.output, seed=args.seed, batch_size=args.batch_size,
                               data_root=args.data_root, num_real=args.num_real, model=args.model,
                               device=args.device)  # fmt: skip
    from .metrics import format_scores

    print(f"{format_scores(scores)} -> {scores['json']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``hamburger gan COMMAND ...``; returns the exit code (user errors: one line on stderr, code 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command in ("sample", "evaluate"):
        from ...training.cli import USER_ERRORS

        try:
            return _run(command, rest)
        except SystemExit as stop:  # argparse: --help, or a one-line usage error
            return stop.code if isinstance(stop.code, int) else 2
        except USER_ERRORS as err:
            print(error_line(f"hamburger gan {command}", err), file=sys.stderr)
            return 2
    if command != "fit":
        print(error_line("hamburger gan", f"unknown command {command!r}; choose from fit, sample, evaluate "
                         "(hamburger gan --help)"), file=sys.stderr)  # fmt: skip
        return 2
    return run_cli(GANCLI, [command, *rest])


if __name__ == "__main__":
    raise SystemExit(main())
