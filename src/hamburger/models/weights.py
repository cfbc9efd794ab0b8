"""Local weight files for backbones: reading, key-layout mapping to timm, and loading.

Supported layouts: timm's own; torchvision MobileNetV2 (``features.*``); torchvision ResNet
(identical to timm's); the official HamNet / CCNet deep-stem ResNet ImageNet files
(``conv1, bn1, conv2, bn2, conv3, bn3`` stem, e.g. ``resnet101-2a57e44d.pth``).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

_WRAPPERS = ("state_dict", "model", "module", "model_state")


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Load a ``.pth``/``.pt``/``.bin`` (``weights_only=True``) or ``.safetensors`` file as a flat state_dict.

    Unwraps ``{"state_dict": ...}``-style containers and strips a ``module.`` prefix (DataParallel).
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"weights file {str(file)!r} does not exist")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: object = load_file(str(file))
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or unsafe pickle: name the file
        raise ValueError(f"cannot read weights file {str(file)!r}: {err}") from err
    while isinstance(state, dict):
        inner = [k for k in _WRAPPERS if isinstance(state.get(k), dict)]
        if not inner:
            break
        state = state[inner[0]]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"weights file {str(file)!r} does not hold a state_dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


# torchvision mobilenet_v2 "features.i" -> timm mobilenetv2 "blocks.s.b" (stage, block)
_MBV2_STAGES = [(0, 0)] + [(1, b) for b in range(2)] + [(2, b) for b in range(3)] + [(3, b) for b in range(4)]
_MBV2_STAGES += [(4, b) for b in range(3)] + [(5, b) for b in range(3)] + [(6, 0)]
# inside an inverted residual (expansion 6): torchvision conv.* -> timm names
_MBV2_IR = {
    "conv.0.0": "conv_pw",
    "conv.0.1": "bn1",
    "conv.1.0": "conv_dw",
    "conv.1.1": "bn2",
    "conv.2": "conv_pwl",
    "conv.3": "bn3",
}
_MBV2_DS = {"conv.0.0": "conv_dw", "conv.0.1": "bn1", "conv.1": "conv_pw", "conv.2": "bn2"}  # first block (t=1)


def mobilenet_v2_torchvision_to_timm(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename torchvision ``mobilenet_v2`` keys to timm ``mobilenetv2_100`` keys (classifier kept as is)."""
    out = {}
    for key, value in state.items():
        m = re.match(r"features\.(\d+)\.(.+)", key)
        if m is None:
            out[key.replace("classifier.1.", "classifier.")] = value
            continue
        index, rest = int(m.group(1)), m.group(2)
        if index == 0:
            new = rest.replace("0.", "conv_stem.", 1) if rest.startswith("0.") else rest.replace("1.", "bn1.", 1)
        elif index == 18:
            new = rest.replace("0.", "conv_head.", 1) if rest.startswith("0.") else rest.replace("1.", "bn2.", 1)
        else:
            stage, block = _MBV2_STAGES[index - 1]
            table = _MBV2_DS if index == 1 else _MBV2_IR
            prefix = next((p for p in table if rest.startswith(p + ".")), None)
            if prefix is None:
                out[key] = value
                continue
            new = f"blocks.{stage}.{block}.{table[prefix]}{rest[len(prefix) :]}"
        out[new] = value
    return out


_DEEP_STEM = {
    "conv1.": "conv1.0.",
    "bn1.": "conv1.1.",
    "conv2.": "conv1.3.",
    "bn2.": "conv1.4.",
    "conv3.": "conv1.6.",
    "bn3.": "bn1.",
}


def deep_stem_resnet_to_timm(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename the official HamNet / CCNet deep-stem ResNet stem (``conv1..3``, ``bn1..3``) to timm's."""
    out = {}
    for key, value in state.items():
        prefix = next((p for p in _DEEP_STEM if key.startswith(p)), None)
        out[_DEEP_STEM[prefix] + key[len(prefix) :] if prefix else key] = value
    return out


def to_timm_layout(state: dict[str, Tensor], target_keys: set[str]) -> dict[str, Tensor]:
    """Detect the layout of ``state`` and rename it towards ``target_keys`` (timm names)."""
    if any(k in target_keys for k in state) and "features.0.0.weight" not in state:
        if "conv3.weight" in state and "conv1.6.weight" in target_keys:
            return deep_stem_resnet_to_timm(state)
        return state
    if "features.0.0.weight" in state:
        return mobilenet_v2_torchvision_to_timm(state)
    return state


def load_backbone_weights(backbone: nn.Module, path: str | os.PathLike) -> None:
    """Load a local file into ``backbone`` (a ``TimmBackbone`` or any module), strictly for its keys.

    Keys of the file that the backbone does not have (classifier, unused stages) are ignored
    and logged; keys the backbone needs but the file lacks, or shape mismatches, raise ``ValueError``.
    """
    target = getattr(backbone, "body", backbone)
    own = target.state_dict()
    state = to_timm_layout(read_state_dict(path), set(own))
    missing = [k for k in own if k not in state]
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or wrong:
        details = (f"missing {len(missing)} keys, e.g. {missing[:5]}; " if missing else "") + (
            f"shape mismatches {wrong[:5]}" if wrong else ""
        )
        raise ValueError(f"weights file {str(path)!r} does not fit backbone {type(target).__name__}: {details}")
    unused = sorted(set(state) - set(own))
    if unused:
        logger.info("%s: %d keys not used by the backbone (e.g. %s)", path, len(unused), unused[:5])
    target.load_state_dict({k: state[k] for k in own}, strict=True)
