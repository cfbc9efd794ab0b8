"""Training progress that fits real work: a step bar on a terminal, one line every N steps elsewhere.

Two callbacks, installed by :class:`~hamburger.training.cli.HamburgerCLI`:

* :class:`StepProgressBar` (a Lightning ``TQDMProgressBar``): on a terminal, one bar over the whole run,
  ``global_step / max_steps``, not a bar per epoch (a step-based config's "epochs" are only the length of the
  data). When stdout is not a terminal (a file, a pipe, a batch job) it draws nothing: tqdm redraws piped to a
  file are megabytes of carriage returns. Evaluation (``validate`` / ``test``) keeps Lightning's batch-count bar
  on a terminal.
* :class:`ProgressLog` (a plain callback, so it also works with ``Trainer(enable_progress_bar=False)``): when no
  bar is drawn, one line every ``every_n_steps`` optimiser steps::

      step 250/1000  loss 0.812  lr 8.1e-03  3.2 it/s  ETA 3m54s  val/mIoU 0.104 (step 500)

  and one line after each validation. It keeps the validation history of its metrics (saved in checkpoints,
  so a resumed run still knows its best score), which :func:`fit_summary` reads.

Like a progress bar, :class:`ProgressLog` writes to the terminal stream (``sys.stdout``) itself: it is a display,
not a log; everything else in the library logs through :mod:`logging`.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TextIO

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

from ..utils import check_choice, check_positive_int
from .curves import finite_scalar

__all__ = [
    "ProgressLog",
    "StepProgressBar",
    "best_point",
    "fit_summary",
    "format_duration",
    "is_terminal",
    "total_steps",
]

log = logging.getLogger(__name__)

Points = list[tuple[int, float]]


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default ``sys.stdout``) is an interactive terminal."""
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def format_duration(seconds: float) -> str:
    """``"45s"``, ``"3m54s"``, ``"2h05m"`` (``"?"`` for a non-finite value)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def total_steps(trainer: pl.Trainer) -> int | None:
    """The optimiser steps of the whole fit: ``max_steps``, else Lightning's estimate (``None`` if unknown)."""
    if trainer.max_steps is not None and trainer.max_steps > 0:
        return int(trainer.max_steps)
    try:
        estimate = trainer.estimated_stepping_batches
    except Exception:  # noqa: BLE001 - no estimate for an unsized loader: the line shows no total
        return None
    return int(estimate) if math.isfinite(estimate) else None


def _number(value: float) -> str:
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def best_point(points: Sequence[tuple[int, float]], mode: Literal["max", "min"] = "max") -> tuple[int, float] | None:
    """The ``(step, value)`` with the best value (the earliest of equal ones); ``None`` for no points."""
    if not points:
        return None
    if mode == "max":
        return max(points, key=lambda p: (p[1], -p[0]))
    return min(points, key=lambda p: (p[1], p[0]))


class StepProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar counting optimiser steps over the whole fit (``global_step / max_steps``).

    On a terminal the training bar is created once and never reset per epoch; its postfix shows the
    ``prog_bar`` metrics (without Lightning's ``v_num``). When stdout is not a terminal the bar disables itself
    (nothing is drawn; :class:`ProgressLog` prints lines instead).

    Args:
        refresh_rate: redraw every this many steps / batches.
    """

    def __init__(self, refresh_rate: int = 1) -> None:
        super().__init__(refresh_rate=check_positive_int("refresh_rate", refresh_rate))

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if not is_terminal():
            self.disable()

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics

    def init_train_tqdm(self) -> Tqdm:
        bar = super().init_train_tqdm()
        bar.set_description("step")
        return bar

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        bar = self.train_progress_bar
        bar.total = total_steps(trainer)
        bar.initial = bar.n = trainer.global_step  # a resumed run starts where it stopped
        bar.refresh()

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        pass  # one bar for the run: no reset to "Epoch N, 0/batches"

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        bar = self.train_progress_bar
        step = trainer.global_step
        if bar is None or bar.disable:
            return
        if step % self.refresh_rate == 0 or step == bar.total or trainer.should_stop:
            bar.n = step
            bar.set_postfix(self.get_metrics(trainer, pl_module))  # refreshes the bar

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass  # the bar lives across epochs; closed in on_train_end


class ProgressLog(pl.Callback):
    """One line every ``every_n_steps`` optimiser steps (and after each validation) when no bar is drawn.

    Each line: ``step S/T  loss L  lr R  X it/s  ETA 3m54s`` and the newest value of each of ``val_metrics`` with
    the step it was measured at. ``it/s`` is optimiser steps per second of training in this process (time spent
    in validation excluded); the ETA adds the expected time of the validations still to come.

    Args:
        every_n_steps: line interval in optimiser steps; ``None``: ``max(1, total_steps // 50)`` (about 50
            lines for a run, whatever its length). The last step always gets a line.
        mode: ``"auto"``: lines when stdout is not a terminal or no progress bar is shown
            (``--trainer.enable_progress_bar=false``); ``"always"``; ``"never"``.
        loss: key of the ``training_step`` output (a returned tensor is ``"loss"``), else of the logged metrics.
        val_metrics: logged validation metrics shown in the lines and kept in the history; ``None``: every
            logged metric whose name starts with ``val`` (e.g. ``val/mIoU``, ``val/aAcc``).
        stream: where the lines go (default: ``sys.stdout`` at the time of writing).
    """

    def __init__(
        self,
        every_n_steps: int | None = None,
        *,
        mode: Literal["auto", "always", "never"] = "auto",
        loss: str = "loss",
        val_metrics: Sequence[str] | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.every_n_steps = None if every_n_steps is None else check_positive_int("every_n_steps", every_n_steps)
        self.mode = check_choice("mode", mode, ("auto", "always", "never"))
        if not isinstance(loss, str) or not loss:
            raise TypeError(f"loss must be a metric name, got {loss!r}")
        self.loss = loss
        if isinstance(val_metrics, str):
            val_metrics = (val_metrics,)
        if val_metrics is not None and not all(isinstance(k, str) and k for k in val_metrics):
            raise TypeError(f"val_metrics must be a list of metric names, got {val_metrics!r}")
        self.val_metrics = None if val_metrics is None else tuple(val_metrics)
        self.stream = stream
        self.history: dict[str, Points] = {}  #: validation metric -> [(step, value)] over the whole run
        self.active = False
        self._reset_clock()

    def _reset_clock(self) -> None:
        self._t_start = self._t_val = 0.0
        self._val_seconds = 0.0
        self._val_count = 0
        self._start_step = 0
        self._last_line_step = -1

    # ------------------------------------------------------------------ state (survives a resume)
    def state_dict(self) -> dict[str, Any]:
        return {"history": {k: [list(p) for p in v] for k, v in self.history.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        history = state_dict.get("history") or {}
        self.history = {str(k): [(int(s), float(v)) for s, v in points] for k, points in history.items()}

    # ------------------------------------------------------------------ hooks
    def interval(self, trainer: pl.Trainer) -> int:
        """The line interval: :attr:`every_n_steps`, or ``max(1, total // 50)``."""
        if self.every_n_steps is not None:
            return self.every_n_steps
        total = total_steps(trainer)
        return max(1, total // 50) if total else 50

    def _shows_bar(self, trainer: pl.Trainer) -> bool:
        bar = trainer.progress_bar_callback
        return bar is not None and bool(getattr(bar, "is_enabled", True))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reset_clock()
        if self.mode == "never":
            self.active = False
        else:
            self.active = self.mode == "always" or not is_terminal() or not self._shows_bar(trainer)
        self.active = self.active and trainer.is_global_zero
        self._t_start = time.perf_counter()
        self._start_step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        if not self.active:
            return
        step, total = trainer.global_step, total_steps(trainer)
        if step == self._last_line_step:
            return  # gradient accumulation: several batches per optimiser step
        if step % self.interval(trainer) == 0 or (total is not None and step >= total):
            self._last_line_step = step
            self.write(self.line(trainer, outputs))

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t_val = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self._val_seconds += time.perf_counter() - self._t_val
        self._val_count += 1
        step, shown = trainer.global_step, []
        for key in self._val_keys(trainer):
            value = finite_scalar(trainer.callback_metrics.get(key))
            if value is not None:
                points = [p for p in self.history.get(key, []) if p[0] != step]
                self.history[key] = [*points, (step, value)]
                shown.append(f"{key} {_number(value)}")
        if self.active and shown:
            total = total_steps(trainer)
            self.write(f"validation at step {step}{f'/{total}' if total else ''}: {'  '.join(shown)}")

    def _val_keys(self, trainer: pl.Trainer) -> tuple[str, ...]:
        if self.val_metrics is not None:
            return self.val_metrics
        return tuple(sorted(k for k in trainer.callback_metrics if k.startswith("val")))

    # ------------------------------------------------------------------ the line
    def _loss(self, trainer: pl.Trainer, outputs: Any) -> float | None:
        out = outputs if isinstance(outputs, Mapping) else {"loss": outputs}
        if self.loss in out:
            return finite_scalar(out[self.loss])
        return finite_scalar(trainer.callback_metrics.get(self.loss))

    @staticmethod
    def _lr(trainer: pl.Trainer) -> float | None:
        try:
            return float(trainer.optimizers[0].param_groups[0]["lr"])
        except (IndexError, KeyError, TypeError, ValueError):
            return None

    def _validations_left(self, trainer: pl.Trainer, step: int, total: int) -> int:
        every = trainer.val_check_batch
        if trainer.check_val_every_n_epoch is not None or not isinstance(every, int) or every < 1:
            return 0  # epoch-based validation: not counted
        return total // every - step // every

    def line(self, trainer: pl.Trainer, outputs: Any = None) -> str:
        """The progress line for the current step."""
        step, total = trainer.global_step, total_steps(trainer)
        parts = [f"step {step}/{total}" if total else f"step {step}"]
        loss = self._loss(trainer, outputs)
        if loss is not None:
            parts.append(f"{self.loss} {_number(loss)}")
        lr = self._lr(trainer)
        if lr is not None:
            parts.append(f"lr {lr:.1e}")
        train_seconds = time.perf_counter() - self._t_start - self._val_seconds
        done = step - self._start_step
        if done > 0 and train_seconds > 0:
            rate = done / train_seconds
            parts.append(f"{rate:.3g} it/s")
            if total:
                eta = (total - step) / rate
                if self._val_count:
                    eta += self._validations_left(trainer, step, total) * self._val_seconds / self._val_count
                parts.append(f"ETA {format_duration(eta)}")
        for key in self.val_metrics if self.val_metrics is not None else sorted(self.history):
            if self.history.get(key):
                at, value = self.history[key][-1]
                parts.append(f"{key} {_number(value)} (step {at})")
        return "  ".join(parts)

    def write(self, text: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(text + "\n")
        stream.flush()


def fit_summary(
    trainer: pl.Trainer,
    *,
    metric: str | None = None,
    mode: Literal["max", "min"] = "max",
    seconds: float | None = None,
) -> dict[str, Any]:
    """What a finished fit produced: steps, wall time, the monitored metric's final and best values with their
    steps, and the paths of the checkpoints, curve plot and logs.

    Args:
        trainer: the trainer after ``fit``.
        metric: the validation metric to report (default: the checkpoint's ``monitor``, else the first one
            :class:`ProgressLog` recorded).
        mode: whether higher (``"max"``) or lower (``"min"``) values of ``metric`` are better (the checkpoint's
            ``mode`` when ``metric`` is its ``monitor``).
        seconds: wall time of ``trainer.fit``.
    """
    from .curves import TrainingCurves

    ckpt = trainer.checkpoint_callback
    monitor = getattr(ckpt, "monitor", None)
    if metric is None and monitor:
        metric = monitor
    if metric is not None and metric == monitor:
        mode = getattr(ckpt, "mode", mode)
    check_choice("mode", mode, ("max", "min"))
    callbacks: list = getattr(trainer, "callbacks", [])
    progress = next((c for c in callbacks if isinstance(c, ProgressLog)), None)
    history = progress.history if progress is not None else {}
    if metric is None and history:
        metric = next(iter(history))
    points = history.get(metric, []) if metric else []
    final = points[-1] if points else None
    best = best_point(points, mode)
    summary: dict[str, Any] = {
        "steps": int(trainer.global_step),
        "max_steps": total_steps(trainer),
        "wall_seconds": seconds,
        "metric": metric,
        "mode": mode,
        "final": None if final is None else {"step": final[0], "value": final[1]},
        "best": None if best is None else {"step": best[0], "value": best[1]},
        "validations": len(points),
        "history": [list(p) for p in points],
        "checkpoint_dir": getattr(ckpt, "dirpath", None),
        "last_checkpoint": getattr(ckpt, "last_model_path", None) or None,
        "best_checkpoint": (getattr(ckpt, "best_model_path", None) or None) if monitor else None,
        "curves": None,
        "logs": None,
    }
    curves = next((c for c in getattr(trainer, "callbacks", []) if isinstance(c, TrainingCurves)), None)
    if curves is not None and os.path.isfile(curves.path(trainer)):
        summary["curves"] = curves.path(trainer)
    logger = trainer.logger
    log_dir = getattr(logger, "log_dir", None) if logger is not None else None
    if log_dir and os.path.isfile(os.path.join(log_dir, "metrics.csv")):
        summary["logs"] = os.path.join(log_dir, "metrics.csv")
    return summary
