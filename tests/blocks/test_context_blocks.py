"""The context-module zoo: contract, parameter counts, reference computations, determinism."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hamburger.blocks import (
    CONTEXT_BLOCKS,
    EMAttention2d,
    LinearAttention2d,
    NonLocal2d,
    SDPAttention2d,
    SelfAttention2d,
    create_context_block,
)

ZOO = ["self_attention", "non_local", "sdpa", "linear", "em"]
C = 16


def _x(b: int = 2, c: int = C, h: int = 5, w: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def _zero_norm(block: torch.nn.Module) -> None:
    torch.nn.init.zeros_(block.norm.weight)
    torch.nn.init.zeros_(block.norm.bias)


def test_registry_keeps_existing_names_and_adds_the_zoo():
    assert {"hamburger", "none", *ZOO} <= set(CONTEXT_BLOCKS)
    with pytest.raises(ValueError, match="unknown context block"):
        create_context_block("transformer", C)
    with pytest.raises(TypeError, match="context block name must be a str, got NoneType None"):
        create_context_block(None, C)


@pytest.mark.parametrize("name", ZOO)
def test_contract_shape_grad_and_no_nan(name):
    torch.manual_seed(0)
    block = create_context_block(name, C)
    x = _x().requires_grad_()
    y = block(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in block.parameters())
    assert str(C) in block.extra_repr()


@pytest.mark.parametrize("name", ZOO)
def test_eval_is_deterministic_and_batch_independent(name):
    torch.manual_seed(0)
    block = create_context_block(name, C).eval()
    x = _x(b=3)
    with torch.no_grad():
        y1, y2 = block(x), block(x)
        y_single = block(x[1:2])
    assert torch.equal(y1, y2)
    torch.testing.assert_close(y1[1:2], y_single, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ZOO)
def test_bad_input_names_the_shape(name):
    block = create_context_block(name, C)
    with pytest.raises(ValueError, match=r"\(B, 16, H, W\)"):
        block(torch.randn(1, C + 1, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, 16, H, W\)"):
        block(torch.randn(1, C, 16))


def test_bad_arguments():
    with pytest.raises(ValueError, match="divisible by heads"):
        SDPAttention2d(12, heads=8)
    with pytest.raises(ValueError, match="divisible by heads"):
        LinearAttention2d(12, heads=5)
    with pytest.raises(TypeError, match="channels"):
        SelfAttention2d(16.0)
    with pytest.raises(ValueError, match="channels"):
        NonLocal2d(0)
    with pytest.raises(ValueError, match="momentum"):
        EMAttention2d(C, momentum=1.5)
    # wrong type -> TypeError, right type but bad value -> ValueError, everywhere
    for factory, error, match in [
        (lambda: NonLocal2d(16.0), TypeError, "channels must be a positive int, got float 16.0"),
        (lambda: NonLocal2d(C, reduction=2.0), TypeError, "reduction must be a positive int, got float"),
        (lambda: NonLocal2d(C, inter_channels=0), ValueError, "inter_channels must be a positive int, got 0"),
        (lambda: SDPAttention2d(C, heads=2.0), TypeError, "heads must be a positive int, got float 2.0"),
        (lambda: LinearAttention2d(0), ValueError, "channels must be a positive int, got 0"),
        (lambda: EMAttention2d(C, bases=8.0), TypeError, "bases must be a positive int, got float 8.0"),
        (lambda: EMAttention2d(C, stages=0), ValueError, "stages must be a positive int, got 0"),
        (lambda: EMAttention2d(C, momentum="0.1"), TypeError, "momentum must be a finite number in"),
        (lambda: EMAttention2d(C, momentum=float("nan")), ValueError, "momentum must be a finite number in"),
    ]:
        with pytest.raises(error, match=match):
            factory()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"kernel_size": 3.0}, TypeError, "kernel_size must be a positive int, got float 3.0"),
        ({"kernel_size": 2}, ValueError, "kernel_size must be odd, got 2"),
        ({"dilation": 0}, ValueError, "dilation must be a positive int, got 0"),
        ({"out_channels": 4.0}, TypeError, "out_channels must be a positive int, got float"),
        ({"spatial_dims": 2.0}, TypeError, "spatial_dims must be an int, got float 2.0"),
        ({"spatial_dims": 4}, ValueError, "spatial_dims must be 1, 2 or 3, got 4"),
        ({"norm_layer": 3}, TypeError, "norm_layer must be a name, a callable or None, got int"),
    ],
)
def test_layer_argument_errors(kwargs, error, match):
    from hamburger.layers import ConvNormAct

    args = {"in_channels": 4, "out_channels": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(error, match=match):
        ConvNormAct(args.pop("in_channels"), args.pop("out_channels"), args.pop("kernel_size"), **args)


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (lambda: SelfAttention2d(C), 4 * C * C + 2 * C),
        (lambda: SelfAttention2d(C, bias=True), 4 * C * C + 4 * C + 2 * C),
        (lambda: SelfAttention2d(C, norm_layer="none"), 4 * C * C),
        (lambda: SDPAttention2d(C), 4 * C * C + 2 * C),
        (lambda: LinearAttention2d(C), 4 * C * C + 2 * C),
        (lambda: NonLocal2d(C), 4 * C * (C // 2) + 3 * (C // 2) + C + 2 * C),
        (lambda: EMAttention2d(C), 2 * C * C + C + 2 * C),
    ],
)
def test_parameter_counts(factory, expected):
    assert sum(p.numel() for p in factory().parameters()) == expected


def test_paper_table3_sa_params_are_one_mebi():
    block = SelfAttention2d(512, norm_layer="none", device="meta")
    assert sum(p.numel() for p in block.parameters()) / 2**20 == 1.0


def _w(conv: torch.nn.Conv2d) -> torch.Tensor:
    return conv.weight.flatten(1)  # (C_out, C_in)


def test_self_attention_matches_explicit_formula():
    torch.manual_seed(1)
    block = SelfAttention2d(C).eval()
    x = _x()
    xm = x.flatten(2)  # (B, C, n)
    q, k, v = (_w(c) @ xm for c in (block.query, block.key, block.value))
    attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(C), dim=-1)
    branch = (_w(block.proj) @ (v @ attn.transpose(1, 2))).reshape(x.shape)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x + block.norm(branch), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("heads", [1, 4])
def test_sdpa_block_equals_explicit_softmax_attention(heads):
    torch.manual_seed(2)
    block = SDPAttention2d(C, heads=heads, bias=True).eval()
    x = _x()
    b, n, dh = x.shape[0], x.shape[2] * x.shape[3], C // heads
    proj = [_w(c) @ x.flatten(2) + c.bias[:, None] for c in (block.query, block.key, block.value)]
    q, k, v = (t.reshape(b, heads, dh, n) for t in proj)
    attn = torch.softmax(q.transpose(2, 3) @ k / math.sqrt(dh), dim=-1)  # (B, h, n, n)
    out = (v @ attn.transpose(2, 3)).reshape(b, C, n)
    branch = (_w(block.proj) @ out + block.proj.bias[:, None]).reshape(x.shape)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x + block.norm(branch), rtol=1e-5, atol=1e-5)


def test_sdpa_with_one_head_equals_self_attention_with_same_weights():
    torch.manual_seed(3)
    sa = SelfAttention2d(C).eval()
    sdpa = SDPAttention2d(C, heads=1).eval()
    sdpa.load_state_dict(sa.state_dict())
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(sdpa(x), sa(x), rtol=1e-5, atol=1e-5)


def test_linear_attention_matches_explicit_formula():
    torch.manual_seed(4)
    heads = 2
    block = LinearAttention2d(C, heads=heads).eval()
    x = _x()
    b, n, dh = x.shape[0], x.shape[2] * x.shape[3], C // heads
    q, k, v = ((_w(c) @ x.flatten(2)).reshape(b, heads, dh, n) for c in (block.query, block.key, block.value))
    q, k = q.softmax(dim=2), k.softmax(dim=3)
    out = torch.einsum("bhdn,bhen,bhdm->bhem", k, v, q).reshape(b, C, n)  # (K V^T)^T Q per head
    branch = (_w(block.proj) @ out).reshape(x.shape)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x + block.norm(branch), rtol=1e-5, atol=1e-5)


def test_non_local_matches_explicit_formula_and_is_identity_at_init():
    torch.manual_seed(5)
    block = NonLocal2d(C).eval()
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)  # zero-initialised norm scale
        torch.nn.init.ones_(block.norm.weight)
        xm = x.flatten(2)
        theta, phi, g = (_w(c) @ xm + c.bias[:, None] for c in (block.theta, block.phi, block.g))
        attn = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)
        y = (_w(block.proj) @ (g @ attn.transpose(1, 2)) + block.proj.bias[:, None]).reshape(x.shape)
        torch.testing.assert_close(block(x), x + block.norm(y), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["self_attention", "sdpa", "linear", "em"])
def test_zero_norm_makes_the_block_the_residual(name):
    block = create_context_block(name, C)
    _zero_norm(block)
    x = _x().abs()  # non-negative, so EM's output ReLU is the identity on it too
    torch.testing.assert_close(block(x), x)


def test_em_bases_moving_average_in_training_and_frozen_in_eval():
    torch.manual_seed(6)
    block = EMAttention2d(C, bases=8, stages=3, momentum=0.9)
    mu0 = block.mu.clone()
    torch.testing.assert_close(mu0.norm(dim=1), torch.ones(1, 8))
    block(_x())
    moved = block.mu.clone()
    assert not torch.allclose(moved, mu0)
    torch.testing.assert_close(moved.norm(dim=1), torch.ones(1, 8))
    block.eval()
    with torch.no_grad():
        block(_x(seed=1))
    assert torch.equal(block.mu, moved)


def _em_final_bases(block: EMAttention2d, x: torch.Tensor) -> torch.Tensor:
    """The bases after ``stages`` EM iterations, per sample, by the paper's recursion: (B, C, k)."""
    with torch.no_grad():
        f = block.conv_in(x).flatten(2)  # (B, C, n)
        mu = block.mu.expand(x.shape[0], -1, -1)
        for _ in range(block.stages):
            z = torch.softmax(f.transpose(1, 2) @ mu, dim=2)
            mu = F.normalize(f @ (z / (1e-6 + z.sum(1, keepdim=True))), dim=1)
    return mu


