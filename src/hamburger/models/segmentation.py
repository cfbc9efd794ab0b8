"""SegmentationModel: backbone -> head (+ auxiliary head), logits upsampled to the input size.

Follows torchvision's ``_SimpleSegmentationModel``: the model returns a dict, and the loss lives
in the recipe (``out`` + weighted ``aux``), never in the model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SegmentationModel", "aligned_size"]


def aligned_size(size: int, divisor: int, *, align_corners: bool = False) -> int:
    """The smallest input length ``>= size`` at which a stride-``divisor`` model's logits line up with the pixels.

    With ``align_corners=False`` (half-pixel upsampling) that is a multiple of ``divisor``: ``n * s`` pixels
    give ``n`` feature cells of exactly ``s`` pixels each. With ``align_corners=True`` (corner-aligned
    upsampling, official VOC HamNet) it is ``n * s + 1``: the ``n + 1`` feature cells sit on pixels
    ``0, s, ..., n * s``, the DeepLab convention behind crops such as 513 and 769. Any other length stretches the
    upsampled logits by a factor that is not ``s`` and shifts them by an amount that grows across the image.
    """
    if align_corners:
        return -(-max(size - 1, 0) // divisor) * divisor + 1
    return -(-size // divisor) * divisor


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
        ``"aux"`` of the same shape when ``aux_head`` is given. The logits line up with the pixels when
        ``H`` and ``W`` are :func:`aligned <aligned_size>` to :attr:`output_stride` (a multiple of it, or a
        multiple plus one with ``align_corners=True``); :meth:`predict` and the recipe's inference pad to such
        a size and crop the logits back, so callers of those need not care.
    """

    def __init__(
        self, backbone: nn.Module, head: nn.Module, aux_head: nn.Module | None = None, *, align_corners: bool = False
    ) -> None:
        super().__init__()
        self.backbone, self.head, self.aux_head = backbone, head, aux_head
        self.align_corners = bool(align_corners)
        self.config: dict[str, Any] | None = None  # set by create_model; used by save_pretrained

    @property
    def output_stride(self) -> int | None:
        """Stride of the coarsest feature map the backbone returns (``max(backbone.reductions)``), e.g. 8 for the
        dilated HamNet ResNets and ``tiny_*``, 32 for Light-Ham on stages 2-4.

        Inputs padded to a multiple of it (see :func:`aligned_size`) give logits aligned with the pixels. ``None``
        when the backbone does not declare ``reductions``; inference then falls back to 32.
        """
        reductions = getattr(self.backbone, "reductions", None)
        if not reductions:
            return None
        return int(max(reductions))

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

    def predict(self, x: Tensor) -> Tensor:
        """Class index per pixel, ``(B, H, W)``, of a normalised batch ``x`` at any ``H`` x ``W``.

        Runs in eval mode under ``torch.inference_mode`` whatever the module's mode, and restores ``.training``
        afterwards: BatchNorm statistics are not updated, dropout is off, and two calls give the same result.
        ``x`` is zero-padded at the bottom/right to a size :func:`aligned <aligned_size>` to
        :attr:`output_stride` (32 when unknown) and the logits are cropped back to ``H`` x ``W``.
        """
        self._check_input(x)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                h, w = x.shape[-2:]
                divisor = self.output_stride or 32
                hp = aligned_size(h, divisor, align_corners=self.align_corners)
                wp = aligned_size(w, divisor, align_corners=self.align_corners)
                if (hp, wp) != (h, w):
                    x = F.pad(x, (0, wp - w, 0, hp - h))
                return self.forward(x)["out"][..., :h, :w].argmax(dim=1)
        finally:
            self.train(was_training)

    # ---------------------------------------------------------------- save / load (safetensors)
    def save_pretrained(self, directory: str) -> None:
        """Write ``model.safetensors`` and ``config.json`` to ``directory`` (atomically)."""
        from .hub import save_pretrained

        save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, name_or_path: str, **overrides: Any) -> SegmentationModel:
        """Rebuild a model saved by :meth:`save_pretrained` (a directory, or a hub id online), in eval mode."""
        from .hub import from_pretrained

        return from_pretrained(name_or_path, **overrides)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload ``save_pretrained``'s files to the Hugging Face Hub (needs huggingface_hub)."""
        from .hub import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)
