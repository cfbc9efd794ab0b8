"""Non-local block (embedded Gaussian), the classic attention-style context module.

Paper: Wang et al., "Non-local Neural Networks", CVPR 2018, Sec. 3.2-3.3 and Fig. 2.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..layers import LayerType, get_norm_layer
from ..utils import check_positive_int
from ._context import check_feature_map


class NonLocal2d(nn.Module):
    """Embedded-Gaussian non-local block: ``Y = X + norm(W_z g(X) softmax(theta(X)^T phi(X))^T)``.

    ``theta``, ``phi`` and ``g`` are 1x1 convolutions ``C -> C'`` (``C' = C // reduction``,
    ``C / 2`` in the paper), the pairwise map is ``softmax_j(theta_i^T phi_j)`` (no
    ``1 / sqrt(C')`` scaling, as in the paper), and ``W_z`` maps ``C' -> C`` before the norm.
    With ``zero_init=True`` (the paper's choice) the norm's scale starts at zero, so the block is
    the identity at initialisation. Matmul FLOPs of one forward, one sample:
    ``2 (4 n C C' + 2 n^2 C')``, i.e. ``2 (2 n C^2 + n^2 C)`` for ``C' = C / 2``.

    Args:
        channels: ``C``, input and output channels.
        reduction: ``C / C'``; must divide ``channels`` unless ``inter_channels`` is given.
        inter_channels: ``C'`` directly (overrides ``reduction``).
        bias: biases on the four 1x1 convolutions (the paper's code uses them).
        zero_init: initialise the norm's scale to zero (identity block at init). Ignored when the
            norm has no affine weight.
        norm_layer: norm after ``W_z`` (``"batch"``, ``"group"``, ``"none"`` or a callable).

    Shape:
        ``(B, C, H, W)`` -> same shape.
    """

    def __init__(
        self,
        channels: int,
        *,
        reduction: int = 2,
        inter_channels: int | None = None,
        bias: bool = True,
        zero_init: bool = True,
        norm_layer: LayerType = "batch",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        if inter_channels is None:
            check_positive_int("reduction", reduction)
            inter_channels = max(channels // reduction, 1)
        self.inter_channels = check_positive_int("inter_channels", inter_channels)
        self.zero_init = bool(zero_init)
        dd = {"device": device, "dtype": dtype}
        self.theta = nn.Conv2d(channels, inter_channels, 1, bias=bias, **dd)
        self.phi = nn.Conv2d(channels, inter_channels, 1, bias=bias, **dd)
        self.g = nn.Conv2d(channels, inter_channels, 1, bias=bias, **dd)
        self.proj = nn.Conv2d(inter_channels, channels, 1, bias=bias, **dd)
        self.norm = get_norm_layer(norm_layer, 2)(channels, **dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Zero the norm's scale (and shift) when ``zero_init``; otherwise keep defaults."""
        weight = getattr(self.norm, "weight", None)
        if self.zero_init and isinstance(weight, Tensor):
            nn.init.zeros_(weight)
            bias = getattr(self.norm, "bias", None)
            if isinstance(bias, Tensor):
                nn.init.zeros_(bias)

    def forward(self, x: Tensor) -> Tensor:
        check_feature_map(x, self.channels)
        theta = self.theta(x).flatten(2)  # (B, C', n)
        phi = self.phi(x).flatten(2)
        g = self.g(x).flatten(2)
        attn = torch.bmm(theta.transpose(1, 2), phi).softmax(dim=-1)  # (B, n, n)
        y = torch.bmm(g, attn.transpose(1, 2))  # (B, C', n)
        y = self.proj(y.reshape(x.shape[0], self.inter_channels, *x.shape[2:]))
        return x + self.norm(y)

    def extra_repr(self) -> str:
        return f"{self.channels}, inter_channels={self.inter_channels}, zero_init={self.zero_init}"

    def no_weight_decay(self) -> set[str]:
        """With ``zero_init`` the norm's scale and shift gate the block (identity at init); weight decay must not
        pull them to zero (the timm ``no_weight_decay`` contract, read by
        :func:`hamburger.training.optim.param_groups`)."""
        if not self.zero_init:
            return set()
        return {f"norm.{name}" for name, _ in self.norm.named_parameters(recurse=False)}
