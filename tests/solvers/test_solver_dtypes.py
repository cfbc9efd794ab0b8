"""dtype, autocast, device and numerical edge cases."""

from __future__ import annotations

import pytest
import torch
from solver_cases import HAMS, make, make_input


def _cpu_autocast_supports(dtype) -> bool:
    try:
        with torch.autocast("cpu", dtype=dtype):
            torch.mm(torch.ones(2, 2), torch.ones(2, 2))
    except (RuntimeError, ValueError):
        return False
    return True


AUTOCAST_DTYPES = [torch.bfloat16] + ([torch.float16] if _cpu_autocast_supports(torch.float16) else [])


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("training", [True, False])
def test_float64_in_float64_out(name, training):
    x = make_input(name, (2, 8, 3, 3))
    out = make(name).train(training)(x)
    assert out.dtype == torch.float64 and torch.isfinite(out).all()


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_input_same_dtype_and_close_to_float32(name, dtype):
    ham = make(name).eval()
    x = make_input(name, (2, 8, 4, 4), dtype=torch.float32).to(dtype)
    out = ham(x)
    assert out.dtype == dtype and torch.isfinite(out).all()
    expected = ham(x.float())  # same (rounded) input in float32: only the output rounding differs
    torch.testing.assert_close(out.float(), expected.to(dtype).float(), rtol=0, atol=0)


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("dtype", AUTOCAST_DTYPES)
@pytest.mark.parametrize("training", [True, False])
def test_autocast_matches_float32(name, dtype, training):
    ham = make(name, grad_mode="bptt").train(training)
    x = make_input(name, (2, 8, 4, 4), dtype=torch.float32).requires_grad_(True)
    bases = torch.nn.functional.normalize(torch.rand(2, 8, 4) if name == "nmf" else torch.randn(2, 8, 4), dim=1)
    expected = ham(x, bases=bases)
    with torch.autocast("cpu", dtype=dtype):
        out = ham(x, bases=bases)
    assert out.dtype == x.dtype and torch.isfinite(out).all()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("grad_mode", ["one_step", "bptt"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_all_zero_input(name, grad_mode, dtype):
    x = torch.zeros(2, 8, 3, 3, dtype=dtype, requires_grad=dtype == torch.float32)
    for training in (True, False):
        out = make(name, grad_mode=grad_mode).train(training)(x)
        assert out.dtype == dtype and torch.isfinite(out).all()
        assert torch.equal(out, torch.zeros_like(out))
        if x.requires_grad:
            (grad,) = torch.autograd.grad(out.sum(), x)
            assert torch.isfinite(grad).all()


@pytest.mark.parametrize("name", HAMS)
def test_large_fp16_values(name):
    x = (make_input(name, (2, 8, 4, 4), dtype=torch.float32).clamp(-1, 1) * 1.5e4).half()
    assert x.abs().max() > 1e4 and torch.isfinite(x).all()
    for training in (True, False):
        out = make(name).train(training)(x)
        assert out.dtype == torch.float16 and torch.isfinite(out).all()
        scale = x.float().abs().max()
        assert out.float().abs().max() < 4 * scale  # a reconstruction, not a blow-up


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("grad_mode", ["one_step", "bptt"])
def test_single_token(name, grad_mode):
    x = make_input(name, (3, 8, 1, 1), dtype=torch.float32).requires_grad_(True)
    for training in (True, False):
        out = make(name, grad_mode=grad_mode).train(training)(x)
        assert out.shape == (3, 8, 1, 1) and torch.isfinite(out).all()
        (grad,) = torch.autograd.grad(out.sum(), x)
        assert torch.isfinite(grad).all()


@pytest.mark.parametrize("name", HAMS)
def test_rank_larger_than_tokens(name):
    x = make_input(name, (2, 8, 3), dtype=torch.float32)
    out = make(name, rank=8).eval()(x)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("init", ["random", "online"])
def test_meta_device(name, init):
    ham = make(name, init=init, channels=None if init == "random" else 8).to("meta")
    for training in (True, False):
        out = ham.train(training)(torch.empty(2, 8, 4, 4, device="meta"))
        assert out.device.type == "meta" and out.shape == (2, 8, 4, 4) and out.dtype == torch.float32
