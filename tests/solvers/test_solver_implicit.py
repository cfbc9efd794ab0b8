"""``grad_mode="implicit"``: the gradient through the fixed point with a truncated Neumann series.

References are built here from the float64 kernels of ``tests/reference.py`` with explicit Jacobian matrices:
with ``z = (D, C)`` the solver state, ``F`` one step and ``L`` the loss of the output built from ``z_K = F(z_{K-1})``,
the implicit gradient with ``m`` terms is ``dL/dx = dL/dx|_z + (dF/dx)^T sum_{j<=m} (J^T)^j dL/dz_K`` with
``J = dF/dz`` at ``z_{K-1}``.
"""

from __future__ import annotations

import pytest
import torch
from solver_cases import HAMS, make, make_input, ref_options

import hamburger as hb
import reference as ref

B, D, N, R, K = 1, 6, 10, 3, 4


def _loss_weight(shape) -> torch.Tensor:
    return torch.linspace(-1.0, 1.0, int(torch.tensor(shape).prod()), dtype=torch.float64).reshape(shape)


def _library_grad(name: str, x: torch.Tensor, bases: torch.Tensor, **options) -> tuple[torch.Tensor, torch.Tensor]:
    ham = make(name, steps=options.pop("steps", K), **options).train()
    x = x.clone().requires_grad_(True)
    y = ham(x, bases=bases)
    (grad,) = torch.autograd.grad((y * _loss_weight(y.shape)).sum(), x)
    return y.detach(), grad


def _reference_grad(name: str, x: torch.Tensor, bases: torch.Tensor, *, terms: int, opts: dict) -> torch.Tensor:
    """The implicit gradient from explicit Jacobian matrices of the reference step (float64)."""
    init, step, final = ref.KERNELS[name]
    xm = ref.to_matrix(x, 1, True)
    history: list = []
    ref.decompose(name, xm, bases, steps=K - 1, history=history, **opts)
    d_prev, c_prev = history[-1]
    has_coef = c_prev is not None
    state = [d_prev] + ([c_prev] if has_coef else [])
    sizes = [t.numel() for t in state]

    def unflat(flat):
        parts = torch.split(flat, sizes)
        return [p.reshape(t.shape) for p, t in zip(parts, state, strict=True)]

    def step_flat(flat, xmat):  # F(z; x), flattened
        d, *c = unflat(flat)
        d1, c1 = step(xmat, d, c[0] if c else None, **opts)
        return torch.cat([d1.reshape(-1)] + ([c1.reshape(-1)] if has_coef else []))

    def loss(flat, xmat):  # L(z_K; x): the code step and the reconstruction
        d, *c = unflat(flat)
        out = d @ final(xmat, d, c[0] if c else None, **opts).transpose(1, 2)
        return (out.reshape(x.shape) * _loss_weight(x.shape)).sum()

    z_prev = torch.cat([t.reshape(-1) for t in state]).detach()
    z_k = step_flat(z_prev, xm).detach()
    jac_z = torch.autograd.functional.jacobian(lambda z: step_flat(z, xm), z_prev)  # J, (s, s)
    jac_x = torch.autograd.functional.jacobian(lambda xx: step_flat(z_prev, xx), xm).reshape(z_k.numel(), -1)
    grad_z, grad_x_direct = torch.autograd.grad(
        loss(z_k.requires_grad_(True), xm.requires_grad_(True)), [z_k, xm]
    )  # fmt: skip
    series = sum(torch.linalg.matrix_power(jac_z.T, j) @ grad_z for j in range(terms + 1))
    return (grad_x_direct.reshape(-1) + jac_x.T @ series).reshape(x.shape)


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("terms", [0, 1, 3])
def test_implicit_gradient_matches_explicit_neumann_reference(name, terms):
    torch.manual_seed(0)
    x = make_input(name, (B, D, 2, N // 2))
    bases = ref.random_bases(name, B, D, R)
    ham_opts = {"nmf": {}, "vq": {"inv_temp": 10.0}, "cd": {"inv_temp": 10.0, "ridge": 0.1}}[name]
    opts = {"eps": 1e-6, **ham_opts}
    _, got = _library_grad(name, x, bases, rank=R, grad_mode="implicit", grad_steps=terms, **ham_opts)
    expected = _reference_grad(name, x, bases, terms=terms, opts=opts)
    torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_zero_terms_is_truncated_one_step_and_forward_is_unchanged(name, steps):
    """Zero Neumann terms = BPTT through the last step only; the forward values equal every other mode's."""
    torch.manual_seed(1)
    x = make_input(name, (2, 8, 3, 4))
    bases = ref.random_bases(name, 2, 8, 4)
    y_imp, g_imp = _library_grad(name, x, bases, steps=steps, grad_mode="implicit", grad_steps=0)
    y_tr, g_tr = _library_grad(name, x, bases, steps=steps, grad_mode="truncated", grad_steps=1)
    y_one, _ = _library_grad(name, x, bases, steps=steps, grad_mode="one_step")
    if not (name == "nmf" and steps == 1):  # K = 1: truncated also differentiates NMF's C_0 = softmax(X^T D_0),
        torch.testing.assert_close(g_imp, g_tr, rtol=1e-9, atol=1e-12)  # which implicit takes as the state
    torch.testing.assert_close(y_imp, y_tr, rtol=0, atol=1e-12)
    torch.testing.assert_close(y_imp, y_one, rtol=0, atol=1e-12)


def test_at_a_converged_fixed_point_the_series_approaches_bptt():
    """VQ converges at inv_temp 100 in 60 steps: implicit with m terms is close to truncated BPTT through m + 1 steps,
    and both tend to the full BPTT gradient as m grows (the implicit function theorem)."""
    torch.manual_seed(0)
    x = torch.rand(2, 16, 6, 5, dtype=torch.float64)
    bases = ref.random_bases("vq", 2, 16, 4)
    _, full = _library_grad("vq", x, bases, rank=4, steps=200, grad_mode="bptt")
    errors = []
    for terms in (0, 1, 3, 10, 30):
        _, imp = _library_grad("vq", x, bases, rank=4, steps=200, grad_mode="implicit", grad_steps=terms)
        _, trunc = _library_grad("vq", x, bases, rank=4, steps=200, grad_mode="truncated", grad_steps=terms + 1)
        torch.testing.assert_close(imp, trunc, rtol=1e-9, atol=1e-11)
        errors.append(((imp - full).norm() / full.norm()).item())
    assert errors[0] > 1e-3  # the single step is a poor approximation here
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False))  # monotone improvement
    assert errors[-1] < 1e-3


