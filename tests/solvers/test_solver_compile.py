"""torch.compile of the solvers matches eager."""

from __future__ import annotations

import pytest
import torch
from solver_cases import HAMS, make, make_input

import reference as ref


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", HAMS)
def test_compile_eager_backend_eval(name):
    ham = make(name).eval()
    x = make_input(name, (2, 8, 4, 4), dtype=torch.float32)
    compiled = torch.compile(ham, backend="eager", fullgraph=True)
    assert torch.equal(compiled(x), ham(x))


FAST = {("nmf", "bptt"), ("cd", "one_step")}


@pytest.mark.parametrize(
    ("name", "grad_mode"),
    [pytest.param(n, g, marks=() if (n, g) in FAST else pytest.mark.slow) for n in HAMS for g in ("one_step", "bptt")],
)
def test_compile_eager_backend_train_with_grad(name, grad_mode):
    ham = make(name, grad_mode=grad_mode).train()
    x = make_input(name, (2, 8, 12), dtype=torch.float32)
    bases = ref.random_bases(name, 2, 8, 4, dtype=torch.float32)
    compiled = torch.compile(ham, backend="eager", fullgraph=True)
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    outs = [compiled(xs[0], bases=bases), ham(xs[1], bases=bases)]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-6, atol=1e-7)
    grads = [torch.autograd.grad(o.square().sum(), xi)[0] for o, xi in zip(outs, xs, strict=True)]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", HAMS)
def test_compile_inductor_eval(name):
    ham = make(name).eval()
    x = make_input(name, (2, 8, 4, 4), dtype=torch.float32)
    compiled = torch.compile(ham)
    torch.testing.assert_close(compiled(x), ham(x), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", HAMS)
def test_compile_inductor_dynamic_train_with_grad(name):
    """The default backend with dynamic shapes, training mode: values and gradients as eager, on two shapes
    (the power-of-two rescaling compiles to integer-exact exp2, so the arithmetic is the same)."""
    from torch._inductor import config as inductor_config

    ham = make(name, grad_mode="bptt" if name == "nmf" else "one_step").train()
    compiled = torch.compile(ham, dynamic=True)
    for shape in ((2, 8, 5, 7), (3, 8, 6, 3)):
        x = make_input(name, shape, dtype=torch.float32)
        results = []
        for fn in (ham, compiled):
            xi = x.clone().requires_grad_(True)
            torch.manual_seed(4)  # the same random dictionary: inductor draws with torch's RNG here
            with inductor_config.patch(fallback_random=True):
                out = fn(xi)
            results.append((out.detach(), torch.autograd.grad(out.square().sum(), xi)[0]))
        # inductor fuses and reorders float32 arithmetic; inv_temp = 100 amplifies that rounding in VQ / CD
        # (as against the float64 reference in test_solver_reference_agreement)
        scale = 1e-5 if name == "nmf" else 1e-3
        torch.testing.assert_close(results[1][0], results[0][0], rtol=10 * scale, atol=scale)
        grad_atol = scale * results[0][1].abs().max().item()
        torch.testing.assert_close(results[1][1], results[0][1], rtol=10 * scale, atol=grad_atol)
