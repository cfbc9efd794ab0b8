"""Mathematical invariants of the solvers (NMF monotonicity, VQ distributions, CD ridge system)."""

from __future__ import annotations

import pytest
import torch
from solver_cases import make, make_input

import reference as ref
from hamburger.solvers import functional as MF


def _objective(x, bases, coef):
    return torch.linalg.matrix_norm(x - bases @ coef.transpose(1, 2))  # ||X - D C||_F per matrix


@pytest.mark.parametrize("seed", range(3))
def test_nmf_kernels_nonnegative_and_monotone(seed):
    """Each MU half-step keeps D, C >= 0 and never increases ||X - D C||_F (Lee & Seung)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 16, 40, dtype=torch.float64, generator=g)
    bases = ref.random_bases("nmf", 3, 16, 6, generator=g)
    coef = MF.softmax_coef(x, bases, 1.0)
    previous = _objective(x, bases, coef)
    for _ in range(30):
        coef = MF.nmf_coef_step(x, bases, coef)
        after_coef = _objective(x, bases, coef)
        bases = MF.nmf_bases_step(x, bases, coef)
        after_bases = _objective(x, bases, coef)
        assert (coef >= 0).all() and (bases >= 0).all()
        assert (after_coef <= previous * (1 + 1e-12)).all()
        assert (after_bases <= after_coef * (1 + 1e-12)).all()
        previous = after_bases
    # and it actually decreased: 30 steps of rank 6 beat the initial softmax codes by a margin
    assert (previous < _objective(x, ref.random_bases("nmf", 3, 16, 6), MF.softmax_coef(x, bases, 1.0))).all()


def test_nmf_module_output_nonnegative_and_better_with_steps():
    x = torch.rand(2, 16, 6, 6, dtype=torch.float64)
    bases = ref.random_bases("nmf", 2, 16, 4)
    errors = []
    for steps in (0, 2, 8):
        out = make("nmf", steps=steps)(x, bases=bases)
        assert (out >= 0).all()
        errors.append((x - out).norm().item())
    assert errors[0] > errors[1] > errors[2]


@pytest.mark.parametrize("training", [True, False])
def test_vq_codes_are_distributions(training):
    ham = make("vq", rank=5).train(training)
    x = make_input("vq", (2, 8, 30))
    bases = ref.random_bases("vq", 2, 8, 5)
    _, coef = ham.decompose(x, bases)
    assert coef.shape == (2, 30, 5)
    assert (coef >= 0).all()
    torch.testing.assert_close(coef.sum(-1), torch.ones(2, 30, dtype=torch.float64), rtol=0, atol=1e-12)


def test_vq_step_bases_are_weighted_means():
    """D = X C with C normalised over tokens: every atom is a convex combination of the tokens."""
    x = make_input("vq", (1, 8, 30))
    bases, coef = MF.vq_step(x, ref.random_bases("vq", 1, 8, 4))
    torch.testing.assert_close(coef.sum(1), torch.ones(1, 4, dtype=torch.float64), rtol=0, atol=1e-5)
    torch.testing.assert_close(bases, x @ coef)


@pytest.mark.parametrize("ridge", [0.1, 0.01])
@pytest.mark.parametrize("steps", [0, 3])
def test_cd_codes_solve_the_ridge_system(ridge, steps):
    ham = make("cd", ridge=ridge, steps=steps)
    x = make_input("cd", (2, 8, 20))
    d_final, coef = ham.decompose(x, ref.random_bases("cd", 2, 8, 4))
    gram = d_final.transpose(1, 2) @ d_final + ridge * torch.eye(4, dtype=torch.float64)
    # (D^T D + ridge I) C = D^T X, with coef = C^T
    torch.testing.assert_close(gram @ coef.transpose(1, 2), d_final.transpose(1, 2) @ x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(d_final.norm(dim=1), torch.ones(2, 4, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("training", [True, False])
def test_cd_newton_schulz_matches_solve(dtype, training):
    x = make_input("cd", (2, 16, 5, 5), dtype=dtype)
    bases = ref.random_bases("cd", 2, 16, 8, dtype=dtype)
    solve = make("cd", rank=8).train(training)(x, bases=bases)
    newton = make("cd", rank=8, solve="newton_schulz").train(training)(x, bases=bases)
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-10}
    torch.testing.assert_close(newton, solve, **tol)


@pytest.mark.parametrize(("rank", "ridge"), [(8, 0.1), (64, 0.1), (64, 0.01), (256, 0.01)])
def test_newton_schulz_ill_conditioned(rank, ridge):
    """Nearly collapsed unit-norm atoms (condition number ~ rank / ridge): still float32 accuracy."""
    g = torch.Generator().manual_seed(1)
    atom = torch.randn(1, 32, 1, generator=g)
    bases = torch.nn.functional.normalize(atom + 1e-3 * torch.randn(1, 32, rank, generator=g), dim=1)
    x = torch.randn(1, 32, 40, generator=g)
    exact = MF.ridge_coef(x.double(), bases.double(), ridge)
    solve32 = MF.ridge_coef(x, bases, ridge).double()
    newton32 = MF.ridge_coef(x, bases, ridge, method="newton_schulz").double()
    error_solve = (solve32 - exact).norm() / exact.norm()
    error_newton = (newton32 - exact).norm() / exact.norm()
    assert error_newton < max(10 * error_solve, 1e-5)


def test_spd_inverse_float64():
    a = torch.randn(3, 6, 6, dtype=torch.float64)
    spd = a @ a.transpose(1, 2) + 0.1 * torch.eye(6, dtype=torch.float64)
    inverse = MF.spd_inverse(spd, iters=60)
    torch.testing.assert_close(inverse @ spd, torch.eye(6, dtype=torch.float64).expand(3, 6, 6), rtol=0, atol=1e-9)
