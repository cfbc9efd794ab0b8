"""The ``save_pretrained`` folder format: ``model.safetensors`` + ``config.json`` (+ a ``README.md`` model card),
written as one folder and read as a pair.

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
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from ..utils import atomic_directory
from .config import ModelConfig

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
CARD_FIELDS = ("training_data", "recipe", "scores", "license", "description")
"""Keys of the ``card`` mapping of ``save_pretrained``; anything else is listed under "Other information"."""
FORMAT_VERSION = 2
"""2: the Hamburger options nested under ``hamburger`` and every field required; 1 (flat) is still read."""


def write_pretrained(
    directory: str | os.PathLike,
    state: Mapping[str, Tensor],
    config: Mapping[str, Any],
    *,
    card: Mapping[str, Any] | None = None,
) -> None:
    """Write ``state``, ``config`` (with ``format_version``) and a ``README.md`` model card (see
    :func:`model_card`) to ``directory`` as one atomic folder."""
    from safetensors.torch import save_file

    card_text = model_card(config, card)

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
        (tmp / CARD_NAME).write_text(card_text, encoding="utf-8")


def _value(value: Any) -> str:
    return "`None`" if value is None else f"`{value}`" if not isinstance(value, str) else f"`{value!r}`"


def _section(value: Any) -> str:
    """A card entry: a mapping as a two-column table, a list as bullets, anything else as text."""
    if isinstance(value, Mapping):
        rows = "\n".join(f"| {key} | {value[key]} |" for key in value)
        return f"| | |\n|---|---|\n{rows}"
    if isinstance(value, (list, tuple)):
        return "\n".join(f"* {item}" for item in value)
    return str(value)


def model_card(config: Mapping[str, Any], card: Mapping[str, Any] | None = None) -> str:
    """The ``README.md`` model card of a saved model: architecture and ham options from ``config``; training data,
    recipe, scores, licence and description from ``card`` where known (keys :data:`CARD_FIELDS`; other keys are
    listed as they are). Unknown entries say "not recorded"; the licence defaults to "unknown"."""
    if card is not None and not isinstance(card, Mapping):
        raise TypeError(f"card must be a mapping (keys {list(CARD_FIELDS)}) or None, got {type(card).__name__}")
    card = dict(card or {})
    name = config.get("name") or "hamburger segmentation model"
    ham = dict(config.get("hamburger") or {})
    licence = card.get("license") or "unknown"
    tags = ["hamburger", "image-segmentation", "semantic-segmentation"]
    if ham.get("ham"):
        tags.append(str(ham["ham"]))
    lines = [
        "---",
        "library_name: hamburger",
        f"license: {json.dumps(str(licence))}",
        "tags:",
        *(f"- {tag}" for tag in tags),
        "pipeline_tag: image-segmentation",
        "---",
        "",
        f"# {name}",
        "",
    ]
    if card.get("description"):
        lines += [str(card["description"]), ""]
    lines += [
        "A semantic-segmentation model with a Hamburger (matrix decomposition) global-context block "
        "(Geng et al., *Is Attention Better Than Matrix Decomposition?*, ICLR 2021), saved by "
        "`hamburger` `save_pretrained`.",
        "",
        "## Architecture",
        "",
        "| field | value |",
        "|---|---|",
    ]
    for key in ("name", "backbone", "head", "context", "num_classes", "in_channels", "output_stride",
                "feature_strides", "channels", "ham_channels", "norm_layer", "aux_index", "align_corners"):  # fmt: skip
        if key in config:
            lines.append(f"| `{key}` | {_value(config[key])} |")
    if ham:
        lines += ["", "## Ham options", "", "| option | value |", "|---|---|"]
        lines += [f"| `{key}` | {_value(value)} |" for key, value in ham.items()]
    for key, title in (("training_data", "Training data"), ("recipe", "Training recipe"), ("scores", "Scores")):
        text = _section(card[key]) if card.get(key) not in (None, "", {}, []) else "Not recorded."
        lines += ["", f"## {title}", "", text]
    other = {key: value for key, value in card.items() if key not in CARD_FIELDS}
    if other:
        lines += ["", "## Other information", "", _section(other)]
    lines += [
        "",
        "## Licence",
        "",
        f"{licence}. The `hamburger` code is MIT-licensed; the licence of these weights also depends on the "
        "training data and on any pretrained backbone weights they started from.",
        "",
        "## Use",
        "",
        "```python",
        "from hamburger.models import SegmentationModel",
        "",
        'model = SegmentationModel.from_pretrained("PATH_OR_HUB_ID")  # eval mode',
        "labels = model.predict(images)  # (B, H, W) class ids of a normalised (B, C, H, W) batch",
        "```",
        "",
        f"Files: `{WEIGHTS_NAME}` (weights), `{CONFIG_NAME}` (everything `create_model` needs), `{CARD_NAME}`.",
        "",
    ]
    return "\n".join(lines)


def _fingerprint(config: Mapping[str, Any]) -> str:
    canonical = json.dumps(dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _looks_like_path(name: str) -> bool:
    """True for a name that is meant as a local path, not a hub id ``namespace/name``: it starts with ``.`` or ``~``,
    is absolute, contains a separator in any other form than one ``/`` of a hub id, or its first component exists
    here as a folder (``runs/model`` beside an existing ``runs/``)."""
    if name.startswith((".", "~")) or os.path.isabs(name):
        return True
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    if not any(sep in name for sep in separators):
        return False
    if not _HUB_ID.match(name):
        return True
    return Path(name.split("/", 1)[0]).is_dir()


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A local folder, or a hub id downloaded with ``huggingface_hub`` (when installed).

    A name that looks like a local path (see :func:`_looks_like_path`; any ``os.PathLike``) and does not exist
    raises ``FileNotFoundError`` saying so, rather than being sent to the hub as an id.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ValueError(f"{str(path)!r} is a file; from_pretrained expects a directory written by save_pretrained")
    if not isinstance(name_or_path, str) or _looks_like_path(name_or_path):
        raise FileNotFoundError(
            f"the folder {str(name_or_path)!r} does not exist; from_pretrained expects a directory written by "
            "save_pretrained (or a hub id 'namespace/name')"
        )
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
