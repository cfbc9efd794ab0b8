"""Training-curve callback: training metrics and validation metrics against the step, drawn to a PNG.

The monitored values are configurable: ``train_metrics`` are keys of the ``training_step`` output (``"loss"``,
or e.g. ``"loss_g"`` / ``"loss_d"`` for a GAN returning a dict), looked up in the logged metrics when the output
does not hold them; ``val_metrics`` are logged validation metrics (``"val/mIoU"``, ``"val/fid"``), read after
each validation of ``fit``. Training values go on the left axis, validation values (times ``val_scale``) on the
right one. The defaults are the segmentation recipe's: training loss and validation mIoU in %.

The history lives in the callback's ``state_dict`` so it survives a resume; the PNG (``training_curves.png``)
is written next to the checkpoints after every validation and at the end of training. matplotlib is imported
only when a plot is drawn.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl

from ..utils import atomic_write, check_float, check_positive_int

__all__ = ["TrainingCurves", "plot_curves"]

log = logging.getLogger(__name__)

Points = list[tuple[int, float]]
_COLOURS = ("tab:blue", "tab:green", "tab:purple", "tab:brown")
_VAL_COLOURS = ("tab:red", "tab:orange", "tab:pink", "tab:olive")


def _series(values: Points | Mapping[str, Points], label: str) -> dict[str, Points]:
    return dict(values) if isinstance(values, Mapping) else {label: list(values)}


def plot_curves(
    train: Points | Mapping[str, Points],
    val: Points | Mapping[str, Points],
    path: str,
    *,
    title: str = "",
    train_label: str = "training loss",
    val_label: str = "validation mIoU (%)",
    val_scale: float = 100.0,
) -> None:
    """Draw training series (left axis) and validation series times ``val_scale`` (right axis) over steps.

    ``train`` / ``val`` are lists of ``(step, value)`` points or mappings ``name -> points`` (one line each).
    The PNG is written atomically to ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    train_series, val_series = _series(train, "train loss"), _series(val, "val")
    for (name, points), colour in zip(train_series.items(), itertools.cycle(_COLOURS)):
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, color=colour, lw=1, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(train_label, color=_COLOURS[0])
    ax2 = ax.twinx()
    for (name, points), colour in zip(val_series.items(), itertools.cycle(_VAL_COLOURS)):
        if points:
            steps, values = zip(*points, strict=True)
            ax2.plot(steps, [val_scale * v for v in values], "o-", color=colour, label=name)
    ax2.set_ylabel(val_label, color=_VAL_COLOURS[0])
    if len(train_series) > 1 or len(val_series) > 1:
        handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        if handles:
            ax.legend(handles=handles, loc="upper right", fontsize="small")
    ax.set_title(title or "training curves")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def finite_scalar(value: Any) -> float | None:
    """``value`` (a number or a 0-d tensor) as a finite float, else None."""
    try:
        number = float(value.detach() if hasattr(value, "detach") else value)
    except (TypeError, ValueError, RuntimeError):
        return None
    return number if math.isfinite(number) else None


