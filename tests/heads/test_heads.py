"""HamHead, LightHamHead and FCNHead: structure, shapes, context swapping, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hamburger.blocks import CONTEXT_BLOCKS, Hamburger
from hamburger.heads import FCNHead, HamHead, LightHamHead

BASELINES = ["none", "self_attention", "non_local", "sdpa", "linear", "em", "gap"]
SMALL = {"channels": 32, "ham_channels": 32, "rank": 4}


def _features():
    torch.manual_seed(0)
    return [torch.randn(2, 16, 16, 16), torch.randn(2, 24, 8, 8), torch.randn(2, 40, 4, 4)]


def test_ham_head_structure_follows_the_official_hamnet():
    head = HamHead([16, 24, 40], 21, channels=32, ham_channels=64, rank=8, version="v2")
    assert head.squeeze[0].kernel_size == (3, 3) and head.squeeze[0].in_channels == 40
    assert isinstance(head.context, Hamburger) and head.context.version == "v2"
    assert head.context.ham.rank == 8 and head.align[0].out_channels == 32
    assert isinstance(head.dropout, nn.Dropout2d) and head.classifier.out_channels == 21
    assert head.conv_cat is None
    out = head(_features())
    assert out.shape == (2, 21, 4, 4)


def test_ham_head_concat_input_and_in_index():
    head = HamHead([16, 24, 40], 5, in_index=1, concat_input=True, norm_layer="group", **SMALL)
    assert head.conv_cat[0].in_channels == 24 + 32
    assert head(_features()).shape == (2, 5, 8, 8)


def test_light_ham_head_resizes_levels_to_the_first_selected():
    head = LightHamHead([16, 24, 40], 7, in_index=[1, 2], **SMALL)
    assert head.squeeze[0].in_channels == 24 + 40 and head.squeeze[0].kernel_size == (1, 1)
    assert isinstance(head.squeeze[1], nn.GroupNorm) and isinstance(head.context.upper_norm, nn.GroupNorm)
    assert head(_features()).shape == (2, 7, 8, 8)
    assert LightHamHead([16, 24, 40], 7, **SMALL)(_features()).shape == (2, 7, 16, 16)


def test_light_ham_head_level_order_matters_only_through_resizing():
    # a 1-level head equals the squeeze -> context -> align -> classifier chain applied by hand
    head = LightHamHead([16], 3, **SMALL).eval()
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        manual = head.classifier(head.align(head.context(head.squeeze(x))))
        torch.testing.assert_close(head([x]), manual)


def test_fcn_head():
    head = FCNHead([16, 24, 40], 4, in_index=1, channels=8, num_convs=2, concat_input=True)
    assert len(head.convs) == 2 and head.convs[0][0].kernel_size == (3, 3)
    assert head(_features()).shape == (2, 4, 8, 8)
    assert head.classifier.weight.std() < 0.05  # N(0, 0.01) classifier init, as mmseg


@pytest.mark.parametrize("head_cls", [HamHead, LightHamHead])
@pytest.mark.parametrize("context", BASELINES)
def test_baseline_heads_differ_only_in_the_context_block(head_cls, context):
    # no skip guard: a baseline missing from the block registry must fail (see also the test below)
    ham = head_cls([16, 24, 40], 5, **SMALL)
    other = head_cls([16, 24, 40], 5, context=context, **SMALL)
    strip = lambda m: {k: v.shape for k, v in m.state_dict().items() if not k.startswith("context.")}  # noqa: E731
    assert strip(ham) == strip(other)
    assert not isinstance(other.context, Hamburger)
    out = other(_features())
    assert torch.isfinite(out).all() and out.shape[1] == 5
    out.sum().backward()
    assert all(p.grad is not None for p in other.parameters())


def test_baselines_are_exactly_the_registered_non_ham_blocks():
    assert sorted(BASELINES) == sorted(set(CONTEXT_BLOCKS) - {"hamburger", "identity_ham"})  # identity_ham: a Hamburger


def test_custom_context_callable():
    head = LightHamHead([16], 3, channels=8, ham_channels=8, context=lambda c: nn.Conv2d(c, c, 1))
    assert isinstance(head.context, nn.Conv2d)
    with pytest.raises(TypeError, match="nn.Module"):
        LightHamHead([16], 3, context=lambda c: "not a module")


def test_solver_options_are_typed_arguments():
    head = HamHead(16, 3, ham="vq", rank=5, steps=2, eval_steps=3, grad_mode="bptt", init="online", **{
        "channels": 8, "ham_channels": 8})  # fmt: skip
    ham = head.context.ham
    assert (type(ham).__name__, ham.rank, ham.steps, ham.eval_steps, ham.grad_mode, ham.init) == (
        "VQ", 5, 2, 3, "bptt", "online")  # fmt: skip
    with pytest.raises(ValueError, match="unknown ham"):
        HamHead(16, 3, ham="svd")


def test_head_input_errors():
    head = LightHamHead([16, 24, 40], 5, **SMALL)
    with pytest.raises(ValueError, match="expected 3 feature maps"):
        head(_features()[:2])
    with pytest.raises(ValueError, match=r"feature map 1 must have shape \(B, 24, H, W\)"):
        head([torch.randn(1, 16, 8, 8), torch.randn(1, 25, 4, 4), torch.randn(1, 40, 2, 2)])
    with pytest.raises(ValueError, match="in_index"):
        HamHead([16, 24], 3, in_index=2)
    with pytest.raises(ValueError, match="in_index"):
        LightHamHead([16, 24], 3, in_index=[])
    with pytest.raises(ValueError, match="num_classes"):
        FCNHead(16, 0)
    with pytest.raises(ValueError, match="in_channels"):
        HamHead([], 3)
    with pytest.raises(ValueError, match="unknown context block"):
        HamHead(16, 3, context="transformer")
