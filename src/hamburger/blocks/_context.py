"""Shared plumbing of the context-module zoo: the input check of a feature map and the projections
every attention block starts from."""

from __future__ import annotations

from torch import Tensor, nn

from ..layers import LayerType, get_norm_layer
from ..utils import check_positive_int


def check_feature_map(x: object, channels: int) -> tuple[int, int]:
    """Validate a ``(B, C, H, W)`` input; return ``(B, n)`` with ``n = H W`` the number of positions."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"x must have shape (B, {channels}, H, W), got {tuple(x.shape)}")
    return x.shape[0], x.shape[2] * x.shape[3]


class AttentionProjections(nn.Module):
    """Base of the attention blocks: full-width ``query``, ``key``, ``value`` and output (``proj``)
    1x1 convolutions (``4 C^2`` weights) and the ``norm`` after the output projection.

    Args:
        channels: ``C``; must be divisible by ``heads``.
        heads: number of heads the subclass splits ``C`` into.
        bias: biases on the four projections.
        norm_layer: norm after the output projection (``"batch"``, ``"group"``, ``"none"`` or a callable).
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

    def extra_repr(self) -> str:
        return f"{self.channels}, heads={self.heads}, bias={self.bias}"
