"""Small reusable layers: conv-norm-act and name -> layer factories."""

from .conv_norm_act import ConvNormAct
from .create_layer import (
    ChannelLayerNorm,
    LayerType,
    get_act_layer,
    get_conv_layer,
    get_norm_layer,
    group_norm,
    spectral_norm_conv,
)

__all__ = [
    "ChannelLayerNorm",
    "ConvNormAct",
    "LayerType",
    "get_act_layer",
    "get_conv_layer",
    "get_norm_layer",
    "group_norm",
    "spectral_norm_conv",
]
