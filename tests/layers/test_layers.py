"""hamburger.layers: the norm / activation / conv factories, group_norm's divisor rule, ConvNormAct."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hamburger.layers import (
    ConvNormAct,
    get_act_layer,
    get_conv_layer,
    get_norm_layer,
    group_norm,
    spectral_norm_conv,
)


@pytest.mark.parametrize(
    ("name", "cls"),
    [("relu", nn.ReLU), ("gelu", nn.GELU), ("silu", nn.SiLU), ("leaky_relu", nn.LeakyReLU), ("none", nn.Identity)],
)
def test_act_names(name, cls):
    assert type(get_act_layer(name)()) is cls


def test_act_none_callable_and_leaky_slope():
    assert type(get_act_layer(None)()) is nn.Identity
    assert get_act_layer(nn.Tanh) is nn.Tanh
    assert get_act_layer("leaky_relu")().negative_slope == 0.2


@pytest.mark.parametrize(("dims", "cls"), [(1, nn.BatchNorm1d), (2, nn.BatchNorm2d), (3, nn.BatchNorm3d)])
def test_norm_names_per_dims(dims, cls):
    norm = get_norm_layer("batch", dims)(12)
    assert type(norm) is cls and norm.num_features == 12
    group = get_norm_layer("group", dims)(64)
    assert type(group) is nn.GroupNorm and group.num_groups == 32
    assert type(get_norm_layer("none", dims)(8)) is nn.Identity
    assert type(get_norm_layer(None, dims)(8)) is nn.Identity


@pytest.mark.parametrize(("channels", "groups"), [(64, 32), (48, 16), (24, 8), (20, 4), (7, 1), (96, 32), (3, 1)])
def test_group_norm_uses_the_largest_common_divisor(channels, groups):
    norm = group_norm(channels)
    assert norm.num_groups == groups and channels % norm.num_groups == 0
    assert group_norm(channels, num_groups=6).num_groups == {64: 2, 48: 6, 24: 6, 20: 2, 7: 1, 96: 6, 3: 3}[channels]


@pytest.mark.parametrize(("dims", "cls"), [(1, nn.Conv1d), (2, nn.Conv2d), (3, nn.Conv3d)])
def test_conv_names_per_dims(dims, cls):
    assert get_conv_layer("conv", dims) is cls and get_conv_layer(None, dims) is cls
    spectral = get_conv_layer("spectral", dims)(4, 6, 3)
    assert isinstance(spectral, cls) and hasattr(spectral, "parametrizations")


def test_spectral_conv_has_unit_spectral_norm():
    torch.manual_seed(0)
    conv = spectral_norm_conv(8, 16, 1)
    for _ in range(20):  # power iterations run in training-mode forwards
        conv(torch.randn(2, 8, 5, 5))
    conv.eval()
    sigma = torch.linalg.matrix_norm(conv.weight.detach().reshape(16, -1), ord=2)
    assert sigma.item() == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize(
    ("factory", "argument"),
    [(get_norm_layer, "norm_layer"), (get_act_layer, "act_layer"), (get_conv_layer, "conv_layer")],
)
def test_factory_errors_name_the_argument(factory, argument):
    with pytest.raises(ValueError, match=rf"unknown {argument} 'bogus'"):
        factory("bogus")
    with pytest.raises(TypeError, match=rf"{argument} must be a name, a callable or None, got int"):
        factory(3)


@pytest.mark.parametrize("factory", [get_norm_layer, get_conv_layer])
def test_spatial_dims_error(factory):
    with pytest.raises(ValueError, match="spatial_dims must be 1, 2 or 3, got 4"):
        factory(None, 4)
    with pytest.raises(ValueError, match="spatial_dims must be 1, 2 or 3, got 0"):
        spectral_norm_conv(2, 2, 1, spatial_dims=0)


def test_conv_norm_act_order_padding_and_bias():
    block = ConvNormAct(5, 8, 3, dilation=2, norm_layer="group", act_layer="gelu")
    assert [type(m) for m in block] == [nn.Conv2d, nn.GroupNorm, nn.GELU]
    conv = block[0]
    assert conv.bias is None and conv.padding == (2, 2) and conv.dilation == (2, 2)
    x = torch.randn(2, 5, 13, 11)
    out = block(x)
    assert out.shape == (2, 8, 13, 11)
    torch.testing.assert_close(out, block[2](block[1](block[0](x))))
    plain = ConvNormAct(5, 8, 1, norm_layer=None, act_layer=None, spatial_dims=1)
    assert [type(m) for m in plain] == [nn.Conv1d, nn.Identity, nn.Identity] and plain[0].bias is not None


def test_conv_norm_act_rejects_even_kernels():
    with pytest.raises(ValueError, match="kernel_size must be odd, got 2"):
        ConvNormAct(4, 4, 2)
