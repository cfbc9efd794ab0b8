"""The benchmark baseline (benchmarks/official_reference.py) computes what our solvers compute."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import hamburger as hb

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "official_reference.py"


@pytest.fixture(scope="module")
def official():
    spec = importlib.util.spec_from_file_location("official_reference", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("ham", ["nmf", "vq", "cd"])
def test_same_output_and_gradient_from_the_same_bases(official, ham):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 5, 5, generator=gen, dtype=torch.float64).relu()
    ref_module = official.OFFICIAL[ham](rank=4, steps=3)
    bases = ref_module.rand_bases(2, 16, x.device, x.dtype)
    ours = hb.create_solver(ham, rank=4, steps=3).train()
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref, y_ours = ref_module(x1, bases=bases), ours(x2, bases=bases)
    torch.testing.assert_close(y_ours, y_ref)
    weights = torch.randn(y_ref.shape, generator=gen, dtype=x.dtype)
    (y_ref * weights).sum().backward()
    (y_ours * weights).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad)
