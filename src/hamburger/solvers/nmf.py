"""NMF ham: non-negative matrix factorisation by multiplicative updates (paper Algorithm 2)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from . import functional as MF
from .base import MatrixDecomposition


class NMFData(NamedTuple):
    """Per-forward constants of NMF: the data and its power-of-two scale ``s`` per matrix.

    The steps run on ``X' = X / s`` with codes ``C' = C / s`` (``D`` is unchanged), which is the official
    arithmetic scaled by powers of two (exact), with the epsilons scaled to match: ``eps / s`` in the code
    update and ``eps / s^2`` in the dictionary update. ``X'`` is never formed: its products are
    ``X^T (D / s)`` and ``(X C'^T) / s``, which scale only the small factors.
    """

    x: Tensor  # X, (b, d, n)
    inv_scale: Tensor  # 1 / s, (b, 1, 1)
    coef_eps: Tensor  # eps / s, (b, 1, 1)
    bases_eps: Tensor  # eps / s^2, (b, 1, 1)


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

    Input scale: each matrix is decomposed as ``X / s`` with ``s`` the power of two at or above its maximum
    and ``eps`` scaled to match (see :class:`NMFData`), so the products ``X C^T`` and ``C C^T`` (of size
    ``max(X)^2``, which overflow float32 from about 1e19) stay of size ``max(X) * n`` at most: float32 and
    bf16 inputs work up to about ``1e38 / n`` (1e35 for 64 x 64 maps). On inputs where the official
    arithmetic does not overflow the result is the same bit for bit. ``eps`` stays an absolute constant,
    as in the official code: data far below ``sqrt(eps)`` (``max(X) < 1e-3`` or so) is dominated by it and
    the output shrinks towards zero.

    See :class:`~hamburger.solvers.base.MatrixDecomposition` for the options and shapes.

    Example:
        >>> ham = NMF(rank=8, steps=6)
        >>> ham(torch.rand(2, 32, 16, 16)).shape
        torch.Size([2, 32, 16, 16])
    """

    distribution = "uniform"
    needs_nonnegative = True

    def prepare(self, x: Tensor) -> NMFData:
        with torch.no_grad():
            inv_scale = 1.0 / MF.power_of_two_scale(x.amax(dim=(1, 2), keepdim=True))  # exact: a power of two
            finfo = torch.finfo(x.dtype)
            coef_eps = (self.eps * inv_scale).clamp(finfo.tiny, finfo.max)
            bases_eps = (self.eps * inv_scale * inv_scale).clamp(finfo.tiny, finfo.max)
        return NMFData(x, inv_scale, coef_eps, bases_eps)

    @staticmethod
    def _xt_bases(data: NMFData, bases: Tensor) -> Tensor:
        """``X'^T D = X^T (D / s)``, (b, n, r)."""
        return torch.bmm(data.x.transpose(1, 2), bases * data.inv_scale)

    @staticmethod
    def _update(
        data: NMFData, bases: Tensor, coef: Tensor, numerator: Tensor, coef_eps: float | Tensor
    ) -> tuple[Tensor, Tensor]:
        """One step on ``X'``: the code update (numerator ``X'^T D`` given), then the dictionary update."""
        coef = MF.nmf_coef_step(data.x, bases, coef, coef_eps, numerator=numerator)
        x_coef = torch.bmm(data.x, coef)  # X C'^T, (b, d, r)
        x_coef = x_coef * data.inv_scale if torch.is_grad_enabled() else x_coef.mul_(data.inv_scale)  # X' C'^T
        return MF.nmf_bases_step(data.x, bases, coef, data.bases_eps, numerator=x_coef), coef

    def init_coef(self, data: NMFData, bases: Tensor) -> Tensor:
        # C_0' = softmax(X^T D_0) / s; with K = 0 it goes straight to the code step
        return F.softmax(self._xt_bases(data, bases) / data.inv_scale, dim=-1) * data.inv_scale

    def start(self, data: NMFData, bases: Tensor) -> tuple[Tensor, Tensor]:
        # X^T D_0 gives the initial codes softmax(X^T D_0) and is also the numerator of the first
        # code update (same bases): computing it once saves one of the K + 2 large products.
        logits = self._xt_bases(data, bases)  # X'^T D_0, (b, n, r)
        coef = F.softmax(logits / data.inv_scale, dim=-1)  # C_0 = softmax(X^T D_0), not scaled
        # C_0 (X'^T D_0) / (C_0 D_0^T D_0 + eps) is C_1' = C_1 / s exactly: no need to form C_0' = C_0 / s
        return self._update(data, bases, coef, logits, self.eps)

    def step(self, data: NMFData, bases: Tensor, coef: Tensor | None) -> tuple[Tensor, Tensor]:
        assert coef is not None  # init_coef always gives NMF codes
        return self._update(data, bases, coef, self._xt_bases(data, bases), data.coef_eps)

    def final_coef(self, data: NMFData, bases: Tensor, coef: Tensor | None) -> Tensor:
        assert coef is not None  # init_coef always gives NMF codes
        # C' (X^T D) / (C' D^T D + eps / s) is the code update of X with C = s C' (the codes of X, not X')
        numerator = torch.bmm(data.x.transpose(1, 2), bases)  # X^T D
        return MF.nmf_coef_step(data.x, bases, coef, data.coef_eps, numerator=numerator)
