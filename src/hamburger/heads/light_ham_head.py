"""LightHamHead, the Light-Ham / SegNeXt decoder.

Selected backbone stages are resized to the finest selected one and concatenated, then
1x1 squeeze -> Hamburger -> 1x1 align -> dropout -> 1x1 classifier, GroupNorm(32) throughout.
Reference code consulted: Enjoy-Hamburger ``seg_light_ham/mmseg/models/decode_heads/ham_head.py``
and mmsegmentation ``mmseg/models/decode_heads/ham_head.py`` (``LightHamHead``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..blocks import HamOptions
from ..layers import ConvNormAct, LayerType
from ._common import ContextType, as_channel_list, build_context, check_index, init_head_weights, select_features
from .registry import register_head


@register_head("light_ham")
class LightHamHead(nn.Module):
    """Multi-level Hamburger head (Light-Ham, the SegNeXt decoder).

    Args:
        in_channels: channels of every backbone feature map.
        num_classes: number of output classes.
        in_index: which feature maps to use (default all); the first selected one sets the
            output resolution (official: stages 2-4, strides 8, 16, 32).
        channels: width after ``align`` (official 256 for T/S, 512 for B, 1024 for L).
        ham_channels: width of the squeeze and of the context block (official = ``channels``).
        dropout: ``Dropout2d`` probability before the classifier.
        norm_layer, act_layer: official GroupNorm(32) and ReLU.
        align_corners: of the bilinear resizing of the coarser levels.
        context: ``"hamburger"``, another registered context-block name or a callable
            ``channels -> nn.Module`` (the baseline heads).
        ham: the Hamburger's options, a solver name or a :class:`~hamburger.blocks.HamOptions`;
            ``**ham_options`` override its fields (the official head is NMF, V1 structure, rank 64 (16 for
            the 256-wide heads), 6 / 7 steps, and it back-propagates through every step: ``grad_mode="bptt"``).

    Shape:
        ``features``: a list of ``(B, in_channels[i], H_i, W_i)``; output
        ``(B, num_classes, H, W)`` at the resolution of the first selected feature map.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        *,
        in_index: int | Sequence[int] | None = None,
        channels: int = 512,
        ham_channels: int = 512,
        dropout: float = 0.1,
        norm_layer: LayerType = "group",
        act_layer: LayerType = "relu",
        align_corners: bool = False,
        context: ContextType = "hamburger",
        ham: str | HamOptions = "nmf",
        **ham_options: Any,
    ) -> None:
        super().__init__()
        self.in_channels = as_channel_list(in_channels)
        n = len(self.in_channels)
        indices = range(n) if in_index is None else ((in_index,) if isinstance(in_index, int) else in_index)
        if isinstance(indices, int) or not len(indices):
            raise ValueError(f"in_index must be a non-empty sequence of feature indices or None, got {in_index!r}")
        self.in_index = [check_index("in_index", i, n) for i in indices]
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes, self.align_corners, self.context_name = num_classes, bool(align_corners), context
        cna: dict[str, Any] = {"norm_layer": norm_layer, "act_layer": act_layer}
        self.squeeze = ConvNormAct(sum(self.in_channels[i] for i in self.in_index), ham_channels, 1, **cna)
        self.ham_options = HamOptions.coerce(ham, **ham_options)
        self.context = build_context(context, ham_channels, ham=self.ham_options, norm_layer=norm_layer)
        self.align = ConvNormAct(ham_channels, channels, 1, **cna)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        for m in (self.squeeze, self.align):
            init_head_weights(m, self.classifier)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        levels = select_features(features, self.in_index, self.in_channels)
        size = levels[0].shape[2:]
        levels = [levels[0]] + [
            F.interpolate(f, size=size, mode="bilinear", align_corners=self.align_corners) for f in levels[1:]
        ]
        x = self.squeeze(torch.cat(levels, dim=1))
        return self.classifier(self.dropout(self.align(self.context(x))))

    def extra_repr(self) -> str:
        return f"in_index={self.in_index}, num_classes={self.num_classes}"
