"""Modules agree with the float64 reference given the same initial bases."""

from __future__ import annotations

import pytest
import torch
from solver_cases import HAMS, SHAPES, make, make_input, matrix_dims, ref_options

import reference as ref


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("spatial", [True, False], ids=["spatial", "channel"])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("dims", sorted(SHAPES))
def test_module_matches_reference(name, training, spatial, groups, dims):
    shape = SHAPES[dims]
    ham = make(name, groups=groups, spatial=spatial).train(training)
    x = make_input(name, shape)
    b, d, _ = matrix_dims(shape, groups, spatial)
    bases = ref.random_bases(name, b, d, ham.rank)
    steps = ham.steps if training else ham.eval_steps
    expected = ref.reconstruct(name, x, bases, steps=steps, groups=groups, spatial=spatial, **ref_options(ham))

    out64 = ham(x, bases=bases)
    assert out64.dtype == torch.float64 and out64.shape == x.shape
    torch.testing.assert_close(out64, expected, rtol=1e-9, atol=1e-11)

    out32 = ham(x.float(), bases=bases.float())
    assert out32.dtype == torch.float32
    # inv_temp=100 amplifies float32 rounding of the cosines by ~100 per step for VQ and CD
    tol = {"rtol": 2e-5, "atol": 2e-6} if name == "nmf" else {"rtol": 1e-3, "atol": 2e-4}
    torch.testing.assert_close(out32.double(), expected, **tol)


@pytest.mark.parametrize("name", HAMS)
def test_steps_vs_eval_steps(name):
    """Training runs ``steps`` iterations, eval ``eval_steps``; they differ when the counts do."""
    ham = make(name, steps=1, eval_steps=4)
    x = make_input(name, (2, 8, 16))
    bases = ref.random_bases(name, 2, 8, ham.rank)
    opts = ref_options(ham)
    one = ref.reconstruct(name, x, bases, steps=1, **opts)
    four = ref.reconstruct(name, x, bases, steps=4, **opts)
    assert not torch.allclose(one, four)
    torch.testing.assert_close(ham.train()(x, bases=bases), one, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(ham.eval()(x, bases=bases), four, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", HAMS)
def test_zero_steps_is_code_step_only(name):
    ham = make(name, steps=0, eval_steps=0)
    x = make_input(name, (2, 8, 10))
    bases = ref.random_bases(name, 2, 8, ham.rank)
    expected = ref.reconstruct(name, x, bases, steps=0, **ref_options(ham))
    torch.testing.assert_close(ham(x, bases=bases), expected, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize(
    ("name", "options"),
    [("vq", {"inv_temp": 10.0}), ("cd", {"inv_temp": 10.0, "ridge": 0.01}), ("nmf", {"eps": 1e-3})],
)
def test_options_reach_the_kernels(name, options):
    ham = make(name, **options)
    x = make_input(name, (2, 8, 10))
    bases = ref.random_bases(name, 2, 8, ham.rank)
    expected = ref.reconstruct(name, x, bases, steps=ham.steps, **ref_options(ham))
    default = ref.reconstruct(name, x, bases, steps=ham.steps, **ref_options(make(name)))
    assert not torch.allclose(expected, default)
    torch.testing.assert_close(ham(x, bases=bases), expected, rtol=1e-9, atol=1e-11)


def test_reference_nmf_by_hand():
    """One NMF code step on a 1x1 problem, computed by hand: c <- c * x d / (c d^2 + eps)."""
    x = torch.tensor([[[2.0]]], dtype=torch.float64)
    d = torch.tensor([[[1.0]]], dtype=torch.float64)
    c = torch.tensor([[[0.5]]], dtype=torch.float64)
    assert ref.nmf_coef(x, d, c).item() == pytest.approx(0.5 * 2.0 / (0.5 + 1e-6))
    # the fixed point of rank-1 NMF reconstructs x exactly
    bases, coef = ref.decompose("nmf", x, d, steps=20)
    assert (bases @ coef.transpose(1, 2)).item() == pytest.approx(2.0, rel=1e-5)
