"""Small reusable layers: conv-norm-act and name -> layer factories."""

from .conditional_norm import ConditionalBatchNorm, is_conditional
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
    "ConditionalBatchNorm",
    "ConvNormAct",
    "LayerType",
    "get_act_layer",
    "get_conv_layer",
    "get_norm_layer",
    "group_norm",
    "is_conditional",
    "spectral_norm_conv",
]
