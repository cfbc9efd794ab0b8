"""Callbacks of the GAN recipe: fixed-noise sample grids of the EMA generator (and the loss curves with them)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl

from ...training.curves import TrainingCurves, plot_curves
from ...utils import check_int, check_positive_int
from .grid import sample_grid, write_png

__all__ = ["SampleGrid"]

log = logging.getLogger(__name__)


class SampleGrid(pl.Callback):
    """Every ``every_n_steps`` generator steps (and at the end of training) write a grid of the EMA generator:
    one row per class of ``classes``, ``columns`` fixed noise vectors (the same in every row and at every step),
    to ``<root>/<dirname>/step<step>.png``. The loss-curve PNG (``--curves.*``) is redrawn at the same time.

    Args:
        every_n_steps: interval in generator steps (0: only at the end).
        columns: samples per class.
        classes: class ids of the rows (default: the first ``max_rows`` classes).
        max_rows: rows when ``classes`` is not given.
        seed: seed of the fixed noise.
        dirname: folder under ``trainer.default_root_dir``.
    """

    def __init__(
        self,
        every_n_steps: int = 500,
        *,
        columns: int = 8,
        classes: Sequence[int] | None = None,
        max_rows: int = 10,
        seed: int = 0,
        dirname: str = "samples",
    ) -> None:
        self.every_n_steps = check_int("samples.every_n_steps", every_n_steps, 0)
        self.columns = check_positive_int("samples.columns", columns)
        self.classes = None if classes is None else [check_int("samples.classes", c, 0) for c in classes]
        self.max_rows = check_positive_int("samples.max_rows", max_rows)
        self.seed = check_int("samples.seed", seed)
        if not isinstance(dirname, str) or not dirname or os.path.isabs(dirname):
            raise ValueError(f"samples.dirname must be a folder name under the run folder, got {dirname!r}")
        self.dirname = dirname
        self.last_path: str | None = None
        self._written_step = -1

    def folder(self, trainer: pl.Trainer) -> str:
        return os.path.join(trainer.default_root_dir, self.dirname)

    def rows(self, num_classes: int) -> list[int]:
        return list(self.classes) if self.classes is not None else list(range(min(num_classes, self.max_rows)))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0:
            self.write(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write(trainer, pl_module)

    def write(self, trainer: pl.Trainer, pl_module: Any) -> str | None:
        """Write the grid of the current step (rank 0 only); returns its path."""
        step = trainer.global_step
        if not trainer.is_global_zero or step == self._written_step:
            return self.last_path
        grid = sample_grid(
            pl_module.generate, classes=self.rows(pl_module.num_classes), columns=self.columns,
            z_dim=pl_module.z_dim, num_classes=pl_module.num_classes, seed=self.seed, device=pl_module.device,
        )  # fmt: skip
        path = os.path.join(self.folder(trainer), f"step{step:07d}.png")
        write_png(grid, path)
        self.last_path, self._written_step = path, step
        curves = next((c for c in trainer.callbacks if isinstance(c, TrainingCurves)), None)  # type: ignore[attr-defined]
        if curves is not None:
            try:
                plot_curves(curves.train, curves.val, curves.path(trainer), title=os.path.basename(
                    trainer.default_root_dir), train_label=curves.train_label, val_label=curves.val_label,
                    val_scale=curves.val_scale)  # fmt: skip
            except ImportError:
                log.warning("matplotlib is not installed; no training-curve plot written")
        return path
