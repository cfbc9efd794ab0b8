"""CD ham: concept decomposition (spherical k-means concepts, ridge least-squares codes)."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from ..utils import check_choice, check_float
from . import functional as MF
from ._cosine import CosineAssignment


class CD(CosineAssignment):
    """Concept decomposition (Dhillon & Modha 2001) as in the official ``CD2D``.

    The dictionary starts as unit-norm N(0, 1) columns; each step assigns tokens by a softmax
    over the inverse-temperature cosine similarity, normalises the codes over the tokens and
    sets the dictionary to the renormalised weighted means (spherical k-means). The
    differentiable last step solves the ridge problem
    ``C^T = X^T D (D^T D + beta I)^-1``.

    Args:
        inv_temp: inverse temperature of the assignment softmax (``INV_T``).
        ridge: ``beta`` (``BETA``; 0.1 in the segmentation code, 0.01 in the GAN code).
        solve: ``"solve"`` (``torch.linalg.solve``, default) or ``"newton_schulz"`` (matmul-only
            inverse of the r x r system, for ONNX export; agrees to float32 rounding).

    The official code uses ``torch.inverse``; we never form an explicit inverse with LAPACK.
    The official README recommends ``init="online"`` for CD (``RAND_INIT=False``).
    See :class:`~hamburger.solvers.base.MatrixDecomposition` for the other options.
    """

    distribution = "normal"

    def __init__(
        self,
        rank: int = 64,
        *,
        inv_temp: float = 100.0,
        ridge: float = 0.1,
        solve: Literal["solve", "newton_schulz"] = "solve",
        **kwargs,
    ) -> None:
        super().__init__(rank, **kwargs)
        self.inv_temp = check_float("inv_temp", inv_temp, low=0, low_open=True)
        self.ridge = check_float("ridge", ridge, low=0, low_open=True)  # keeps the r x r system invertible
        self.solve = check_choice("solve", solve, ("solve", "newton_schulz"))

    def step(self, data: tuple[Tensor, ...], bases: Tensor, coef: Tensor | None) -> tuple[Tensor, Tensor]:
        x, std_x, weight = self.step_inputs(data)
        return MF.cd_step(x, bases, self.inv_temp, self.eps, std_x=std_x, weight=weight)

    def final_coef(self, data: tuple[Tensor, ...], bases: Tensor, coef: Tensor | None) -> Tensor:
        return MF.ridge_coef(data[0], bases, self.ridge, method=self.solve)

    def _extra_options(self) -> list[str]:
        opts = [f"inv_temp={self.inv_temp}", f"ridge={self.ridge}"]
        if self.solve != "solve":
            opts.append(f"solve={self.solve!r}")
        return opts
