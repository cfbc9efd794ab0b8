"""The training random stream: saved in checkpoints, restored on resume, untouched by evaluation.

Models draw from the global RNGs while training (the Hamburger's random NMF / VQ bases are drawn per forward
pass), so an exact resume needs the global RNG states as they were at the checkpoint, and anything that runs
between two training steps in one run but not in the other (validation, a skipped validation on resume) must
leave them as it found them. :class:`TrainingRNG` does both; ``SegModule`` adds it to every ``Trainer``
through ``configure_callbacks``.
"""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

__all__ = ["TrainingRNG", "capture_rng_state", "restore_rng_state"]


def capture_rng_state() -> dict[str, Any]:
    """The global torch (CPU and initialised CUDA devices), NumPy and ``random`` states.

    Only tensors, ints, strings, lists and ``None`` are used, so ``torch.load(weights_only=True)`` reads it back.
    """
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [
            str(kind),
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(gauss),
        ],  # fmt: skip
        "python": _listify(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the global RNGs from :func:`capture_rng_state`'s dict; missing entries are left alone."""
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(gauss)))
    if "python" in state:
        random.setstate(_tuplify(state["python"]))


def _listify(value: Any) -> Any:
    return [_listify(v) for v in value] if isinstance(value, tuple | list) else value


def _tuplify(value: Any) -> Any:
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value


class TrainingRNG(pl.Callback):
    """Keep the global RNG stream of training exact across checkpoints, resumes and evaluation.

    * Every checkpoint stores the training stream under ``checkpoint["rng_state"]``; a resumed ``fit`` restores
      it in ``on_train_start``.
    * Validation and test restore the states they started with when they end. A checkpoint written while an
      evaluation is running (SIGTERM in the middle of it) stores the stream as it was before the evaluation.
    """

    def __init__(self) -> None:
        self._resume: dict[str, Any] | None = None
        self._before_eval: dict[str, Any] | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._before_eval = None  # left over from an evaluation an exception ended

    def _eval_start(self) -> None:
        if self._before_eval is None:
            self._before_eval = capture_rng_state()

    def _eval_end(self) -> None:
        if self._before_eval is not None:
            restore_rng_state(self._before_eval)
            self._before_eval = None

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._eval_start()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._eval_end()

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._eval_start()

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._eval_end()

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint["rng_state"] = self._before_eval if self._before_eval is not None else capture_rng_state()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self._resume = checkpoint.get("rng_state")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._resume is not None:
            restore_rng_state(self._resume)
            self._resume = None
