"""NMF ham: non-negative matrix factorisation by multiplicative updates (paper Algorithm 2)."""

from __future__ import annotations

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

    def init_coef(self, x: Tensor, bases: Tensor) -> Tensor:
        return MF.softmax_coef(x, bases, 1.0)

    def step(self, x: Tensor, bases: Tensor, coef: Tensor | None) -> tuple[Tensor, Tensor]:
        return MF.nmf_step(x, bases, coef, self.eps)

    def final_coef(self, x: Tensor, bases: Tensor, coef: Tensor | None) -> Tensor:
        return MF.nmf_coef_step(x, bases, coef, self.eps)
