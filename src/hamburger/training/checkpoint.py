"""Crash-safe checkpoint files for Lightning, and one training run per checkpoint folder.

:class:`AtomicCheckpointIO` writes every checkpoint to a temporary file in the same folder, flushes it to
disk and renames it over the target with ``os.replace`` (atomic on POSIX and Windows). A process killed at
any moment therefore leaves either the previous complete checkpoint or the new complete one, never a
truncated file; at worst a stray ``.*.tmp`` file remains, which is removed on the next save.
Checkpoints are read back with ``torch.load(weights_only=True)``.

:class:`RunCheckpoint` is the ``ModelCheckpoint`` of the training CLIs: one run per folder (a fresh ``fit``
into a folder with checkpoints is refused unless ``overwrite``), no ``-v1`` file names (``last.ckpt`` is
always the newest), stale step checkpoints pruned on resume, and on SIGTERM a resumable ``last.ckpt`` and
exit status 143.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import signal
import threading
import warnings
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ..utils import atomic_write

__all__ = ["AtomicCheckpointIO", "RunCheckpoint", "load_checkpoint", "require_checkpoint"]

log = logging.getLogger(__name__)

#: exit status of a run stopped by SIGTERM (the shell convention 128 + signal number)
SIGTERM_EXIT_CODE = 128 + signal.SIGTERM


def load_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; missing or corrupt files raise an error naming the path."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling / zip errors have many types
        raise RuntimeError(f"cannot load checkpoint {path}: it is corrupt or not a torch checkpoint ({err})") from err


def require_checkpoint(command: str, ckpt_path: str | os.PathLike | None, *, dirpath: str | None) -> None:
    """Refuse to evaluate without weights: ``ckpt_path`` must be given, and ``"last"`` must exist in ``dirpath``.

    ``Trainer.validate`` / ``test`` without a checkpoint score the model as built (an untrained head), and
    ``ckpt_path="last"`` without a last checkpoint only warns and does the same; a CLI calls this first.
    """
    if not ckpt_path:
        raise ValueError(
            f"{command} needs --ckpt_path CKPT (or 'last'): without one it would score an untrained model; "
            "pass --allow_no_checkpoint true to score the model as built"
        )
    if ckpt_path == "last" and not (dirpath and glob.glob(os.path.join(glob.escape(dirpath), "last*.ckpt"))):
        raise ValueError(f"--ckpt_path last: there is no last*.ckpt in {dirpath}")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves are atomic (temp file + fsync + ``os.replace``)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO does not take storage_options, got {storage_options!r}")
        path = os.fspath(path)
        folder = os.path.dirname(path) or "."
        name = os.path.basename(path)
        for stale in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name)}.*.tmp")):  # a killed save
            with contextlib.suppress(OSError):
                os.remove(stale)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)

        atomic_write(path, write)  # temp file beside it, fsync, rename, fsync of the folder

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        return load_checkpoint(path, map_location=map_location if map_location is not None else "cpu")


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that keeps one training run per folder, exact across crashes, reruns and SIGTERM.

    Differences from ``ModelCheckpoint`` (all its arguments are accepted):

    * ``enable_version_counter`` defaults to ``False``: a name is overwritten (atomically with
      :class:`AtomicCheckpointIO`) rather than versioned, so there is never a ``last-v1.ckpt`` that
      ``ckpt_path="last"`` could pick instead of ``last.ckpt``.
    * At the start of ``fit`` the folder is checked. A fresh run (no ``ckpt_path``, or one from another
      folder) into a folder that holds our checkpoints (``last*.ckpt`` or names of the ``filename`` template)
      raises ``ValueError`` naming the folder, unless ``overwrite=True``, which deletes those files first.
      A run resumed from a checkpoint of this folder deletes our step checkpoints that the restored callback
      state does not track (left by a crash between writing one checkpoint and deleting the previous one),
      unless ``save_top_k=-1``. Never deleted: ``last*.ckpt`` on resume, the checkpoint resumed from, and
      files whose names do not match the template.
    * On SIGTERM (Lightning stops at the end of the current batch, or in the middle of a validation) it
      writes ``last.ckpt`` with the state at the end of the last finished training batch, the same state a
      step checkpoint there would hold, so ``ckpt_path="last"`` continues exactly; the process then exits
      with status 143 (128 + SIGTERM) instead of 0. A validation cut short is not redone on resume. Under DDP
      the ranks agree at the end of every training batch and all stop at the same one.

    Args:
        overwrite: let a fresh run delete the checkpoints of an earlier run in its folder.
        enable_version_counter: ``ModelCheckpoint``'s option (default here ``False``).
        **kwargs: ``ModelCheckpoint`` arguments (``dirpath``, ``filename``, ``every_n_train_steps``,
            ``save_top_k``, ``save_last``, ``monitor``, ...).
    """

    def __init__(self, *, overwrite: bool = False, enable_version_counter: bool = False, **kwargs: Any) -> None:
        if not isinstance(overwrite, bool):
            raise TypeError(f"overwrite must be a bool, got {type(overwrite).__name__} {overwrite!r}")
        super().__init__(enable_version_counter=enable_version_counter, **kwargs)
        self.overwrite = overwrite
        self._restored_here = False
        self._batch_end_loops: dict | None = None
        self._batch_end_step = -1
        self._loops_override: dict | None = None
        self._sigterm_seen = False

    @property
    def state_key(self) -> str:
        # the same key as ModelCheckpoint: checkpoints of either class restore each other's bookkeeping
        key = super().state_key
        return "ModelCheckpoint" + key[len(type(self).__qualname__) :]

    # ------------------------------------------------------------------ folder checks at the start of fit
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        with warnings.catch_warnings():  # the folder check at fit start says what is wrong, and only then
            warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            super().setup(trainer, pl_module, stage)
        self._batch_end_loops, self._batch_end_step = None, -1  # nothing of an earlier fit call

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._restored_here = state_dict.get("dirpath", self.dirpath) == self.dirpath

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.strategy.restore_checkpoint_after_setup:  # callbacks and ckpt_path are restored by now
            self._start_run(trainer)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if trainer.strategy.restore_checkpoint_after_setup:
            self._start_run(trainer)
        self._take_sigterm(trainer)

    def _template(self) -> re.Pattern:
        """Names this callback writes for top-k / step checkpoints (any values, optional ``-vN``)."""
        template = self.filename or "{epoch}" + self.CHECKPOINT_JOIN_CHAR + "{step}"
        parts, last = [], 0
        for match in re.finditer(r"\{([^{}:]+)(?::[^{}]*)?\}", template):
            parts.append(re.escape(template[last : match.start()]))
            if self.auto_insert_metric_name:
                parts.append(re.escape(match.group(1) + self.CHECKPOINT_EQUALS_CHAR))
            parts.append(r".+?")
            last = match.end()
        parts.append(re.escape(template[last:]))
        return re.compile("".join(parts) + rf"(-v\d+)?{re.escape(self.FILE_EXTENSION)}")

    def _our_files(self) -> tuple[list[str], list[str]]:
        """``(step_files, last_files)`` in ``dirpath`` (full paths)."""
        folder = self.dirpath
        if not folder or not os.path.isdir(folder):
            return [], []
        last = re.compile(rf"{self.CHECKPOINT_NAME_LAST}(-v\d+)?{re.escape(self.FILE_EXTENSION)}")
        template = self._template()
        steps, lasts = [], []
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                continue
            if last.fullmatch(name):
                lasts.append(path)
            elif template.fullmatch(name):
                steps.append(path)
        return steps, lasts

    def _check_folder(self, trainer: pl.Trainer) -> str | None:
        """Rank 0: refuse, clear or prune the folder; returns an error message or ``None``."""
        steps, lasts = self._our_files()
        resumed = trainer.ckpt_path is not None and os.path.realpath(os.path.dirname(os.fspath(trainer.ckpt_path)))
        resumed_here = bool(resumed) and self.dirpath is not None and resumed == os.path.realpath(self.dirpath)
        if not resumed_here:
            if not (steps or lasts):
                return None
            if not self.overwrite:
                names = ", ".join(os.path.basename(p) for p in (lasts + steps)[:3])
                more = f" and {len(steps) + len(lasts) - 3} more" if len(steps) + len(lasts) > 3 else ""
                resume = "--ckpt_path last (ckpt_path='last')" if lasts else "--ckpt_path set to one of them"
                return (
                    f"checkpoint folder {self.dirpath} already holds checkpoints of an earlier run ({names}{more}): "
                    f"resume it with {resume}, or start over with --checkpoint.overwrite true "
                    "(RunCheckpoint(overwrite=True)), which deletes them"
                )
            for path in lasts + steps:
                os.remove(path)
            log.info("overwrite: deleted %d checkpoint(s) of an earlier run in %s", len(lasts + steps), self.dirpath)
            return None
        if not self._restored_here or self.save_top_k == -1:
            return None  # without the restored bookkeeping we cannot tell stale files from kept ones
        assert trainer.ckpt_path is not None  # resumed_here implies it
        keep = {self.best_model_path, self.last_model_path, self.kth_best_model_path, *self.best_k_models}
        keep = {os.path.realpath(p) for p in keep if p} | {os.path.realpath(os.fspath(trainer.ckpt_path))}
        stale = [p for p in steps if os.path.realpath(p) not in keep]
        for path in stale:
            os.remove(path)
        if stale:
            log.info("deleted %d stale step checkpoint(s) beyond save_top_k=%d in %s: %s", len(stale),
                     self.save_top_k, self.dirpath, ", ".join(os.path.basename(p) for p in stale))  # fmt: skip
        return None

    def _start_run(self, trainer: pl.Trainer) -> None:
        error = self._check_folder(trainer) if trainer.is_global_zero else None
        error = trainer.strategy.broadcast(error)
        trainer.strategy.barrier("RunCheckpoint folder check")
        if error:
            raise ValueError(error)

    # ------------------------------------------------------------------ SIGTERM
    def on_sanity_check_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._take_sigterm(trainer)

    def _take_sigterm(self, trainer: pl.Trainer) -> None:
        """Under DDP, replace Lightning's SIGTERM handler by one that only sets a flag.

        Lightning's handler broadcasts from inside the signal handler, which hangs when the signal reaches a
        rank other than 0 (or the ranks at different moments). Here the ranks agree at the end of each training
        batch (one all-reduce) and then all stop at that batch. Lightning puts its handlers back after ``fit``.
        """
        if trainer.world_size <= 1 or threading.current_thread() is not threading.main_thread():
            return
        self._sigterm_seen = False

        def on_sigterm(signum: int, frame: Any) -> None:
            if not self._sigterm_seen and trainer.strategy.launcher is not None:
                trainer.strategy.launcher.kill(signum)  # as Lightning does: pass it on to processes it started
            self._sigterm_seen = True

        signal.signal(signal.SIGTERM, on_sigterm)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        # the loop state a step checkpoint written now holds: what a SIGTERM checkpoint saves later (a fresh
        # dict of plain values, about 0.1-0.3 ms)
        self._batch_end_loops = trainer.fit_loop.state_dict()
        self._batch_end_step = trainer.global_step
        if trainer.world_size > 1:  # all ranks stop at this batch when the signal reached any of them
            seen = self._sigterm_seen or trainer.received_sigterm
            if trainer.strategy.reduce_boolean_decision(seen, all=False):
                trainer._signal_connector.received_sigterm = True

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if self._loops_override is not None:
            checkpoint["loops"]["fit_loop"] = self._loops_override

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            try:
                self._save_on_sigterm(trainer)
            except Exception:  # the exit status must still say "terminated"
                log.exception("SIGTERM: could not write the checkpoint")
            exception.code = SIGTERM_EXIT_CODE
        super().on_exception(trainer, pl_module, exception)

    def _save_on_sigterm(self, trainer: pl.Trainer) -> None:
        if trainer.state.fn != "fit" or trainer.sanity_checking or self._batch_end_loops is None or not self.dirpath:
            log.warning("SIGTERM before the first training batch finished: nothing new to save")
            return
        path = os.path.join(self.dirpath, self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION)
        step = self._batch_end_step
        if self._last_global_step_saved == step and self.last_model_path == path and os.path.isfile(path):
            log.warning("SIGTERM: %s already holds step %d", path, step)
            return
        self.last_model_path = path
        self._loops_override = self._batch_end_loops
        try:
            trainer.save_checkpoint(path, self.save_weights_only)
        finally:
            self._loops_override = None
        self._last_global_step_saved = step
        if trainer.is_global_zero:
            log.warning("SIGTERM: saved a resumable checkpoint of step %d to %s", step, path)
