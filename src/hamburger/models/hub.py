"""The ``save_pretrained`` folder format: ``model.safetensors`` + ``config.json``, written and read as a pair.

This module knows files, not models: :mod:`hamburger.models.segmentation` builds and loads the model. The pair is
written into a temporary folder that then replaces the target folder as a whole, so a crash never leaves new
weights beside an old config; on reading, the config must name every field (format 2) and the weights must fit it.
A hub id is resolved with ``huggingface_hub.snapshot_download`` when the package is installed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from ..utils import atomic_directory
from .config import ModelConfig

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT_VERSION = 2
"""2: the Hamburger options nested under ``hamburger`` and every field required; 1 (flat) is still read."""


def write_pretrained(directory: str | os.PathLike, state: Mapping[str, Tensor], config: Mapping[str, Any]) -> None:
    """Write ``state`` and ``config`` (with ``format_version``) to ``directory`` as one atomic pair."""
    from safetensors.torch import save_file

    try:
        text = json.dumps({"format_version": FORMAT_VERSION, **config}, indent=2, sort_keys=True)
    except TypeError as err:
        raise ValueError(f"the model config is not JSON-serialisable ({err}); use names, not callables") from err
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    # the weights carry a fingerprint of their config: a config.json from another save is detected on reading
    metadata = {"format": "pt", "config_sha256": _fingerprint(json.loads(text))}
    with atomic_directory(directory) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata=metadata)
        (tmp / CONFIG_NAME).write_text(text + "\n")


def _fingerprint(config: Mapping[str, Any]) -> str:
    canonical = json.dumps(dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A local folder, or a hub id downloaded with ``huggingface_hub`` (when installed)."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists():
        raise ValueError(f"{str(path)!r} is a file; from_pretrained expects a directory written by save_pretrained")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:
        raise FileNotFoundError(
            f"no directory {str(path)!r}, and huggingface_hub is not installed to resolve it as a hub id"
        ) from err
    return Path(snapshot_download(repo_id=str(name_or_path), allow_patterns=[WEIGHTS_NAME, CONFIG_NAME]))


def read_pretrained(name_or_path: str | os.PathLike) -> tuple[str | None, ModelConfig, dict[str, Tensor]]:
    """Read a folder written by :func:`write_pretrained`: ``(registered name, config, state_dict)``."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = resolve(name_or_path)
    config_file, weights_file = path / CONFIG_NAME, path / WEIGHTS_NAME
    for file in (config_file, weights_file):
        if not file.is_file():
            raise FileNotFoundError(f"missing {str(file)!r}; expected a directory written by save_pretrained")
    try:
        raw = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"corrupt config file {str(config_file)!r}: {err}") from err
    if not isinstance(raw, dict):
        raise ValueError(f"corrupt config file {str(config_file)!r}: expected a JSON object")
    fingerprint = _fingerprint(raw)
    version = raw.pop("format_version", None)
    name = raw.pop("name", None)
    if version == FORMAT_VERSION:
        config = ModelConfig.from_dict(raw, strict=True)
    elif version == 1:  # flat Hamburger options, written by hamburger 0.1
        config = ModelConfig().replace(**raw)
    else:
        raise ValueError(
            f"{str(config_file)!r} has format_version {version!r}; this version reads 1 and {FORMAT_VERSION}"
        )
    try:
        with safe_open(str(weights_file), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(weights_file))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"cannot read weights file {str(weights_file)!r}: {err}") from err
    expected = metadata.get("config_sha256")
    if expected is not None and expected != fingerprint:
        raise ValueError(
            f"the weights in {str(weights_file)!r} do not belong to its config.json (they were saved with another "
            "config); save the model again with save_pretrained"
        )
    return name, config, state
