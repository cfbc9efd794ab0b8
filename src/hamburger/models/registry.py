"""Model registry: a plain dict from name to a function returning a :class:`ModelConfig`."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from .config import ModelConfig
from .segmentation import SegmentationModel, build_model

_MODELS: dict[str, Callable[[], ModelConfig]] = {}


def register_model(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    """Register ``fn`` (no arguments, returns a ``ModelConfig``) under ``fn.__name__``."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by a shell-style ``pattern`` (``"light_ham*"``)."""
    names = sorted(_MODELS)
    return names if pattern is None else fnmatch.filter(names, pattern)


def get_model_config(name: str, **overrides: Any) -> ModelConfig:
    """The ``ModelConfig`` of a registered model with ``overrides`` applied."""
    if not isinstance(name, str) or name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {list_models()}")
    return _MODELS[name]().replace(**overrides)


def create_model(
    name: str, num_classes: int | None = None, *, pretrained: bool = False, **overrides: Any
) -> SegmentationModel:
    """Build a registered segmentation model.

    Args:
        name: a name from :func:`list_models`.
        num_classes: output classes (default: the config's dataset, e.g. 21 for VOC).
        pretrained: load the backbone's ImageNet weights from timm (needs internet). For an
            offline file use ``weights=PATH`` (timm or torchvision key layout).
        **overrides: any :class:`ModelConfig` field, e.g. ``rank=16``, ``context="sdpa"``,
            ``output_stride=16``, ``backbone="resnet18"``.

    Example:
        >>> model = create_model("tiny_ham", num_classes=11)
        >>> model(torch.randn(2, 3, 64, 64))["out"].shape
        torch.Size([2, 11, 64, 64])
    """
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    config = get_model_config(name, **overrides)
    model = build_model(config, pretrained=pretrained)
    model.config = {"name": name, **config.to_dict(), "weights": None}
    return model
