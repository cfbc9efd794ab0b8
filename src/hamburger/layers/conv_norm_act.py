"""Conv -> norm -> activation, the building brick of breads, cheese and segmentation heads."""

from __future__ import annotations

from torch import nn

from ..utils import check_positive_int
from .create_layer import LayerType, get_act_layer, get_conv_layer, get_norm_layer


class ConvNormAct(nn.Sequential):
    """``conv(k x k, no bias when normalised) -> norm -> act`` with 'same' padding.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size.
        norm_layer, act_layer, conv_layer: see :mod:`hamburger.layers.create_layer`.
        spatial_dims: 1, 2 or 3.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        *,
        dilation: int = 1,
        norm_layer: LayerType = "batch",
        act_layer: LayerType = "relu",
        conv_layer: LayerType = None,
        spatial_dims: int = 2,
        device=None,
        dtype=None,
    ) -> None:
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_positive_int("dilation", dilation)
        if check_positive_int("kernel_size", kernel_size) % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        dd = {"device": device, "dtype": dtype}
        has_norm = norm_layer is not None and norm_layer != "none"
        conv = get_conv_layer(conv_layer, spatial_dims)(
            in_channels,
            out_channels,
            kernel_size,
            padding=dilation * (kernel_size // 2),
            dilation=dilation,
            bias=not has_norm,
            **dd,
        )
        norm = get_norm_layer(norm_layer, spatial_dims)(out_channels, **dd)
        super().__init__(conv, norm, get_act_layer(act_layer)())
