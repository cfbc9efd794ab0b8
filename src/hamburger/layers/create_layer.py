"""Name -> layer factories for norms, activations and convolutions (a dict lookup, no if-chains).

A ``LayerType`` is a name from the tables below, a class, or any callable that builds the
module: ``norm_layer(num_channels, device=..., dtype=...)``, ``act_layer()`` and
``conv_layer(in_channels, out_channels, kernel_size, *, padding=..., bias=..., device=...,
dtype=...)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from ..utils import check_int

LayerType = str | type[nn.Module] | Callable[..., nn.Module] | None

_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BATCH_NORMS = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_ACTS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": functools.partial(nn.LeakyReLU, 0.2),
    "none": nn.Identity,
}


def _check_dims(spatial_dims: int) -> int:
    check_int("spatial_dims", spatial_dims)
    if spatial_dims not in _CONVS:
        raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims!r}")
    return spatial_dims


def group_norm(num_channels: int, *, num_groups: int = 32, **kwargs) -> nn.GroupNorm:
    """GroupNorm with ``num_groups`` reduced to a divisor of ``num_channels`` when needed."""
    return nn.GroupNorm(math.gcd(num_groups, num_channels), num_channels, **kwargs)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a channels-first tensor ``(B, C, *spatial)``: each token (pixel) is
    normalised on its own, so unlike BatchNorm no statistic is shared between tokens or samples."""

    def __init__(self, num_channels: int, *, eps: float = 1e-5, **kwargs) -> None:
        super().__init__(num_channels, eps=eps, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


def get_norm_layer(norm_layer: LayerType, spatial_dims: int = 2) -> Callable[..., nn.Module]:
    """``"batch"``, ``"group"`` (32 groups, the Light-Ham head), ``"layer"`` (per-token LayerNorm over the
    channels, :class:`ChannelLayerNorm`), ``"none"``/None, or a callable."""
    _check_dims(spatial_dims)
    if norm_layer is None or norm_layer == "none":
        return lambda num_channels, **kwargs: nn.Identity()
    if isinstance(norm_layer, str):
        table: dict[str, Callable[..., nn.Module]] = {
            "batch": _BATCH_NORMS[spatial_dims],
            "group": group_norm,
            "layer": ChannelLayerNorm,
        }
        if norm_layer not in table:
            choices = sorted(table) + ["none"]
            raise ValueError(f"unknown norm_layer {norm_layer!r}; choose from {choices} or pass a callable")
        return table[norm_layer]
    if callable(norm_layer):
        return norm_layer
    raise TypeError(f"norm_layer must be a name, a callable or None, got {type(norm_layer).__name__}")


def get_act_layer(act_layer: LayerType) -> Callable[[], nn.Module]:
    """``"relu"``, ``"gelu"``, ``"silu"``, ``"leaky_relu"`` (slope 0.2), ``"none"``/None, or a callable."""
    if act_layer is None:
        return nn.Identity
    if isinstance(act_layer, str):
        if act_layer not in _ACTS:
            raise ValueError(f"unknown act_layer {act_layer!r}; choose from {sorted(_ACTS)} or pass a callable")
        return _ACTS[act_layer]
    if callable(act_layer):
        return act_layer
    raise TypeError(f"act_layer must be a name, a callable or None, got {type(act_layer).__name__}")


def spectral_norm_conv(*args, spatial_dims: int = 2, **kwargs) -> nn.Module:
    """A convolution wrapped in spectral normalisation (the GAN breads)."""
    return spectral_norm(_CONVS[_check_dims(spatial_dims)](*args, **kwargs))


def get_conv_layer(conv_layer: LayerType, spatial_dims: int = 2) -> Callable[..., nn.Module]:
    """``"conv"`` (plain), ``"spectral"`` (spectral-norm conv), or a callable."""
    _check_dims(spatial_dims)
    if conv_layer is None or conv_layer == "conv":
        return _CONVS[spatial_dims]
    if conv_layer == "spectral":
        return functools.partial(spectral_norm_conv, spatial_dims=spatial_dims)
    if isinstance(conv_layer, str):
        raise ValueError(f"unknown conv_layer {conv_layer!r}; choose from ['conv', 'spectral'] or pass a callable")
    if callable(conv_layer):
        return conv_layer
    raise TypeError(f"conv_layer must be a name, a callable or None, got {type(conv_layer).__name__}")