@pytest.mark.parametrize("momentum", [0.25, 1.0, 0.0])
def test_em_momentum_is_the_fraction_of_the_new_bases(momentum):
    """``momentum`` follows the solvers (and BatchNorm): mu_0 <- normalise((1 - m) mu_0 + m mean_B(mu))."""
    torch.manual_seed(8)
    block = EMAttention2d(C, bases=4, stages=2, momentum=momentum)
    x = _x(b=3)
    mu0 = block.mu.clone()
    expected = F.normalize((1 - momentum) * mu0 + momentum * _em_final_bases(block, x).mean(0, keepdim=True), dim=1)
    block(x)
    torch.testing.assert_close(block.mu, expected, rtol=1e-5, atol=1e-6)


def test_em_default_momentum_is_the_papers_moving_average():
    """The default keeps the paper's average (0.9 of the old bases), now written as momentum=0.1."""
    torch.manual_seed(9)
    block = EMAttention2d(C, bases=4, stages=2)
    assert block.momentum == 0.1 and "momentum=0.1" in block.extra_repr()
    x = _x(b=2)
    mu0 = block.mu.clone()
    expected = F.normalize(0.9 * mu0 + 0.1 * _em_final_bases(block, x).mean(0, keepdim=True), dim=1)
    block(x)
    torch.testing.assert_close(block.mu, expected, rtol=1e-5, atol=1e-6)


def test_em_follows_the_em_recursion():
    torch.manual_seed(7)
    block = EMAttention2d(C, bases=4, stages=2, norm_layer="none", out_act="none").eval()
    x = _x(b=1)
    with torch.no_grad():
        f = block.conv_in(x).flatten(2)[0]  # (C, n)
        mu = block.mu[0]
        for _ in range(2):
            z = torch.softmax(f.T @ mu, dim=1)
            mu = F.normalize(f @ (z / (1e-6 + z.sum(0))), dim=0)
        z = torch.softmax(f.T @ mu, dim=1)
        expected = x + block.conv_out(torch.relu(mu @ z.T).reshape(x.shape))
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ZOO)
def test_meta_device_and_dtype_kwargs(name):
    block = create_context_block(name, C, device="meta", dtype=torch.float64)
    assert all(p.device.type == "meta" and p.dtype == torch.float64 for p in block.parameters())
