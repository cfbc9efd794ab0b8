"""Initial dictionaries: random draws as in the official code, and a fixed, RNG-free draw.

``hashed_uniform`` maps element indices through an integer hash (exact integer arithmetic,
so the same values on every device) to numbers in (0, 1). It gives eval mode a fixed
dictionary with the training distribution without touching any random number generator,
and it traces into ``torch.compile`` / ``torch.export`` graphs as plain integer ops.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_MASK32 = 0xFFFFFFFF


def _hash32(index: Tensor, seed: int) -> Tensor:
    """A 32-bit integer mixer (two xorshift-multiply rounds) computed exactly in int64."""
    h = (index * 0x9E3779B1 + seed * 0x85EBCA77 + 0x165667B1) & _MASK32
    h = h ^ (h >> 16)
    h = (h * 0x045D9F3B) & _MASK32
    h = h ^ (h >> 16)
    h = (h * 0x045D9F3B) & _MASK32
    return h ^ (h >> 16)


def hashed_uniform(shape: tuple[int, ...], *, seed: int = 0, device=None, dtype=torch.float32) -> Tensor:
    """Deterministic numbers in (0, 1) of the given shape (24-bit resolution)."""
    index = torch.arange(math.prod(shape), device=device, dtype=torch.int64)
    bits = _hash32(index, seed) >> 8
    return ((bits.to(torch.float32) + 0.5) / float(1 << 24)).to(dtype).reshape(shape)


def hashed_normal(shape: tuple[int, ...], *, seed: int = 0, device=None, dtype=torch.float32) -> Tensor:
    """Deterministic standard-normal numbers (Box-Muller on two hashed uniform streams)."""
    u1 = hashed_uniform(shape, seed=2 * seed + 1, device=device, dtype=torch.float32)
    u2 = hashed_uniform(shape, seed=2 * seed + 2, device=device, dtype=torch.float32)
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
    return z.to(dtype)


def draw_bases(
    shape: tuple[int, ...],
    *,
    distribution: str,
    device=None,
    dtype=torch.float32,
    fixed: bool = False,
    seed: int = 0,
) -> Tensor:
    """Unit-norm (along dim 1) random dictionary of ``shape`` = (batch, d, r).

    ``distribution`` is ``"uniform"`` (NMF: U[0, 1)) or ``"normal"`` (VQ, CD: N(0, 1)).
    ``fixed=True`` uses the hashed, RNG-free draw; otherwise the global RNG.
    """
    if fixed:
        draw = hashed_uniform if distribution == "uniform" else hashed_normal
        bases = draw(shape, seed=seed, device=device, dtype=dtype)
    elif distribution == "uniform":
        bases = torch.rand(shape, device=device, dtype=dtype)
    else:
        bases = torch.randn(shape, device=device, dtype=dtype)
    return F.normalize(bases, dim=1)
