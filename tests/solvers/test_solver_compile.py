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
