"""Gradients of the grad modes equal autograd through the explicitly unrolled reference."""

from __future__ import annotations

import pytest
import torch
from solver_cases import HAMS, make, make_input, ref_options

import reference as ref

# grad_mode options -> the reference's differentiability switch (see reference.decompose)
MODES = {
    "one_step": ({"grad_mode": "one_step"}, 0),
    "bptt": ({"grad_mode": "bptt"}, None),
    "truncated1": ({"grad_mode": "truncated", "grad_steps": 1}, 1),
    "truncated2": ({"grad_mode": "truncated", "grad_steps": 2}, 2),
    "truncated_all": ({"grad_mode": "truncated", "grad_steps": 9}, None),
}


def _grads(name, ham_fn, x, conv, weight):
    """Gradients w.r.t. x and the upstream conv's parameters of <weight, ham(conv(x))>."""
    x = x.clone().requires_grad_(True)
    conv.zero_grad()
    z = conv(x)
    if name == "nmf":
        z = torch.relu(z)
    (ham_fn(z) * weight).sum().backward()
    return [x.grad, conv.weight.grad, conv.bias.grad]


def _setup(name, groups=1, dims=(5, 4)):
    x = make_input(name, (2, 8, *dims))
    conv = torch.nn.Conv2d(8, 8, 1, dtype=torch.float64)
    weight = torch.randn(2, 8, *dims, dtype=torch.float64)
    bases = ref.random_bases(name, 2 * groups, 8 // groups, 4)
    return x, conv, weight, bases


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize(
    ("mode", "groups"),
    [
        ("one_step", 1),
        ("one_step", 2),
        ("bptt", 1),
        ("bptt", 2),
        ("truncated1", 1),
        ("truncated2", 2),
        ("truncated_all", 1),
    ],
)
def test_grad_modes_match_reference(name, mode, groups):
    options, grad_steps = MODES[mode]
    ham = make(name, steps=3, groups=groups, **options).train()
    x, conv, weight, bases = _setup(name, groups)
    got = _grads(name, lambda z: ham(z, bases=bases), x, conv, weight)
    expected = _grads(
        name,
        lambda z: ref.reconstruct(
            name, z, bases, steps=3, groups=groups, grad_steps=grad_steps, **ref_options(ham)
        ),
        x, conv, weight,
    )  # fmt: skip
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("steps", [0, 1, 2])
@pytest.mark.parametrize("mode", ["one_step", "bptt", "truncated1", "truncated2"])
def test_few_steps_gradients_match_reference(name, steps, mode):
    """Every mode with K = 0, 1, 2 (where the initial codes meet the code step): autograd through the
    explicitly unrolled float64 reference, for x, the upstream conv and a user-given initial dictionary."""
    options, grad_steps = MODES[mode]
    ham = make(name, steps=steps, **options).train()
    x, conv, weight, bases = _setup(name)

    def grads(ham_fn):
        initial = bases.clone().requires_grad_(True)
        got = _grads(name, lambda z: ham_fn(z, initial), x, conv, weight)
        return got, initial.grad

    got, got_bases = grads(lambda z, initial: ham(z, bases=initial))
    expected, expected_bases = grads(
        lambda z, initial: ref.reconstruct(name, z, initial, steps=steps, grad_steps=grad_steps, **ref_options(ham))
    )
    assert got[0].abs().sum() > 0  # the output carries gradient to x in every mode
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-7, atol=1e-9)
    if expected_bases is None:  # one-step (and truncated below K): the initial dictionary is a constant
        assert got_bases is None
    else:
        torch.testing.assert_close(got_bases, expected_bases, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", HAMS)
def test_zero_steps_one_step_output_has_gradient(name):
    """K = 0 with the one-step gradient: the code step alone, differentiable in x (NMF used to lose it)."""
    x = make_input(name, (2, 8, 3, 5), dtype=torch.float32).requires_grad_(True)
    out = make(name, steps=0, grad_mode="one_step").train()(x)
    assert out.requires_grad
    (grad,) = torch.autograd.grad(out.square().sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("name", HAMS)
def test_grad_modes_differ(name):
    """The switch matters: one-step, truncated and full BPTT give different gradients."""
    x, conv, weight, bases = _setup(name)
    grads = {}
    for mode in ("one_step", "truncated1", "bptt"):
        ham = make(name, steps=3, **MODES[mode][0]).train()
        grads[mode] = _grads(name, lambda z, ham=ham: ham(z, bases=bases), x, conv, weight)[0]
    assert not torch.allclose(grads["one_step"], grads["truncated1"])
    assert not torch.allclose(grads["truncated1"], grads["bptt"])


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("mode", ["one_step", "bptt"])
def test_grads_in_eval_mode_use_eval_steps(name, mode):
    options, grad_steps = MODES[mode]
    ham = make(name, steps=1, eval_steps=4, **options).eval()
    x, conv, weight, bases = _setup(name)
    got = _grads(name, lambda z: ham(z, bases=bases), x, conv, weight)
    expected = _grads(
        name, lambda z: ref.reconstruct(name, z, bases, steps=4, grad_steps=grad_steps, **ref_options(ham)),
        x, conv, weight,
    )  # fmt: skip
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("steps", [0, 2])
@pytest.mark.parametrize("groups", [1, 2])
def test_learned_init_gets_reference_gradient(name, steps, groups):
    ham = make(name, steps=steps, groups=groups, grad_mode="bptt", init="learned", channels=8)
    ham.double()
    assert isinstance(ham.bases, torch.nn.Parameter) and ham.bases.shape == (groups, 8 // groups, 4)
    x = make_input(name, (3, 8, 10))
    weight = torch.randn(3, 8, 10, dtype=torch.float64)
    (ham(x) * weight).sum().backward()

    param = ham.bases.detach().clone().requires_grad_(True)
    out = ref.reconstruct(name, x, param.repeat(3, 1, 1), steps=steps, groups=groups, **ref_options(ham))
    (out * weight).sum().backward()
    assert ham.bases.grad is not None and ham.bases.grad.abs().sum() > 0
    torch.testing.assert_close(ham.bases.grad, param.grad, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", HAMS)
def test_bases_argument_gradient_under_bptt(name):
    """A user-given initial dictionary is part of the graph under BPTT and cut under one-step."""
    x = make_input(name, (2, 8, 10))
    for mode, expect_grad in (("bptt", True), ("one_step", False)):
        bases = ref.random_bases(name, 2, 8, 4).requires_grad_(True)
        out = make(name, steps=2, grad_mode=mode)(x, bases=bases)
        if expect_grad:
            out.sum().backward()
            assert bases.grad is not None and bases.grad.abs().sum() > 0
        else:
            assert not out.requires_grad


@pytest.mark.parametrize("name", HAMS)
def test_no_grad_context_and_inference_mode(name):
    ham = make(name, grad_mode="bptt")
    x = make_input(name, (2, 8, 10))
    bases = ref.random_bases(name, 2, 8, 4)
    expected = ham(x, bases=bases).detach()
    with torch.no_grad():
        torch.testing.assert_close(ham(x, bases=bases), expected, rtol=1e-12, atol=1e-14)
    with torch.inference_mode():
        torch.testing.assert_close(ham(x, bases=bases), expected, rtol=1e-12, atol=1e-14)
