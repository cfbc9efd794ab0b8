"""Explicit (materialised) self-attention over positions: the "SA" row of the paper's Table 3.

Paper: Geng et al., ICLR 2021, Table 3 (SA: 1.00M params, 292 GMACs at 1 x 512 x 128 x 128,
i.e. four C x C projections and an n x n attention map). Attention: Vaswani et al., 2017.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..layers import LayerType
from ._context import AttentionProjections, check_feature_map


class SelfAttention2d(AttentionProjections):
    """Single-head self-attention that materialises the ``n x n`` map, as a residual block.

    ``Q, K, V = W_q X, W_k X, W_v X`` (full width ``C``), ``A = softmax(Q^T K / sqrt(C))``
    (``n x n``, softmax over the keys), ``Y = X + norm(W_o V A^T)``.

    With ``bias=False`` (default) the block has ``4 C^2`` weights plus the norm's parameters;
    ``bias=True`` adds ``4 C``. Forward cost in matmul FLOPs (2 per multiply-add) for one
    sample: ``2 (4 n C^2 + 2 n^2 C)``; memory grows with ``n^2``.

    Args:
        channels: ``C``, input and output channels.
        bias: add biases to the four 1x1 projections.
        norm_layer: norm after the output projection (``"batch"``, ``"group"``, ``"none"`` or a
            callable ``norm(C)``).

    Shape:
        ``(B, C, H, W)`` -> same shape (``n = H W``).
    """

    def __init__(
        self,
        channels: int,
        *,
        bias: bool = False,
        norm_layer: LayerType = "batch",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(channels, bias=bias, norm_layer=norm_layer, device=device, dtype=dtype)

    def attention(self, x: Tensor) -> Tensor:
        """The attention branch before the norm, ``W_o V A^T``, shape ``(B, C, n)``."""
        check_feature_map(x, self.channels)
        q = self.query(x).flatten(2)  # (B, C, n)
        k = self.key(x).flatten(2)
        v = self.value(x).flatten(2)
        logits = torch.bmm(q.transpose(1, 2), k) / math.sqrt(self.channels)  # (B, n, n)
        attn = logits.softmax(dim=-1)
        out = torch.bmm(v, attn.transpose(1, 2))  # (B, C, n)
        return self.proj(out.unsqueeze(-1)).flatten(2)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.norm(self.attention(x).reshape(x.shape))

    def extra_repr(self) -> str:
        return f"{self.channels}, bias={self.bias}"
