"""Linear ("efficient") attention: two softmaxes instead of one, cost linear in ``n``.

Paper: Shen et al., "Efficient Attention: Attention with Linear Complexities", WACV 2021,
Sec. 3 (softmax of the queries over the feature dimension, of the keys over the positions).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..layers import LayerType
from ._context import AttentionProjections, check_feature_map


class LinearAttention2d(AttentionProjections):
    """Efficient attention ``(softmax_n(K) V^T)^T softmax_C(Q)`` as a residual block.

    Per head, with ``Q, K, V`` of shape ``(C/h, n)``: ``G = softmax_n(K) V^T`` is a
    ``(C/h) x (C/h)`` global context matrix and the output is ``G^T softmax_C(Q)``; nothing of
    size ``n x n`` is formed. Projections as :class:`~hamburger.blocks.SelfAttention2d` (four
    ``C x C`` 1x1 convolutions). ``Y = X + norm(W_o concat_h(...))``. Matmul FLOPs of one
    forward, one sample: ``2 (4 n C^2 + 2 n C^2 / heads)``.

    Args:
        channels: ``C``, input and output channels; must be divisible by ``heads``.
        heads: number of heads (1 = one global context matrix of size ``C x C``).
        bias: biases on the four projections.
        norm_layer: norm after the output projection.

    Shape:
        ``(B, C, H, W)`` -> same shape.
    """

    def __init__(
        self,
        channels: int,
        *,
        heads: int = 1,
        bias: bool = False,
        norm_layer: LayerType = "batch",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(channels, heads=heads, bias=bias, norm_layer=norm_layer, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        b, n = check_feature_map(x, self.channels)
        shape = (b * self.heads, self.channels // self.heads, n)
        q = self.query(x).reshape(shape).softmax(dim=1)  # over features
        k = self.key(x).reshape(shape).softmax(dim=2)  # over positions
        v = self.value(x).reshape(shape)
        context = torch.bmm(k, v.transpose(1, 2))  # (bh, C/h, C/h) = K V^T
        out = torch.bmm(context.transpose(1, 2), q)  # (bh, C/h, n)
        return x + self.norm(self.proj(out.reshape(x.shape)))
