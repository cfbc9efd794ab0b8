"""Input scale: the official arithmetic bit for bit on ordinary inputs, no overflow on huge ones.

NMF multiplies ``X C^T`` and ``C C^T`` (values of size ``max(X)^2``) and VQ / CD square the tokens for their
norms, so float32 overflows from about 1e19 (NMF used to return all-NaN, VQ and CD silently wrong outputs).
The solvers rescale by powers of two, which is exact, so the float64 re-statement of the official algorithm
(tests/reference.py) is the reference at every scale.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from solver_cases import HAMS, make, make_input, ref_options

import reference as ref
from hamburger.solvers import functional as MF

# float32 agreement with the float64 reference (as in test_solver_reference_agreement: inv_temp=100
# amplifies the rounding of the cosines for VQ and CD); relative to the size of the input
TOL32 = {"nmf": {"rtol": 2e-5, "atol": 2e-6}, "vq": {"rtol": 1e-3, "atol": 2e-4}, "cd": {"rtol": 1e-3, "atol": 2e-4}}


def _case(name, scale, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (make_input(name, (2, 8, 5, 7), dtype=torch.float64, generator=g) * scale).to(dtype)
    bases = ref.random_bases(name, 2, 8, 4, generator=g)
    return x, bases


def _reference(name, ham, x, bases, steps):
    """The float64 official algorithm on the same (rounded) input."""
    return ref.reconstruct(name, x.double(), bases, steps=steps, **ref_options(ham))


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("scale", [1e19, 1e30, 1e-30])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_float32_matches_float64_reference_at_any_scale(name, scale, training):
    ham = make(name).train(training)
    x, bases = _case(name, scale, torch.float32)
    out = ham(x, bases=bases.float())
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    expected = _reference(name, ham, x, bases, ham.steps if training else ham.eval_steps)
    torch.testing.assert_close(out.double() / scale, expected / scale, **TOL32[name])


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("scale", [1e19, 1e30])
def test_bfloat16_input_at_large_scale(name, scale):
    """bf16 has float32's range: the same overflow, the same fix; the output is the reference rounded to bf16."""
    ham = make(name).eval()
    x, bases = _case(name, scale, torch.bfloat16)
    out = ham(x, bases=bases.float())
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    expected = _reference(name, ham, x, bases, ham.eval_steps)
    torch.testing.assert_close(out.double() / scale, expected / scale, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("scale", [6e4, 1e-4])
def test_float16_input_at_its_range_ends(name, scale):
    ham = make(name).eval()
    x, bases = _case(name, scale / 4, torch.float16)  # make_input is within about 4 (randn) of the scale
    out = ham(x, bases=bases.half())
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    expected = _reference(name, ham, x, bases.half().double(), ham.eval_steps)
    torch.testing.assert_close(out.double() / scale, expected / scale, rtol=1e-2, atol=2e-3)


@pytest.mark.parametrize("name", HAMS)
def test_one_step_gradient_at_large_scale(name):
    """Training at 1e19: the gradient of <w, ham(x)> is the reference's (it is of order one)."""
    ham = make(name).train()
    x, bases = _case(name, 1e19, torch.float32)
    weight = torch.randn(x.shape, dtype=torch.float64)
    x32 = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((ham(x32, bases=bases.float()) * weight.float()).sum(), x32)
    x64 = x.double().requires_grad_(True)
    out = ref.reconstruct(name, x64, bases, steps=ham.steps, grad_steps=0, **ref_options(ham))
    (expected,) = torch.autograd.grad((out * weight).sum(), x64)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad.double(), expected, rtol=1e-3, atol=1e-3 * expected.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1e-3, 0.7, 1.0, 3.0, 1e3, 1e6])
