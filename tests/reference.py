"""Float64 reference implementations of the three hams, written directly from the update formulas.

Independent of ``hamburger.solvers.functional``: every formula is spelled out again with plain
torch ops, in the order of the official code (Enjoy-Hamburger ``seg/HamNet/hamburger/ham.py``):

* NMF: ``C = softmax(X^T D)``; per step ``C <- C * (X^T D) / (C D^T D + eps)`` then
  ``D <- D * (X C) / (D C^T C + eps)``; code step: one more ``C`` update.
* VQ: per step ``C = softmax(t * cos(X, D))`` over r, ``C <- C / (eps + sum_n C)``, ``D = X C``;
  code step ``softmax(t * (X / (eps + ||X||)) ^T normalize(D))`` with ``||X||`` a constant.
* CD: per step as VQ with the raw (unit-norm) ``D`` and ``D = normalize(X C)``; code step
  ``C^T = X^T D (D^T D + ridge I)^-1`` with an explicit inverse.

``coef`` holds ``C^T`` of shape ``(b, n, r)``; the output is ``D C = bases @ coef^T``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

EPS = 1e-6


def _normalize(v: Tensor, eps: float = 1e-12) -> Tensor:
    """Unit L2 norm along dim 1 (the feature dim), as ``F.normalize`` does."""
    return v / v.norm(dim=1, keepdim=True).clamp_min(eps)


# ---------------------------------------------------------------- NMF
def nmf_init(x: Tensor, bases: Tensor) -> Tensor:
    return torch.softmax(x.transpose(1, 2) @ bases, dim=-1)


def nmf_coef(x: Tensor, bases: Tensor, coef: Tensor, eps: float = EPS) -> Tensor:
    return coef * (x.transpose(1, 2) @ bases) / (coef @ (bases.transpose(1, 2) @ bases) + eps)


def nmf_bases(x: Tensor, bases: Tensor, coef: Tensor, eps: float = EPS) -> Tensor:
    return bases * (x @ coef) / (bases @ (coef.transpose(1, 2) @ coef) + eps)


def nmf_step(x, bases, coef, *, eps=EPS, **_):
    coef = nmf_coef(x, bases, coef, eps)
    return nmf_bases(x, bases, coef, eps), coef


def nmf_final(x, bases, coef, *, eps=EPS, **_):
    return nmf_coef(x, bases, coef, eps)


# ---------------------------------------------------------------- VQ
def _soft_assign(std_x: Tensor, std_bases: Tensor, inv_temp: float, eps: float) -> Tensor:
    coef = torch.softmax(inv_temp * (std_x.transpose(1, 2) @ std_bases), dim=-1)
    return coef / (eps + coef.sum(dim=1, keepdim=True))


def vq_step(x, bases, coef, *, inv_temp=100.0, eps=EPS, **_):
    coef = _soft_assign(_normalize(x), _normalize(bases, eps), inv_temp, eps)
    return x @ coef, coef


def vq_final(x, bases, coef, *, inv_temp=100.0, eps=EPS, **_):
    std_x = x / (eps + x.norm(dim=1, keepdim=True).detach())
    return torch.softmax(inv_temp * (std_x.transpose(1, 2) @ _normalize(bases, eps)), dim=-1)


# ---------------------------------------------------------------- CD
def cd_step(x, bases, coef, *, inv_temp=100.0, eps=EPS, **_):
    coef = _soft_assign(_normalize(x), bases, inv_temp, eps)
    return _normalize(x @ coef, eps), coef


def cd_final(x, bases, coef, *, ridge=0.1, **_):
    eye = torch.eye(bases.shape[-1], dtype=bases.dtype, device=bases.device)
    return (x.transpose(1, 2) @ bases) @ torch.linalg.inv(bases.transpose(1, 2) @ bases + ridge * eye)


KERNELS = {
    "nmf": (nmf_init, nmf_step, nmf_final),
    "vq": (None, vq_step, vq_final),
    "cd": (None, cd_step, cd_final),
}


def decompose(
    name: str,
    x: Tensor,
    bases: Tensor,
    *,
    steps: int,
    grad_steps: int | None = None,
    inv_temp: float = 100.0,
    ridge: float = 0.1,
    eps: float = EPS,
    history: list | None = None,
) -> tuple[Tensor, Tensor]:
    """Explicitly unrolled solver on matrices ``x`` (b, d, n) from ``bases`` (b, d, r).

    ``grad_steps`` is the differentiability switch:

    * ``None``: every step (and NMF's initial codes) is differentiable (BPTT);
    * ``0``: the one-step gradient, bases and codes are detached before the code step;
    * ``k > 0``: truncated BPTT, the first ``steps - k`` steps are detached (if ``k >= steps``
      nothing is detached, as BPTT).

    ``history`` (optional list) receives ``(bases, coef)`` after the initial codes and each step.
    Returns the final bases and the code ``coef`` (= C^T) of the last, differentiable, code step.
    """
    init, step, final = KERNELS[name]
    opts = {"inv_temp": inv_temp, "ridge": ridge, "eps": eps}
    coef = None if init is None else init(x, bases)
    if grad_steps is None or grad_steps >= steps:
        detach_after = None if grad_steps != 0 else 0
    else:
        detach_after = steps - grad_steps
    if history is not None:
        history.append((bases, coef))
    for i in range(steps):
        if detach_after is not None and i == detach_after:
            bases, coef = bases.detach(), None if coef is None else coef.detach()
        bases, coef = step(x, bases, coef, **opts)
        if history is not None:
            history.append((bases, coef))
    if detach_after is not None and detach_after == steps:
        bases, coef = bases.detach(), None if coef is None else coef.detach()
    return bases, final(x, bases, coef, **opts)


def to_matrix(x: Tensor, groups: int, spatial: bool) -> Tensor:
    """(B, C, *spatial) -> (B*S, C/S, n), or (B*S, n, C/S) for the channel-wise decomposition."""
    b, c = x.shape[:2]
    xm = x.reshape(b * groups, c // groups, math.prod(x.shape[2:]))
    return xm if spatial else xm.transpose(1, 2)


def reconstruct(
    name: str,
    x: Tensor,
    bases: Tensor,
    *,
    steps: int,
    groups: int = 1,
    spatial: bool = True,
    **kwargs,
) -> Tensor:
    """The ham's output for a tensor ``x`` (B, C, *spatial) and initial ``bases`` (B*S, ., r)."""
    d_final, coef = decompose(name, to_matrix(x, groups, spatial), bases, steps=steps, **kwargs)
    out = d_final @ coef.transpose(1, 2)
    if not spatial:
        out = out.transpose(1, 2)
    return out.reshape(x.shape)


def random_bases(name: str, batch: int, d: int, rank: int, *, dtype=torch.float64, generator=None) -> Tensor:
    """Unit-norm initial bases with the ham's distribution (U[0,1) for NMF, N(0,1) otherwise)."""
    draw = torch.rand if name == "nmf" else torch.randn
    return _normalize(draw(batch, d, rank, dtype=dtype, generator=generator))
