"""HamHead, the HamNet decoder: squeeze -> context block -> align -> (concat input) -> classifier.

Paper: Geng et al., ICLR 2021, Sec. 4 (semantic segmentation). Reference code consulted:
Enjoy-Hamburger ``seg/HamNet/network.py`` (VOC: 3x3 squeeze 2048->512, Hamburger V2, 3x3 align
512->256, Dropout2d(0.1), 1x1 classifier) and ``seg_mm/mmseg/models/decode_heads/ham_head.py``
(ADE20K: GroupNorm, align 512->512, ``concat_input`` with a 3x3 ``conv_cat``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..blocks import HamOptions
from ..layers import ConvNormAct, LayerType
from ._common import ContextType, as_channel_list, build_context, check_index, init_head_weights, select_features
from .registry import register_head


@register_head("ham")
class HamHead(nn.Module):
    """The HamNet segmentation head on one backbone feature map.

    ``squeeze`` (k x k conv-norm-act, ``C_in -> ham_channels``) -> context block (Hamburger by
    default) -> ``align`` (k x k conv-norm-act, ``ham_channels -> channels``) -> optionally
    ``conv_cat`` on ``[input, align]`` (mmseg's ``concat_input``, HamNet+) -> dropout -> 1x1
    classifier.

    Args:
        in_channels: channels of every backbone feature map (an int for a single map).
        num_classes: number of output classes.
        in_index: which feature map the head reads (default the last).
        channels: width after ``align`` (official VOC 256, mmseg 512).
        ham_channels: width of the context block (official 512).
        kernel_size: kernel of ``squeeze``, ``align`` and ``conv_cat`` (official 3).
        concat_input: concatenate the input feature before the classifier (mmseg HamNet+).
        dropout: ``Dropout2d`` probability before the classifier.
        norm_layer, act_layer: norm and activation of every conv-norm-act and of the block.
        context: ``"hamburger"``, another registered context-block name (``"none"``, attention
            baselines) or a callable ``channels -> nn.Module``.
        ham: the Hamburger's options: a solver name or a :class:`~hamburger.blocks.HamOptions`
            (ignored for other contexts); ``**ham_options`` override its fields (``rank=16``, ...).

    Shape:
        ``features``: a list of ``(B, in_channels[i], H_i, W_i)`` (or one tensor);
        output ``(B, num_classes, H, W)`` at the resolution of ``features[in_index]``.
    """

    def __init__(
        self,
        in_channels: int | Sequence[int],
        num_classes: int,
        *,
        in_index: int = -1,
        channels: int = 512,
        ham_channels: int = 512,
        kernel_size: int = 3,
        concat_input: bool = False,
        dropout: float = 0.1,
        norm_layer: LayerType = "batch",
        act_layer: LayerType = "relu",
        context: ContextType = "hamburger",
        ham: str | HamOptions = "nmf",
        **ham_options: Any,
    ) -> None:
        super().__init__()
        self.in_channels = as_channel_list(in_channels)
        self.in_index = check_index("in_index", in_index, len(self.in_channels))
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes, self.concat_input, self.context_name = num_classes, bool(concat_input), context
        c_in = self.in_channels[self.in_index]
        cna: dict[str, Any] = {"norm_layer": norm_layer, "act_layer": act_layer}
        self.squeeze = ConvNormAct(c_in, ham_channels, kernel_size, **cna)
        self.ham_options = HamOptions.coerce(ham, **ham_options)
        self.context = build_context(context, ham_channels, ham=self.ham_options, norm_layer=norm_layer)
        self.align = ConvNormAct(ham_channels, channels, kernel_size, **cna)
        self.conv_cat = ConvNormAct(c_in + channels, channels, kernel_size, **cna) if concat_input else None
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        for m in (self.squeeze, self.align, self.conv_cat):
            if m is not None:
                init_head_weights(m, self.classifier)

    def forward(self, features: Tensor | Sequence[Tensor]) -> Tensor:
        (x,) = select_features(features, [self.in_index], self.in_channels)
        out = self.align(self.context(self.squeeze(x)))
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.classifier(self.dropout(out))

    def extra_repr(self) -> str:
        return f"in_index={self.in_index}, num_classes={self.num_classes}, concat_input={self.concat_input}"
