"""Writing a conversion: the converted tensors + ``conversion.json``, or a registered model via ``save_pretrained``.

Both are atomic folder writes (:func:`hamburger.utils.atomic_directory`): a crash leaves the old folder or
the new one. An output folder that holds anything else (the checkpoint itself, other work) is refused,
so a conversion never replaces a user's files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ...blocks import HamOptions
from ...utils import atomic_directory
from .mapping import Conversion

WEIGHTS_NAME, META_NAME = "converted.safetensors", "conversion.json"
OUTPUT_NAMES = (WEIGHTS_NAME, META_NAME, "model.safetensors", "config.json")
"""What a conversion writes; an existing OUT_DIR may hold only these (a previous conversion)."""
_FROM_CHECKPOINT = ("head", "num_classes", "channels", "ham_channels", "norm_layer", "kernel_size", "concat_input")


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """``out_dir`` as a Path; ValueError if it is a file or a folder with files a conversion does not write."""
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"output {str(path)!r} exists and is not a directory")
    if path.is_dir():
        other = sorted(p.name for p in path.iterdir() if p.name not in OUTPUT_NAMES)
        if other:
            raise ValueError(
                f"output directory {str(path)!r} holds other files ({', '.join(other[:3])}); "
                "choose a new or empty directory (it is replaced as a whole)"
            )
    return path


def write_conversion(
    conversion: Conversion,
    out_dir: str | os.PathLike,
    *,
    model: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Write ``conversion`` to ``out_dir`` and return its path.

    Without ``model``: ``converted.safetensors`` (keys ``head.*``, ``aux_head.*``, ``backbone.body.*``) and
    ``conversion.json`` (:meth:`Conversion.to_dict`). With ``model`` (a registered name): that model is
    built with the checkpoint's head structure and its complete ham options (``config.json``'s
    ``hamburger`` equals ``conversion.options``), loaded (missing or unexpected keys are an error) and
    written by ``save_pretrained``. ``overrides`` are further ``create_model`` options; ham option
    names among them (``eval_steps``, ``grad_mode``, ...) change the converted options explicitly.
    """
    path = check_out_dir(out_dir)
    if model is not None:
        _write_model(conversion, path, model, dict(overrides or {}))
        return path
    if overrides:
        raise ValueError(f"--set {sorted(overrides)} needs --model")
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in conversion.state_dict.items()}
    text = json.dumps(conversion.to_dict(), indent=2) + "\n"
    with atomic_directory(path) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_NAME))
        (tmp / META_NAME).write_text(text, encoding="utf-8")
    return path


def _write_model(conversion: Conversion, path: Path, name: str, overrides: dict[str, Any]) -> None:
    from ..registry import create_model, get_model_config

    fixed = sorted(set(overrides) & {*_FROM_CHECKPOINT, "hamburger", "aux_channels"})
    if fixed:
        raise ValueError(f"--set {fixed}: these are read from the checkpoint and cannot be overridden")
    ham_names = set(HamOptions.field_names()) - {"norm_layer"}
    options = conversion.options.replace(**{k: overrides.pop(k) for k in list(overrides) if k in ham_names})
    base = get_model_config(name)
    if base.head != conversion.head:
        raise ValueError(f"model {name!r} has a {base.head!r} head but the checkpoint holds a {conversion.head!r} head")
    structure = {k: v for k, v in conversion.head_kwargs.items() if k in _FROM_CHECKPOINT}
    if conversion.aux_kwargs is not None:
        structure["aux_channels"] = conversion.aux_kwargs["channels"]
    built = create_model(name, **{**overrides, **structure, "hamburger": options})
    try:
        result = built.load_state_dict(conversion.state_dict, strict=False)
    except RuntimeError as err:
        raise ValueError(f"{name}: the checkpoint does not fit: {' '.join(str(err).split())}") from None
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if overrides.get("weights") is not None:  # the backbone was loaded from that file (e.g. for a non-timm MSCAN)
        missing = [k for k in missing if not k.startswith("backbone.")]
    if missing or result.unexpected_keys:
        raise ValueError(f"{name}: missing {missing[:8]} unexpected {result.unexpected_keys[:8]}")
    assert built.config is not None  # create_model always sets it
    if built.config["hamburger"] != options.to_dict():  # the options travel unchanged into config.json
        raise AssertionError(f"{name}: ham options changed on the way: {built.config['hamburger']}")
    built.save_pretrained(path)
