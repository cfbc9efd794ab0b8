"""Crash-safe checkpoint files for Lightning.

:class:`AtomicCheckpointIO` writes every checkpoint to a temporary file in the same folder, flushes it to
disk and renames it over the target with ``os.replace`` (atomic on POSIX and Windows). A process killed at
any moment therefore leaves either the previous complete checkpoint or the new complete one, never a
truncated file; at worst a stray ``.*.tmp`` file remains, which is removed on the next save.
Checkpoints are read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import glob
import os
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

__all__ = ["AtomicCheckpointIO", "load_checkpoint"]


def load_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; missing or corrupt files raise an error naming the path."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling / zip errors have many types
        raise RuntimeError(f"cannot load checkpoint {path}: it is corrupt or not a torch checkpoint ({err})") from err


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves are atomic (temp file + fsync + ``os.replace``)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO does not take storage_options, got {storage_options!r}")
        path = os.fspath(path)
        folder = os.path.dirname(path) or "."
        os.makedirs(folder, exist_ok=True)
        name = os.path.basename(path)
        for stale in glob.glob(os.path.join(folder, f".{glob.escape(name)}.*.tmp")):
            try:
                os.remove(stale)
            except OSError:
                pass
        tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        try:  # make the rename itself durable
            fd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        return load_checkpoint(path, map_location=map_location if map_location is not None else "cpu")
