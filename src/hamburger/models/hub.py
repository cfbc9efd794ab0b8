"""save_pretrained / from_pretrained / push_to_hub: ``model.safetensors`` + ``config.json``.

Both files are written atomically (temporary file in the same directory, then ``os.replace``).
A hub id is resolved with ``huggingface_hub.snapshot_download`` when the package is installed.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from .config import ModelConfig, build_model
from .segmentation import SegmentationModel

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT_VERSION = 1


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_pretrained(model: SegmentationModel, directory: str | os.PathLike) -> None:
    """Save a model built by ``create_model`` to ``directory`` (created if needed)."""
    from safetensors.torch import save_file

    if not isinstance(model, SegmentationModel) or model.config is None:
        raise ValueError(
            "save_pretrained needs a SegmentationModel built by hamburger.models.create_model (it stores the "
            "config); for a hand-built model save model.state_dict() with torch.save"
        )
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    config = {"format_version": FORMAT_VERSION, **model.config}
    try:
        text = json.dumps(config, indent=2, sort_keys=True)
    except TypeError as err:
        raise ValueError(f"the model config is not JSON-serialisable ({err}); use names, not callables") from err
    _atomic_write(path / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    _atomic_write(path / CONFIG_NAME, lambda tmp: Path(tmp).write_text(text + "\n"))


def _resolve(name_or_path: str | os.PathLike) -> Path:
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


def from_pretrained(name_or_path: str | os.PathLike, **overrides: Any) -> SegmentationModel:
    """Rebuild and load a model written by :func:`save_pretrained`.

    ``overrides`` change config fields that do not alter the weights' shapes (e.g.
    ``eval_steps=10``, ``grad_mode="bptt"``). The model is returned in eval mode (as Hugging Face's
    ``from_pretrained`` does); call ``.train()`` to fine-tune it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = _resolve(name_or_path)
    config_file, weights_file = path / CONFIG_NAME, path / WEIGHTS_NAME
    for file in (config_file, weights_file):
        if not file.is_file():
            raise FileNotFoundError(f"missing {str(file)!r}; expected a directory written by save_pretrained")
    try:
        raw = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"corrupt config file {str(config_file)!r}: {err}") from err
    version = raw.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise ValueError(f"{str(config_file)!r} has format_version {version!r}; this version reads {FORMAT_VERSION}")
    name = raw.pop("name", None)
    config = ModelConfig().replace(**raw).replace(**overrides)
    model = build_model(config)
    try:
        state = load_file(str(weights_file))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"cannot read weights file {str(weights_file)!r}: {err}") from err
    model.load_state_dict(state, strict=True)
    model.config = {"name": name, **config.to_dict(), "weights": None}
    return model.eval()


def push_to_hub(model: SegmentationModel, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Create ``repo_id`` if needed and upload ``save_pretrained``'s files; returns the commit URL."""
    try:
        from huggingface_hub import HfApi
    except ImportError as err:
        raise ImportError("push_to_hub needs huggingface_hub (pip install huggingface_hub)") from err
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp)
        info = api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message="Upload hamburger model")
    return str(info)
