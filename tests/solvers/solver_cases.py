"""Helpers shared by the solver tests."""

from __future__ import annotations

import math

import torch

import hamburger as hb

HAMS = ("nmf", "vq", "cd")
SHAPES = {"1d": (2, 8, 12), "2d": (2, 8, 4, 5), "3d": (2, 8, 2, 3, 4)}


def make(name: str, **kwargs) -> hb.MatrixDecomposition:
    kwargs.setdefault("rank", 4)
    kwargs.setdefault("steps", 3)
    kwargs.setdefault("eval_steps", 5)
    return hb.create_solver(name, **kwargs)


def make_input(name: str, shape, dtype=torch.float64, generator=None) -> torch.Tensor:
    """Non-negative data for NMF, signed data for VQ and CD."""
    if name == "nmf":
        return torch.rand(shape, dtype=dtype, generator=generator)
    return torch.randn(shape, dtype=dtype, generator=generator)


def matrix_dims(shape, groups: int, spatial: bool) -> tuple[int, int, int]:
    b, c = shape[:2]
    n = math.prod(shape[2:])
    return (b * groups, c // groups, n) if spatial else (b * groups, n, c // groups)


def ref_options(ham) -> dict:
    opts = {"eps": ham.eps}
    if hasattr(ham, "inv_temp"):
        opts["inv_temp"] = ham.inv_temp
    if hasattr(ham, "ridge"):
        opts["ridge"] = ham.ridge
    return opts