@pytest.mark.parametrize("training", [True, False])
def test_nmf_is_the_official_arithmetic_bit_for_bit(dtype, scale, training):
    """The power-of-two rescaling is exact: the plain official loop (unscaled, scalar eps) gives the same bits."""
    ham = make("nmf", steps=3, eval_steps=4).train(training)
    g = torch.Generator().manual_seed(5)
    x = torch.rand(3, 8, 20, dtype=dtype, generator=g) * scale
    bases = F.normalize(torch.rand(3, 8, 4, dtype=dtype, generator=g), dim=1)
    out = ham(x, bases=bases)
    d, c = bases, MF.softmax_coef(x, bases, 1.0)
    for _ in range(ham.steps if training else ham.eval_steps):
        d, c = MF.nmf_step(x, d, c, ham.eps)
    expected = torch.bmm(d, MF.nmf_coef_step(x, d, c, ham.eps).transpose(1, 2))
    assert torch.equal(out.detach(), expected)


@pytest.mark.parametrize("name", ["vq", "cd"])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e6])
def test_vq_cd_forward_is_the_official_arithmetic_bit_for_bit(name, scale):
    """Their overflow-safe norms equal ``F.normalize`` / ``Tensor.norm`` bit for bit on ordinary inputs."""
    ham = make(name).eval()
    g = torch.Generator().manual_seed(6)
    x = torch.randn(3, 8, 20, generator=g) * scale
    bases = F.normalize(torch.randn(3, 8, 4, generator=g), dim=1)
    step = MF.vq_step if name == "vq" else MF.cd_step
    d = bases
    std_x = F.normalize(x, dim=1)
    for _ in range(ham.eval_steps):
        d, _ = step(x, d, ham.inv_temp, ham.eps, std_x=std_x)
    if name == "vq":  # the official code step, with torch's norms
        cos = (x / (ham.eps + x.norm(dim=1, keepdim=True))).transpose(1, 2) @ F.normalize(d, dim=1, eps=ham.eps)
        coef = torch.softmax(ham.inv_temp * cos, dim=-1)
    else:
        coef = MF.ridge_coef(x, d, ham.ridge)
    assert torch.equal(ham(x, bases=bases), torch.bmm(d, coef.transpose(1, 2)))


def test_power_of_two_scale():
    exponents = torch.arange(-126, 127, dtype=torch.float32)
    powers = torch.exp2(exponents)
    assert torch.equal(MF.power_of_two_scale(powers), powers)  # exact powers map to themselves
    assert torch.equal(MF.power_of_two_scale(powers * 0.75), powers)  # otherwise the power at or above
    values = torch.tensor([0.0, 1e-45, 3e38, float("inf")])
    assert MF.power_of_two_scale(values).tolist() == [2.0**-126, 2.0**-126, 2.0**126, 2.0**126]  # normal
    assert MF.power_of_two_scale(torch.tensor([1e300], dtype=torch.float64)).item() == 2.0 ** math.ceil(
        math.log2(1e300)
    )


@pytest.mark.parametrize("scale", [1.0, 1e-20, 1e30])
def test_overflow_safe_norms(scale):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 16, 9, generator=g, dtype=torch.float64)
    x[0, :, 3] = 0.0  # a zero token stays zero, as in F.normalize
    std_x, norm = MF.normalize_tokens((x * scale).float())
    # F.normalize's floor 1e-12 on the norm stays absolute (tiny tokens are not blown up to unit length)
    torch.testing.assert_close(std_x.double(), F.normalize(x * scale, dim=1), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(norm.double() / scale, x.norm(dim=1, keepdim=True), rtol=1e-6, atol=0)
    torch.testing.assert_close(MF.column_norm((x * scale).float()).double() / scale, x.norm(dim=1, keepdim=True))
    if scale == 1.0:  # bit for bit where torch's own norms do not overflow
        x32 = x.float()
        assert torch.equal(MF.normalize_tokens(x32)[0], F.normalize(x32, dim=1))
        assert torch.equal(MF.normalize_tokens(x32)[1], x32.norm(dim=1, keepdim=True))
        assert torch.equal(MF.normalize(x32, 1e-6), F.normalize(x32, dim=1, eps=1e-6))
