"""The two baseline context blocks of issue 13: the global-average-pool block ("gap") and the identity ham."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hamburger.blocks import CONTEXT_BLOCKS, GlobalPoolContext2d, Hamburger, HamOptions, create_context_block
from hamburger.blocks.identity_ham import IdentityHam
from hamburger.models import create_model
from hamburger.solvers import SOLVERS, create_solver

C = 8


def _x(b: int = 2, c: int = C, h: int = 7, w: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------- gap
def test_gap_is_registered_and_starts_as_identity_with_a_gate_or_a_zero_last_conv():
    assert "gap" in CONTEXT_BLOCKS and "identity_ham" in CONTEXT_BLOCKS
    x = _x().requires_grad_()
    for gate_init in (0.0, None):
        block = create_context_block("gap", C, gate_init=gate_init)
        out = block(x)
        assert torch.equal(out, x)
        out.square().sum().backward()
        # it can leave the identity: the gate (or the zero W_2) gets a non-zero gradient at init
        moving = block.gate if gate_init is not None else block.expand.weight
        assert moving.grad is not None and moving.grad.abs().sum() > 0
    assert GlobalPoolContext2d(C).no_weight_decay() == {"gate"}
    assert GlobalPoolContext2d(C, gate_init=None).no_weight_decay() == set()


@pytest.mark.parametrize("norm_layer", ["none", "batch"])
def test_gap_matches_the_hand_built_formula(norm_layer):
    torch.manual_seed(1)
    block = GlobalPoolContext2d(C, hidden_channels=6, norm_layer=norm_layer, gate_init=0.7, out_act="relu")
    if norm_layer == "batch":  # eval mode with non-trivial running statistics
        block.norm.running_mean.uniform_(-1, 1)
        block.norm.running_var.uniform_(0.5, 2)
        block.norm.weight.data.uniform_(0.5, 1.5)
        block.norm.bias.data.uniform_(-0.5, 0.5)
    block.eval()
    x = _x(h=9, w=4)
    x64 = x.double()
    pooled = x64.mean(dim=(2, 3))  # (B, C)
    hidden = pooled @ block.reduce.weight.double()[:, :, 0, 0].T + block.reduce.bias.double()
    if norm_layer == "batch":
        n = block.norm
        hidden = (hidden - n.running_mean.double()) / torch.sqrt(n.running_var.double() + n.eps)
        hidden = hidden * n.weight.double() + n.bias.double()
    vector = 0.7 * (hidden.relu() @ block.expand.weight.double()[:, :, 0, 0].T)  # (B, C)
    expected = (x64 + vector[:, :, None, None]).relu()
    torch.testing.assert_close(block(x).double(), expected, rtol=1e-5, atol=1e-5)


def test_gap_branch_is_the_same_at_every_position_and_in_a_tiny_model():
    block = GlobalPoolContext2d(C, norm_layer="group", gate_init=0.5).eval()
    x = _x(h=11, w=3)
    delta = block(x) - x
    assert torch.allclose(delta, delta[:, :, :1, :1].expand_as(delta), atol=1e-6)
    assert delta.abs().sum() > 0
    model = create_model("tiny_ham", context="gap").eval()
    assert isinstance(model.head.context, GlobalPoolContext2d)
    assert isinstance(model.head.context.norm, torch.nn.GroupNorm)  # the head's norm
    assert model(torch.randn(2, 3, 67, 53))["out"].shape == (2, 11, 67, 53)


def test_gap_argument_errors():
    with pytest.raises(TypeError, match="channels must be a positive int"):
        GlobalPoolContext2d(2.0)
    with pytest.raises(ValueError, match="hidden_channels must be a positive int"):
        GlobalPoolContext2d(4, hidden_channels=0)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 4, H, W\)"):
        GlobalPoolContext2d(4)(torch.randn(1, 3, 2, 2))


# ---------------------------------------------------------------------------------------------- identity ham
def test_identity_ham_is_a_block_option_not_a_solver():
    assert "identity" not in SOLVERS
    with pytest.raises(ValueError, match="unknown ham"):
        create_solver("identity")
    opts = HamOptions(ham="identity", rank=4, version="v2+")
    assert HamOptions.from_dict(opts.to_dict()) == opts
    assert isinstance(opts.build_solver(), IdentityHam)
    with pytest.raises(ValueError, match="rank must be an int >= 1"):
        HamOptions(ham="identity", rank=0)
    with pytest.raises(ValueError, match="inv_temp"):
        HamOptions(ham="identity", inv_temp=10.0)
    # switching a VQ block to identity drops the VQ-only option, as for any other ham
    assert HamOptions(ham="vq", inv_temp=10.0).replace(ham="identity").inv_temp is None
    # no dictionary is created, whatever init the options carry
    assert list(IdentityHam(4, init="online", channels=C).buffers()) == []


def test_identity_ham_v1_matches_the_hand_built_block():
    torch.manual_seed(2)
    block = Hamburger(C, ham="identity", version="v1", norm_layer="batch")
    bn = block.upper_norm
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    block.eval()
    assert not block.fold_upper
    x = _x(h=6, w=5)
    lower = F.relu(F.conv2d(x, block.lower_bread.weight, block.lower_bread.bias))  # ReLU as in the NMF block
    upper = F.conv2d(lower, block.upper_bread.weight)
    expected = F.relu(x + F.batch_norm(upper, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps))
    torch.testing.assert_close(block(x), expected)


def test_identity_ham_v2_plus_starts_as_identity_and_keeps_gates_and_cheese():
    block = Hamburger(C, ham="identity", version="v2+", norm_layer="none")
    x = _x().abs()  # the block ends in ReLU: non-negative input comes back unchanged at init
    assert torch.equal(block(x), x)
    with torch.no_grad():
        block.coef_ham.fill_(0.3)
        block.coef_shortcut.fill_(0.9)
    lower = F.relu(block.lower_bread(x))
    expected = F.relu(0.9 * x + 0.3 * block.upper_bread(block.cheese(lower)))
    torch.testing.assert_close(block(x), expected)


def test_identity_ham_context_in_a_tiny_model_differs_from_tiny_ham_only_in_the_decomposition():
    ham = create_model("tiny_ham")
    ident = create_model("tiny_ham", context="identity_ham")
    block = ident.head.context
    assert isinstance(block, Hamburger) and isinstance(block.ham, IdentityHam)
    ref = ham.head.context
    assert (block.version, block.gate_init, type(block.cheese[1])) == (ref.version, ref.gate_init, type(ref.cheese[1]))
    shapes = lambda m: {k: v.shape for k, v in m.state_dict().items()}  # noqa: E731
    assert shapes(ham) == shapes(ident)
    assert ident.eval()(torch.randn(1, 3, 67, 53))["out"].shape == (1, 11, 67, 53)
