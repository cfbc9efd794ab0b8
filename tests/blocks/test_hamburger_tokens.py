"""HamburgerTokens for sequences: branch-only mode, LayerNorm, and padding masks (issue 12)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hamburger as hb
from hamburger.layers import ChannelLayerNorm, get_norm_layer

HAMS = ("nmf", "vq", "cd")
VERSIONS = ("v1", "v2", "v2+")
LENGTHS = (7, 4, 9)


def _padded(lengths=LENGTHS, channels=16, fill=100.0, seed=0):
    """A padded batch (B, N, C) with garbage ``fill`` in the padding, and its (B, N) mask."""
    g = torch.Generator().manual_seed(seed)
    n = max(lengths)
    x = 3 * torch.randn(len(lengths), n, channels, generator=g)
    mask = torch.arange(n)[None] < torch.tensor(lengths)[:, None]
    return x.masked_fill(~mask[..., None], fill), mask


def _tokens(ham, version="v2", **kwargs):
    extra = {"gate_init": 0.5} if version == "v2+" else {}  # a non-zero gate, or the branch would be 0
    return hb.HamburgerTokens(16, ham=ham, rank=4, steps=3, version=version, **extra, **kwargs)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("ham", HAMS)
def test_mask_real_tokens_equal_unpadded_sequence_alone(ham, version):
    tokens = _tokens(ham, version).eval()
    x, mask = _padded()
    with torch.no_grad():
        out = tokens(x, mask)
        unmasked = tokens(x)
        for i, n in enumerate(LENGTHS):
            alone = tokens(x[i : i + 1, :n])[0]
            torch.testing.assert_close(out[i, :n], alone, rtol=1e-5, atol=1e-5)
            if n < max(LENGTHS):  # without the mask the padding changes the real tokens' outputs
                assert (unmasked[i, :n] - alone).abs().max() > 1e-2
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("ham", HAMS)
def test_mask_in_the_solver_alone(ham):
    """The solvers themselves: ``ham(x, mask=...)`` on (B, C, N) equals each sequence decomposed alone."""
    solver = hb.create_solver(ham, rank=4, steps=4).eval()
    x, mask = _padded(fill=0.0)  # zero padding: still changes VQ's and CD's means without the mask
    x = x.abs().transpose(1, 2)  # (B, C, N), non-negative for NMF
    out = solver(x, mask=mask)
    for i, n in enumerate(LENGTHS):
        torch.testing.assert_close(out[i, :, :n], solver(x[i : i + 1, :, :n])[0], rtol=1e-5, atol=1e-5)
    if ham == "vq":  # the soft assignment is normalised over the tokens: zeros alone are not enough
        assert (solver(x)[1, :, :4] - solver(x[1:2, :, :4])[0]).abs().max() > 1e-3


@pytest.mark.parametrize("ham", HAMS)
def test_mask_in_training_with_layer_norm_and_gradients(ham):
    """Training mode, per-token LayerNorm, online dictionary: outputs and input gradients of the real tokens
    equal those of each sequence alone, and no gradient reaches the padding."""
    tokens = _tokens(ham, "v2", norm_layer="layer", init="online").train()
    x, mask = _padded()
    x.requires_grad_(True)
    out = copy.deepcopy(tokens)(x, mask)  # a copy: the online dictionary moves on every training forward
    weights = torch.randn_like(out)
    (out * weights * mask[..., None]).sum().backward()
    assert torch.equal(x.grad[~mask], torch.zeros_like(x.grad[~mask]))
    for i, n in enumerate(LENGTHS):
        xi = x.detach()[i : i + 1, :n].clone().requires_grad_(True)
        alone = copy.deepcopy(tokens)(xi)
        (alone * weights[i : i + 1, :n]).sum().backward()
        torch.testing.assert_close(out[i, :n], alone[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(x.grad[i, :n], xi.grad[0], rtol=1e-4, atol=1e-5)


def test_mask_checks():
    tokens = _tokens("nmf")
    x, mask = _padded()
    with pytest.raises(ValueError, match=r"mask must have shape \(B, N\) = \(3, 9\), got \(3, 8\)"):
        tokens(x, mask[:, :8])
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        tokens(x, mask.float())
    with pytest.raises(TypeError, match="mask must be a torch.Tensor"):
        tokens(x, mask.tolist())
    dual = hb.HamburgerTokens(16, ham="nmf", rank=4, version="v2+", dual=True)
    with pytest.raises(ValueError, match="not supported with dual=True"):
        dual(x, mask)
    with pytest.raises(ValueError, match="mask needs spatial=True"):
        hb.NMF(4, spatial=False)(x.abs().transpose(1, 2), mask=mask)
    with pytest.raises(TypeError, match="branch_only must be a bool"):
        hb.HamburgerTokens(16, branch_only=1)


@pytest.mark.parametrize("ham", HAMS)
def test_branch_only_is_the_context_branch(ham):
    full = hb.HamburgerTokens(16, ham=ham, rank=4, version="v1", out_act=None).eval()
    branch = copy.deepcopy(full)
    branch.branch_only = True
    x = torch.randn(2, 11, 16)
    with torch.no_grad():
        torch.testing.assert_close(full(x), x + branch(x))  # no residual and no output activation in branch-only
        assert (branch(x) - x).abs().max() > 0.1
    # v2+ (zero gate): the branch is exactly zero at step 0, so a transformer block x + tokens(x) starts as x
    zero = hb.HamburgerTokens(16, ham=ham, rank=4, version="v2+", branch_only=True)
    assert torch.equal(zero(x), torch.zeros_like(x))
    assert "branch_only=True" in repr(zero)


def test_layer_norm_option():
    tokens = hb.HamburgerTokens(16, ham="vq", rank=4, version="v2", norm_layer="layer")
    norms = [m for m in tokens.modules() if isinstance(m, ChannelLayerNorm)]
    assert len(norms) == 1 and not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in tokens.modules())
    norm = get_norm_layer("layer", 1)(8)
    with torch.no_grad():
        norm.weight.uniform_()
        norm.bias.uniform_()
    for shape in ((2, 8, 5), (2, 8, 3, 4)):
        x = torch.randn(shape)
        expected = F.layer_norm(x.movedim(1, -1), (8,), norm.weight, norm.bias).movedim(-1, 1)
        torch.testing.assert_close(norm(x), expected)
    # per token: in training a sequence's output does not depend on the others in the batch (BatchNorm's does);
    # an online dictionary, so that both calls start from the same one
    x = torch.randn(2, 6, 16)
    for norm_layer, independent in (("layer", True), ("batch", False)):
        tokens = hb.HamburgerTokens(16, ham="vq", rank=4, version="v2", norm_layer=norm_layer, init="online").train()
        with torch.no_grad():
            both, alone = copy.deepcopy(tokens)(x)[:1], copy.deepcopy(tokens)(x[:1])
        assert torch.allclose(both, alone, rtol=1e-5, atol=1e-5) == independent
