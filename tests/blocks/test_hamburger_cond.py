"""Conditioning a Hamburger block: a conditional norm after the upper bread (v1) or in the cheese (v2)."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from hamburger.blocks import Hamburger
from hamburger.layers import ConditionalBatchNorm, is_conditional


def _cbn(num_classes: int = 3):
    return functools.partial(ConditionalBatchNorm, num_classes=num_classes)


def test_conditional_batch_norm_is_bn_times_class_gain_plus_bias():
    torch.manual_seed(0)
    norm = ConditionalBatchNorm(4, 3)
    assert is_conditional(norm) and not is_conditional(nn.BatchNorm2d(4))
    x = torch.randn(5, 4, 7, 3)
    labels = torch.tensor([0, 2, 1, 2, 0])
    reference = nn.BatchNorm2d(4, affine=False)(x)
    torch.testing.assert_close(norm(x, labels), reference)  # gains 1, biases 0 at init
    with torch.no_grad():
        norm.gain.weight.copy_(torch.arange(12.0).reshape(3, 4))
        norm.bias.weight.copy_(-torch.arange(12.0).reshape(3, 4))
    gain, bias = norm.gain.weight[labels], norm.bias.weight[labels]
    expected = reference * gain[:, :, None, None] + bias[:, :, None, None]
    torch.testing.assert_close(norm(x, labels), expected)
    onehot = nn.functional.one_hot(labels, 3).float()  # class weights give the same as indices
    torch.testing.assert_close(norm(x, onehot), expected)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_block_norm_uses_the_labels(version):
    torch.manual_seed(0)
    block = Hamburger(8, rank=4, version=version, norm_layer=_cbn(), out_act=None)
    assert block.takes_cond
    norm = block.upper_norm if version == "v1" else block.cheese[1]
    assert isinstance(norm, ConditionalBatchNorm)
    with torch.no_grad():  # class 1 doubles, class 2 zeroes the normalised branch
        norm.gain.weight[1].fill_(2.0)
        norm.gain.weight[2].fill_(0.0)
    block.eval()  # fixed dictionary and running statistics: the same branch for every label
    x = torch.randn(3, 8, 5, 6)
    branch = {c: block(x, cond=torch.full((3,), c)) - x for c in range(3)}
    # v1: the norm ends the branch; v2: it is followed by ReLU and the bias-free upper bread, which are
    # positively homogeneous. Either way gain 2 doubles the branch and gain 0 removes it.
    assert branch[0].abs().max() > 1e-3
    torch.testing.assert_close(branch[1], 2 * branch[0])
    torch.testing.assert_close(branch[2], torch.zeros_like(x))
    mixed = block(x, cond=torch.tensor([0, 1, 2])) - x  # per sample
    for i in range(3):
        torch.testing.assert_close(mixed[i], branch[i][i])


def test_cond_errors_are_clear():
    plain = Hamburger(8, rank=4)
    with pytest.raises(ValueError, match="not conditional"):
        plain(torch.rand(2, 8, 4, 4), cond=torch.tensor([0, 1]))
    cond = Hamburger(8, rank=4, norm_layer=_cbn())
    with pytest.raises(ValueError, match="pass cond"):
        cond(torch.rand(2, 8, 4, 4))
    with pytest.raises(ValueError, match=r"shape \(B,\) = \(2,\)"):
        cond(torch.rand(2, 8, 4, 4), cond=torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="dtype torch.bool"):
        cond(torch.rand(2, 8, 4, 4), cond=torch.tensor([True, False]))
