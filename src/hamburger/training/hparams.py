"""Checkpoints read back for their hyper-parameters: plain data only, compared in one canonical form.

A checkpoint that passes ``torch.load(weights_only=True)`` holds only tensors and plain containers, but its
``hyper_parameters`` are then handed to a constructor (``predict``, ``validate --ckpt_path``) or to jsonargparse
(LightningCLI merges them into the config). jsonargparse treats a mapping with a ``class_path`` key as a class to
import and instantiate, so such specs are refused here: nothing read from a file may import or call code.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["canonical", "check_plain_hparams", "is_import_path", "read_checkpoint"]

_SPEC_KEYS = frozenset({"class_path", "_class_path", "init_args", "dict_kwargs"})
_LEAF_TYPES = (str, int, float, bool, type(None))


def is_import_path(name: object) -> bool:
    """Whether a ``model`` value is an import path ``"pkg.module:factory"`` (code to import) and not a name."""
    return isinstance(name, str) and ":" in name


def check_plain_hparams(hparams: object, *, source: str | os.PathLike = "checkpoint") -> dict[str, Any]:
    """Return ``hparams`` as a dict after checking that it is plain data (nothing a parser would import).

    Accepted: ``str`` / ``int`` / ``float`` / ``bool`` / ``None`` leaves, lists, tuples and mappings with
    ``str`` keys. Refused (``ValueError`` naming ``source`` and the key path): any other type, and any mapping
    with a ``class_path`` / ``init_args``-style key (a jsonargparse class spec). Top-level keys starting with
    ``_`` (Lightning's ``_instantiator``) are dropped.
    """
    source = os.fspath(source)
    if not isinstance(hparams, Mapping):
        raise ValueError(f"{source}: hyper_parameters must be a mapping, got {type(hparams).__name__}")

    def visit(value: object, where: str) -> None:
        if isinstance(value, _LEAF_TYPES):
            return
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                visit(item, f"{where}[{i}]")
            return
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValueError(f"{source}: hyper-parameter {where} has a non-string key {key!r}")
                if key in _SPEC_KEYS:
                    raise ValueError(
                        f"{source}: hyper-parameter {where}.{key} is a class spec; a checkpoint may not name "
                        "classes or functions to import"
                    )
                visit(item, f"{where}.{key}")
            return
        raise ValueError(f"{source}: hyper-parameter {where} has unsupported type {type(value).__name__}")

    out = {}
    for key, value in hparams.items():
        if not isinstance(key, str):
            raise ValueError(f"{source}: hyper_parameters has a non-string key {key!r}")
        if key.startswith("_"):
            continue
        visit(value, key)
        out[key] = value
    return out


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint's dict with ``torch.load(weights_only=True)``, its tensors memory-mapped (cheap).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: the file is not a readable torch checkpoint, or not a dict with a ``state_dict``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--ckpt_path: no such checkpoint file: {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"--ckpt_path {path} is not a checkpoint (not a file written by torch.save)")
    try:  # tensors are memory-mapped: only the pickled metadata is read now
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # unpickling / zip / EOF errors have many types
        reason = " ".join(str(err).split()).split(". ")[0][:200]
        raise ValueError(f"--ckpt_path {path} is not a readable checkpoint ({type(err).__name__}: {reason})") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"--ckpt_path {path} is not a Lightning checkpoint (it has no state_dict)")
    return ckpt


def canonical(value: Any) -> Any:
    """``value`` with tuples as lists and mappings (also jsonargparse ``Namespace``) as sorted dicts.

    Two hyper-parameter values are "the same" when their canonical forms are equal: ``(0.9, 0.999)`` from a
    signature default equals ``[0.9, 0.999]`` from YAML, and ``1`` equals ``1.0``.
    """
    if hasattr(value, "as_dict") and callable(value.as_dict):  # jsonargparse.Namespace
        value = value.as_dict()
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value
