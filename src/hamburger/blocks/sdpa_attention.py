"""Multi-head self-attention through ``torch.nn.functional.scaled_dot_product_attention``.

The fair attention baseline: PyTorch picks a fused kernel (flash / memory-efficient on CUDA,
a blocked flash kernel on CPU) that never stores the ``n x n`` map, so its memory is linear in
``n`` while its FLOPs stay quadratic. Attention: Vaswani et al., 2017.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..layers import LayerType
from ._context import AttentionProjections, check_feature_map


class SDPAttention2d(AttentionProjections):
    """Multi-head attention over positions with fused SDPA kernels, as a residual block.

    Same projections as :class:`~hamburger.blocks.SelfAttention2d` (four ``C x C`` 1x1
    convolutions), split into ``heads`` heads of width ``C / heads``; each head computes
    ``softmax(Q_h^T K_h / sqrt(C / heads)) V_h``. ``Y = X + norm(W_o concat_h(...))``.
    Matmul FLOPs of one forward, one sample: ``2 (4 n C^2 + 2 n^2 C)`` (independent of
    ``heads``).

    Args:
        channels: ``C``, input and output channels; must be divisible by ``heads``.
        heads: number of attention heads.
        bias: biases on the four projections.
        norm_layer: norm after the output projection (``"batch"``, ``"group"``, ``"none"`` or a
            callable).

    Shape:
        ``(B, C, H, W)`` -> same shape.
    """

    def __init__(
        self,
        channels: int,
        *,
        heads: int = 8,
        bias: bool = False,
        norm_layer: LayerType = "batch",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(channels, heads=heads, bias=bias, norm_layer=norm_layer, device=device, dtype=dtype)

    def _split(self, t: Tensor) -> Tensor:
        b = t.shape[0]
        # contiguous heads: on CPU, SDPA falls back to materialising every n x n map for strided inputs
        return t.reshape(b, self.heads, self.channels // self.heads, -1).transpose(2, 3).contiguous()  # (B, h, n, C/h)

    def forward(self, x: Tensor) -> Tensor:
        b, _ = check_feature_map(x, self.channels)
        q, k, v = (self._split(conv(x)) for conv in (self.query, self.key, self.value))
        out = F.scaled_dot_product_attention(q, k, v)  # (B, h, n, C/h)
        out = out.transpose(2, 3).reshape(x.shape)
        return x + self.norm(self.proj(out))
