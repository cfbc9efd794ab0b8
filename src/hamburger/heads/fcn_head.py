"""FCNHead, the auxiliary head of HamNet (mmseg ``FCNHead``: conv-norm-act x N -> classifier)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..layers import ConvNormAct, LayerType
from ._common import as_channel_list, check_index, init_head_weights, select_features
from .registry import register_head


@register_head("fcn")
class FCNHead(nn.Module):
    """Plain fully convolutional head, used for the auxiliary loss on an intermediate stage.

    Args:
        in_channels: channels of every backbone feature map (an int for a single map).
        num_classes: number of output classes.
        in_index: which feature map the head reads (official aux head: stage 3, 1024 channels).
        channels: width of the conv layers (official 256).
        num_convs: number of k x k conv-norm-act layers (official aux head: 1).
        kernel_size: their kernel size.
        concat_input: concatenate the input before the classifier through a ``conv_cat`` layer.
        dropout: ``Dropout2d`` probability before the classifier.
        norm_layer, act_layer: norm and activation of the conv layers.

    Shape:
        ``features``: a list of ``(B, in_channels[i], H_i, W_i)`` (or one tensor); output
        ``(B, num_classes, H, W)`` at the resolution of ``features[in_index]``.
    """

    def __init__(
        self,
        in_channels: int | Sequence[int],
        num_classes: int,
        *,
        in_index: int = -1,
        channels: int = 256,
        num_convs: int = 1,
        kernel_size: int = 3,
        concat_input: bool = False,
        dropout: float = 0.1,
        norm_layer: LayerType = "batch",
        act_layer: LayerType = "relu",
    ) -> None:
        super().__init__()
        self.in_channels = as_channel_list(in_channels)
        self.in_index = check_index("in_index", in_index, len(self.in_channels))
        if isinstance(num_convs, bool) or not isinstance(num_convs, int) or num_convs < 1:
            raise ValueError(f"num_convs must be an int >= 1, got {num_convs!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = num_classes
        c_in = self.in_channels[self.in_index]
        cna: dict[str, Any] = {"norm_layer": norm_layer, "act_layer": act_layer}
        widths = [c_in] + [channels] * num_convs
        pairs = zip(widths, widths[1:], strict=False)
        self.convs = nn.Sequential(*(ConvNormAct(a, b, kernel_size, **cna) for a, b in pairs))
        self.conv_cat = ConvNormAct(c_in + channels, channels, kernel_size, **cna) if concat_input else None
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        init_head_weights(self, self.classifier)

    def forward(self, features: Tensor | Sequence[Tensor]) -> Tensor:
        (x,) = select_features(features, [self.in_index], self.in_channels)
        out = self.convs(x)
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.classifier(self.dropout(out))

    def extra_repr(self) -> str:
        return f"in_index={self.in_index}, num_classes={self.num_classes}"