class TrainingCurves(pl.Callback):
    """Record training metrics every ``every_n_steps`` steps and validation metrics after each validation; plot.

    Args:
        every_n_steps: training-metric sampling interval in optimiser steps.
        filename: PNG name, written in the checkpoint folder (or ``trainer.default_root_dir``).
        train_metrics: keys of the ``training_step`` output (a returned tensor is ``"loss"``), else of the
            logged metrics, drawn on the left axis.
        val_metrics: logged validation metrics, drawn on the right axis.
        train_label: left-axis label.
        val_label: right-axis label.
        val_scale: factor applied to validation values when drawn (100 for a fraction shown in %).
    """

    def __init__(
        self,
        every_n_steps: int = 1,
        filename: str = "training_curves.png",
        *,
        train_metrics: Sequence[str] = ("loss",),
        val_metrics: Sequence[str] = ("val/mIoU",),
        train_label: str = "training loss",
        val_label: str = "validation mIoU (%)",
        val_scale: float = 100.0,
    ) -> None:
        self.every_n_steps = check_positive_int("every_n_steps", every_n_steps)
        if not isinstance(filename, str) or not filename.lower().endswith(".png"):
            raise ValueError(f"filename must be a .png file name, got {filename!r}")
        self.filename = filename
        self.train_metrics = self._keys("train_metrics", train_metrics)
        self.val_metrics = self._keys("val_metrics", val_metrics)
        self.train_label, self.val_label = str(train_label), str(val_label)
        self.val_scale = check_float("val_scale", val_scale)
        self.train: dict[str, Points] = {k: [] for k in self.train_metrics}
        self.val: dict[str, Points] = {k: [] for k in self.val_metrics}

    @staticmethod
    def _keys(name: str, keys: Sequence[str]) -> tuple[str, ...]:
        if isinstance(keys, str):
            keys = (keys,)
        keys = tuple(keys)
        if not all(isinstance(k, str) and k for k in keys):
            raise TypeError(f"{name} must be a list of metric names, got {keys!r}")
        if len(set(keys)) != len(keys):
            raise ValueError(f"{name} has repeated names: {list(keys)}")
        return keys

    # the first monitored series, under the names of the seg-only callback this one replaces
    @property
    def loss(self) -> Points:
        """History of the first training metric."""
        return self.train[self.train_metrics[0]] if self.train_metrics else []

    @property
    def miou(self) -> Points:
        """History of the first validation metric."""
        return self.val[self.val_metrics[0]] if self.val_metrics else []

    def path(self, trainer: pl.Trainer) -> str:
        ckpt = trainer.checkpoint_callback
        folder = getattr(ckpt, "dirpath", None) or trainer.default_root_dir
        return os.path.join(folder, self.filename)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch, idx) -> None:
        step = trainer.global_step
        if step % self.every_n_steps or outputs is None:
            return
        out = outputs if isinstance(outputs, Mapping) else {"loss": outputs}
        for key in self.train_metrics:
            value = finite_scalar(out[key]) if key in out else finite_scalar(trainer.callback_metrics.get(key))
            if value is not None:
                self.train[key] = [p for p in self.train[key] if p[0] != step] + [(step, value)]

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        step, found = trainer.global_step, False
        for key in self.val_metrics:
            value = finite_scalar(trainer.callback_metrics.get(key))
            if value is not None:
                self.val[key] = [p for p in self.val[key] if p[0] != step] + [(step, value)]
                found = True
        if found:
            self._draw(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._draw(trainer)

    def _draw(self, trainer: pl.Trainer) -> None:
        if not trainer.is_global_zero:
            return
        try:
            plot_curves(
                self.train, self.val, self.path(trainer), title=os.path.basename(trainer.default_root_dir),
                train_label=self.train_label, val_label=self.val_label, val_scale=self.val_scale,
            )  # fmt: skip
        except ImportError:
            log.warning("matplotlib is not installed; no training-curve plot written")

    def state_dict(self) -> dict[str, Any]:
        return {
            "train": {k: [list(p) for p in v] for k, v in self.train.items()},
            "val": {k: [list(p) for p in v] for k, v in self.val.items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        train, val = dict(state_dict.get("train") or {}), dict(state_dict.get("val") or {})
        # checkpoints of the seg-only callback: {"loss": [...], "miou": [...]} for the default metrics
        if "loss" in state_dict and self.train_metrics:
            train.setdefault(self.train_metrics[0], state_dict["loss"])
        if "miou" in state_dict and self.val_metrics:
            val.setdefault(self.val_metrics[0], state_dict["miou"])
        self.train = {k: [(int(s), float(v)) for s, v in train.get(k, [])] for k in self.train_metrics}
        self.val = {k: [(int(s), float(v)) for s, v in val.get(k, [])] for k in self.val_metrics}
