"""SegmentationModel: backbone -> head (+ auxiliary head), logits upsampled to the input size.

Follows torchvision's ``_SimpleSegmentationModel``: the model returns a dict, and the loss lives
in the recipe (``out`` + weighted ``aux``), never in the model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SegmentationModel(nn.Module):
    """Backbone + decode head (+ optional auxiliary head).

    Args:
        backbone: maps images to a list of feature maps; its ``in_channels`` attribute, when
            present, is checked against the input.
        head: maps the feature list to logits (``HamHead``, ``LightHamHead``, ...).
        aux_head: optional second head on the same features (the auxiliary FCN loss).
        align_corners: of the final bilinear upsampling (official VOC HamNet: True).

    Shape:
        ``x``: ``(B, in_channels, H, W)``; returns ``{"out": (B, num_classes, H, W)}`` plus
        ``"aux"`` of the same shape when ``aux_head`` is given.
    """

    def __init__(
        self, backbone: nn.Module, head: nn.Module, aux_head: nn.Module | None = None, *, align_corners: bool = False
    ) -> None:
        super().__init__()
        self.backbone, self.head, self.aux_head = backbone, head, aux_head
        self.align_corners = bool(align_corners)
        self.config: dict[str, Any] | None = None  # set by create_model; used by save_pretrained

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        expected = getattr(self.backbone, "in_channels", None)
        if x.dim() != 4 or (expected is not None and x.shape[1] != expected):
            c = expected if expected is not None else "C"
            raise ValueError(f"x must have shape (B, {c}, H, W), got {tuple(x.shape)}")

    def _resize(self, logits: Tensor, size: tuple[int, int]) -> Tensor:
        if tuple(logits.shape[-2:]) == tuple(size):
            return logits
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=self.align_corners)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        self._check_input(x)
        size = (x.shape[-2], x.shape[-1])
        features = self.backbone(x)
        if isinstance(features, Tensor):
            features = [features]
        elif isinstance(features, dict):
            features = list(features.values())
        result = {"out": self._resize(self.head(features), size)}
        if self.aux_head is not None:
            result["aux"] = self._resize(self.aux_head(features), size)
        return result

    @torch.inference_mode()
    def predict(self, x: Tensor) -> Tensor:
        """Class index per pixel, ``(B, H, W)``, in inference mode (call ``eval()`` first)."""
        return self.forward(x)["out"].argmax(dim=1)

    # ---------------------------------------------------------------- save / load (safetensors)
    def save_pretrained(self, directory: str) -> None:
        """Write ``model.safetensors`` and ``config.json`` to ``directory`` (atomically)."""
        from .hub import save_pretrained

        save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, name_or_path: str, **overrides: Any) -> SegmentationModel:
        """Rebuild a model saved by :meth:`save_pretrained` (a directory, or a hub id online)."""
        from .hub import from_pretrained

        return from_pretrained(name_or_path, **overrides)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload ``save_pretrained``'s files to the Hugging Face Hub (needs huggingface_hub)."""
        from .hub import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)
