"""Multi-head self-attention through ``torch.nn.functional.scaled_dot_product_attention``.

The fair attention baseline: PyTorch picks a fused kernel (flash / memory-efficient on CUDA,
a blocked flash kernel on CPU) that never stores the ``n x n`` map, so its memory is linear in
``n`` while its FLOPs stay quadratic. Attention: Vaswani et al., 2017.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import LayerType, get_norm_layer
from ._context import check_feature_map, check_positive_int


class SDPAttention2d(nn.Module):
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
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.heads = check_positive_int("heads", heads)
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.bias = bool(bias)
        dd = {"device": device, "dtype": dtype}
        self.query = nn.Conv2d(channels, channels, 1, bias=bias, **dd)
        self.key = nn.Conv2d(channels, channels, 1, bias=bias, **dd)
        self.value = nn.Conv2d(channels, channels, 1, bias=bias, **dd)
        self.proj = nn.Conv2d(channels, channels, 1, bias=bias, **dd)
        self.norm = get_norm_layer(norm_layer, 2)(channels, **dd)

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

    def extra_repr(self) -> str:
        return f"{self.channels}, heads={self.heads}, bias={self.bias}"
