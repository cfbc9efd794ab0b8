"""torch.compile with the default (inductor) backend and dynamic shapes: the V2 / V2+ blocks and tiny_ham.

Inductor used to fail on them (``cannot determine truth value of Relational`` while sorting the symbolic
strides of the ham's ``bmm`` output viewed as ``(B, C, H, W)`` for the cheese convolution,
pytorch/pytorch#185510); the block hands the convolution a channels-last copy under compile. Each case
compiles for tens of seconds on a CPU, hence ``slow``.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch._inductor import config as inductor_config

import hamburger as hb


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _compare(model, inputs, *, training, reference=None):
    """Outputs and input gradients of the compiled model against eager (``reference``, default the model itself),
    on inputs of two shapes."""
    compiled = torch.compile(model, dynamic=True)
    model.train(training)
    reference = model if reference is None else reference.train(training)
    for x in inputs:
        results = []
        for fn in (reference, compiled):
            xi = x.clone().requires_grad_(True)
            torch.manual_seed(3)  # the same random dictionaries (inductor draws with torch's RNG below)
            out = fn(xi)
            out = out["out"] if isinstance(out, dict) else out
            (grad,) = torch.autograd.grad(out.square().mean(), xi)
            results.append((out.detach(), grad))
        (out, grad), (out_c, grad_c) = results
        assert out_c.shape == out.shape
        torch.testing.assert_close(out_c, out, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(grad_c, grad, rtol=1e-3, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("version", "dual", "ham", "groups", "training"),
    [("v2", False, "nmf", 1, True), ("v2+", True, "vq", 2, False), ("v2", False, "cd", 1, False)],
)
def test_compile_inductor_dynamic_block(version, dual, ham, groups, training):
    torch.manual_seed(0)
    block = hb.Hamburger(16, ham=ham, rank=4, steps=2, eval_steps=3, groups=groups, version=version, dual=dual,
                         gate_init=1.0 if version == "v2+" else None)  # fmt: skip
    inputs = [torch.randn(2, 16, 7, 5), torch.randn(3, 16, 11, 6)]  # sizes not multiples of 8
    with inductor_config.patch(fallback_random=True):
        _compare(block, inputs, training=training)


@pytest.mark.slow
def test_compile_inductor_dynamic_tiny_ham():
    from hamburger.models import create_model

    torch.manual_seed(0)
    model = create_model("tiny_ham", num_classes=3)
    with torch.no_grad():
        for module in model.modules():  # open the V2+ gate (zero at init) so the ham branch matters
            if isinstance(module, hb.Hamburger):
                module.coef_ham.fill_(1.0)
    inputs = [torch.randn(2, 3, 67, 53), torch.randn(1, 3, 45, 61)]
    # tiny_ham's implicit gradient runs as truncated BPTT through grad_steps + 1 steps when compiled (a compiled
    # backward cannot re-enter autograd): the eager reference is that mode
    reference = copy.deepcopy(model)
    for module in reference.modules():
        if isinstance(module, hb.MatrixDecomposition) and module.grad_mode == "implicit":
            module.grad_mode, module.grad_steps = "truncated", module.grad_steps + 1
    with inductor_config.patch(fallback_random=True):
        _compare(model, inputs, training=False, reference=reference)
