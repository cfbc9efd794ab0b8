"""Training-curve callback: training loss and validation mIoU against the step, drawn to a PNG.

The history lives in the callback's ``state_dict`` so it survives a resume; the PNG
(``training_curves.png``) is written next to the checkpoints after every validation and at the end of
training. matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import lightning.pytorch as pl

__all__ = ["TrainingCurves", "plot_curves"]

log = logging.getLogger(__name__)


def plot_curves(loss: list[tuple[int, float]], miou: list[tuple[int, float]], path: str, *, title: str = "") -> None:
    """Draw loss (left axis) and mIoU in % (right axis) over steps to ``path`` (atomic write)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if loss:
        steps, values = zip(*loss, strict=True)
        ax.plot(steps, values, color="tab:blue", lw=1, label="train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss", color="tab:blue")
    ax2 = ax.twinx()
    if miou:
        steps, values = zip(*miou, strict=True)
        ax2.plot(steps, [100 * v for v in values], "o-", color="tab:red", label="val mIoU")
    ax2.set_ylabel("validation mIoU (%)", color="tab:red")
    ax.set_title(title or "training curves")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.png"
    fig.savefig(tmp)
    os.replace(tmp, path)


class TrainingCurves(pl.Callback):
    """Record the training loss every ``every_n_steps`` and each validation mIoU; plot them to a PNG.

    Args:
        every_n_steps: loss sampling interval in optimiser steps.
        filename: PNG name, written in the checkpoint folder (or ``trainer.default_root_dir``).
    """

    def __init__(self, every_n_steps: int = 1, filename: str = "training_curves.png") -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.filename = filename
        self.loss: list[tuple[int, float]] = []
        self.miou: list[tuple[int, float]] = []

    def path(self, trainer: pl.Trainer) -> str:
        ckpt = trainer.checkpoint_callback
        folder = getattr(ckpt, "dirpath", None) or trainer.default_root_dir
        return os.path.join(folder, self.filename)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch, idx) -> None:
        step = trainer.global_step
        if step % self.every_n_steps == 0 and outputs is not None:
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            self.loss.append((step, float(loss.detach())))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        scores = getattr(pl_module, "last_scores", None)
        if scores is not None:
            self.miou = [p for p in self.miou if p[0] != trainer.global_step] + [(trainer.global_step, scores["mIoU"])]
            self._draw(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._draw(trainer)

    def _draw(self, trainer: pl.Trainer) -> None:
        if not trainer.is_global_zero:
            return
        try:
            plot_curves(self.loss, self.miou, self.path(trainer), title=os.path.basename(trainer.default_root_dir))
        except ImportError:
            log.warning("matplotlib is not installed; no training-curve plot written")

    def state_dict(self) -> dict[str, Any]:
        return {"loss": [list(p) for p in self.loss], "miou": [list(p) for p in self.miou]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.loss = [(int(s), float(v)) for s, v in state_dict.get("loss", [])]
        self.miou = [(int(s), float(v)) for s, v in state_dict.get("miou", [])]
