"""Global-average-pool context: the trivial global-context baseline of the context zoo.

A squeeze-excitation-like *additive* block (Hu et al., 2018, but added, not multiplied): every position gets the
same vector, computed from the spatial mean of the map. It is the cheapest module that carries global context
at all, so a context block that does no better than it uses no more than the image-wide average (issue 13:
the NMF head on the context variant scores about what this block scores).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..layers import LayerType, get_act_layer, get_norm_layer
from ..utils import check_float, check_positive_int
from ._context import check_feature_map


class GlobalPoolContext2d(nn.Module):
    """``out = out_act(x + g * W_2 act(norm(W_1 mean_hw(x))))``, the pooled vector broadcast over positions.

    ``mean_hw`` averages each channel over the ``n = H W`` positions; ``W_1`` (``C -> hidden``, with bias) and
    ``W_2`` (``hidden -> C``, no bias) are 1x1 convolutions on the ``(B, C, 1, 1)`` vector, ``norm`` and ``act``
    act on it. The block starts as the identity (``out_act`` aside): with a gate ``g`` (a learnable scalar,
    ``gate_init=0.0``, like the V2+ Hamburger's ``g_ham``) the branch is multiplied by 0 at init; with
    ``gate_init=None`` there is no gate and ``W_2`` is zero-initialised instead.

    Args:
        channels: ``C``, input and output channels.
        hidden_channels: width of the pooled vector (default ``C``: ``2 C^2`` weights, as the two breads of a
            Hamburger of width ``C``).
        norm_layer: norm of the pooled ``(B, hidden, 1, 1)`` vector (``"batch"``: in training it needs a batch
            of more than one sample, ``"group"``, ``"layer"``, ``"none"`` or a callable).
        act_layer: activation after the norm.
        gate_init: initial value of the gate ``g``; None: no gate, zero-initialised ``W_2``.
        out_act: activation after the residual sum (default None: none; ``"relu"`` as the Hamburger's).

    Shape:
        ``(B, C, H, W)`` -> same shape.
    """

    def __init__(
        self,
        channels: int,
        *,
        hidden_channels: int | None = None,
        norm_layer: LayerType = "batch",
        act_layer: LayerType = "relu",
        gate_init: float | None = 0.0,
        out_act: LayerType = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        hidden = channels if hidden_channels is None else check_positive_int("hidden_channels", hidden_channels)
        self.hidden_channels = hidden
        dd = {"device": device, "dtype": dtype}
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=True, **dd)
        self.norm = get_norm_layer(norm_layer, 2)(hidden, **dd)
        self.act = get_act_layer(act_layer)()
        self.expand = nn.Conv2d(hidden, channels, 1, bias=False, **dd)
        self.out_act = get_act_layer(out_act)()
        self.gate_init = None if gate_init is None else check_float("gate_init", gate_init)
        self.gate = None if gate_init is None else nn.Parameter(torch.full((1,), float(gate_init), **dd))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan_out, ReLU) convolutions, zero bias, norms (1, 0); ``W_2 = 0`` without a gate."""
        nn.init.kaiming_normal_(self.reduce.weight, mode="fan_out", nonlinearity="relu")
        if self.reduce.bias is not None:
            nn.init.zeros_(self.reduce.bias)
        if self.gate is None:
            nn.init.zeros_(self.expand.weight)
        else:
            nn.init.kaiming_normal_(self.expand.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(self.gate, float(self.gate_init or 0.0))
        for m in self.norm.modules():
            if isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def branch(self, x: Tensor) -> Tensor:
        """The gated context vector ``g * W_2 act(norm(W_1 mean_hw(x)))``, ``(B, C, 1, 1)``."""
        pooled = x.mean(dim=(2, 3), keepdim=True)
        out = self.expand(self.act(self.norm(self.reduce(pooled))))
        return out if self.gate is None else self.gate * out

    def forward(self, x: Tensor) -> Tensor:
        check_feature_map(x, self.channels)
        return self.out_act(x + self.branch(x))

    def extra_repr(self) -> str:
        return f"{self.channels}, hidden_channels={self.hidden_channels}, gate_init={self.gate_init}"

    def no_weight_decay(self) -> set[str]:
        """The gate ``g`` (where present), which weight decay must not pull to zero."""
        return {"gate"} if self.gate is not None else set()
