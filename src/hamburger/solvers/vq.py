"""VQ ham: soft vector quantisation, a differentiable k-means (paper Algorithm 1)."""

from __future__ import annotations

from torch import Tensor

from ..utils import check_float
from . import functional as MF
from ._cosine import CosineAssignment


class VQ(CosineAssignment):
    """Soft k-means: ``C = softmax(inv_temp * cos(D, X))``, ``D = X C^T diag(C 1_n)^-1``.

    Exactly the official ``VQ2D``: the dictionary starts as N(0, 1) columns normalised to unit
    norm; each step assigns with a softmax over the rank of the inverse-temperature cosine
    similarity, normalises the codes over the tokens and sets the dictionary to the weighted
    means (not renormalised). The differentiable last step is the softmax-cosine assignment
    with the token norms ``||x||`` treated as constants.

    Args:
        inv_temp: ``1 / T``, the inverse temperature of the softmax (``INV_T``; 100 or 10 in
            the official code). Large values approach hard k-means.

    See :class:`~hamburger.solvers.base.MatrixDecomposition` for the other options.
    """

    distribution = "normal"

    def __init__(self, rank: int = 64, *, inv_temp: float = 100.0, **kwargs) -> None:
        super().__init__(rank, **kwargs)
        self.inv_temp = check_float("inv_temp", inv_temp, low=0, low_open=True)

    def step(self, data: tuple[Tensor, ...], bases: Tensor, coef: Tensor | None) -> tuple[Tensor, Tensor]:
        x, std_x, weight = self.step_inputs(data)
        return MF.vq_step(x, bases, self.inv_temp, self.eps, std_x=std_x, weight=weight)

    def final_coef(self, data: tuple[Tensor, ...], bases: Tensor, coef: Tensor | None) -> Tensor:
        x, norm = data[0], data[2]
        return MF.vq_coef(x, bases, self.inv_temp, self.eps, norm=norm)

    def _extra_options(self) -> list[str]:
        return [f"inv_temp={self.inv_temp}"]
