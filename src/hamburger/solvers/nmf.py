"""NMF ham: non-negative matrix factorisation by multiplicative updates (paper Algorithm 2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import functional as MF
from .base import MatrixDecomposition


class NMF(MatrixDecomposition):
    """Non-negative matrix factorisation ``X ~ D C`` with Lee-Seung multiplicative updates.

    Exactly the official ``NMF2D``: the dictionary starts as U[0, 1) columns normalised to
    unit L2 norm, the codes as ``softmax(X^T D)`` over the rank (inverse temperature 1), each
    step updates the codes first and then the dictionary with the new codes, ``1e-6`` is added
    to every denominator, and the differentiable last step is one more code update.

    NMF is defined for non-negative ``X`` only. Negative entries raise ``ValueError`` (with
    ``check_input=True``, the default); the Hamburger block applies ReLU before the ham, as the
    official code does. With ``check_input=False`` negative input is not rejected and the
    multiplicative updates lose their guarantees (codes may change sign).

    See :class:`~hamburger.solvers.base.MatrixDecomposition` for the options and shapes.

    Example:
        >>> ham = NMF(rank=8, steps=6)
        >>> ham(torch.rand(2, 32, 16, 16)).shape
        torch.Size([2, 32, 16, 16])
    """

    distribution = "uniform"
    needs_nonnegative = True

    def init_coef(self, x: Tensor, bases: Tensor) -> tuple[Tensor, Tensor]:
        # X^T D_0 gives the initial codes softmax(X^T D_0) and is also the numerator of the first
        # code update (same bases): computing it once saves one of the K + 2 large products.
        xtb = torch.bmm(x.transpose(1, 2), bases)  # (b, d, n)^T @ (b, d, r) -> (b, n, r)
        return F.softmax(xtb, dim=-1), xtb

    def step(self, x: Tensor, bases: Tensor, coef) -> tuple[Tensor, Tensor]:
        coef, numerator = coef if isinstance(coef, tuple) else (coef, None)
        return MF.nmf_step(x, bases, coef, self.eps, numerator=numerator)

    def final_coef(self, x: Tensor, bases: Tensor, coef) -> Tensor:
        coef, numerator = coef if isinstance(coef, tuple) else (coef, None)
        return MF.nmf_coef_step(x, bases, coef, self.eps, numerator=numerator)
