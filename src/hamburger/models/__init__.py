"""Segmentation models: backbones, ``SegmentationModel``, the registry and named configurations.

Importing this package does not import timm or safetensors; they load when a timm backbone is
built or a model is saved.
"""

from . import zoo  # noqa: F401  (registers the named configurations)
from .backbones import TimmBackbone, TinyConvNet, create_backbone
from .config import ModelConfig
from .registry import create_model, get_model_config, list_models, register_model
from .segmentation import SegmentationModel, build_model, from_pretrained, save_pretrained

__all__ = [
    "ModelConfig",
    "SegmentationModel",
    "TimmBackbone",
    "TinyConvNet",
    "build_model",
    "create_backbone",
    "create_model",
    "from_pretrained",
    "get_model_config",
    "list_models",
    "register_model",
    "save_pretrained",
]