def _saved_bytes(ham: hb.MatrixDecomposition, x: torch.Tensor) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        ham(x.clone().requires_grad_(True)).sum().backward()
    return total


@pytest.mark.parametrize("name", HAMS)
def test_memory_does_not_grow_with_the_steps(name):
    """The tensors autograd saves for backward: constant in K under implicit, growing under BPTT."""
    x = make_input(name, (2, 16, 8, 8))
    implicit = [_saved_bytes(make(name, steps=k, grad_mode="implicit", grad_steps=3).train(), x) for k in (3, 12)]
    bptt = [_saved_bytes(make(name, steps=k, grad_mode="bptt").train(), x) for k in (3, 12)]
    assert implicit[0] == implicit[1]
    assert bptt[1] > 2 * bptt[0]
    assert implicit[1] < bptt[1] / 3


@pytest.mark.parametrize("name", HAMS)
def test_cross_token_gradient_exists_unlike_one_step(name):
    """One token's output depends on other tokens only through the dictionary: the one-step gradient drops that
    path (exactly zero), the implicit gradient keeps it."""
    torch.manual_seed(2)
    x0 = make_input(name, (1, 8, 4, 4)).abs() + 0.1
    bases = ref.random_bases(name, 1, 8, 4)

    def cross(mode):
        ham = make(name, grad_mode=mode, grad_steps=2, **({} if name == "nmf" else {"inv_temp": 10.0})).train()
        x = x0.clone().requires_grad_(True)
        y = ham(x, bases=bases)
        (g,) = torch.autograd.grad(y[0, :, 0, 0].sum(), x)
        g = g.clone()
        g[0, :, 0, 0] = 0  # leave the token's own input out
        return g.abs().max().item()

    assert cross("one_step") == 0.0
    assert cross("implicit") > 1e-6


def test_options_and_errors():
    assert "grad_steps=0" in repr(hb.NMF(rank=4, grad_mode="implicit", grad_steps=0))
    with pytest.raises(ValueError, match="grad_steps"):
        hb.NMF(rank=4, grad_mode="truncated", grad_steps=0)
    with pytest.raises(ValueError, match="init='learned' needs grad_mode='bptt'"):
        hb.NMF(rank=4, grad_mode="implicit", init="learned", channels=8)
    with pytest.raises(ValueError, match=r"grad_mode='implicit' with grad_steps=3 needs steps >= 2, got steps=1"):
        hb.NMF(rank=4, steps=1, grad_mode="implicit", grad_steps=3)
    with pytest.raises(ValueError, match="needs steps >= 2"):  # through the block's options too
        hb.Hamburger(16, ham="vq", rank=4, steps=1, grad_mode="implicit", grad_steps=1)
    assert hb.NMF(rank=4, steps=1, grad_mode="implicit", grad_steps=0).steps == 1  # zero terms: truncated(1)
    block = hb.Hamburger(16, ham="cd", rank=4, grad_mode="implicit", grad_steps=2)
    assert block.ham.grad_mode == "implicit" and block.ham.grad_steps == 2
    out = block(torch.randn(2, 16, 5, 7))
    out.sum().backward()
    assert all(p.grad is not None for p in block.parameters() if p.requires_grad)


def test_eval_and_no_grad_are_unaffected():
    x = torch.rand(2, 8, 3, 5)
    ham = make("nmf", grad_mode="implicit", grad_steps=3)
    with torch.no_grad():
        y = ham.train()(x, bases=ref.random_bases("nmf", 2, 8, 4).float())
    assert not y.requires_grad
    ref_opts = ref_options(ham)
    assert ref_opts["eps"] == ham.eps


def test_backward_can_run_twice_with_retain_graph():
    """Diagnostics take several vector-Jacobian products of one forward (retain_graph=True)."""
    torch.manual_seed(3)
    x = torch.rand(1, 8, 3, 4, dtype=torch.float64, requires_grad=True)
    ham = make("nmf", grad_mode="implicit", grad_steps=2).train()
    y = ham(x, bases=ref.random_bases("nmf", 1, 8, 4))
    (first,) = torch.autograd.grad(y.sum(), x, retain_graph=True)
    (second,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
