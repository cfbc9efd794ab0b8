"""The identity "ham": a Hamburger whose matrix decomposition is replaced by the identity.

``Hamburger(C, ham="identity")`` (or ``HamOptions(ham="identity")``, the context name ``"identity_ham"``) keeps
the breads, the cheese, the norm, the gates and the residual of the block and drops only ``M``, so comparing it
with the real block isolates what the low-rank recovery adds. It is not a solver (it is not in
:data:`hamburger.solvers.SOLVERS`): only the block options accept the name.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from ..solvers import MatrixDecomposition

IDENTITY_HAM = "identity"
"""The ``ham`` name of :class:`IdentityHam` in :class:`~hamburger.blocks.HamOptions` and :class:`Hamburger`."""


class IdentityHam(MatrixDecomposition):
    """``M(X) = X``: the ham of a Hamburger without decomposition.

    Takes (and validates) the solver options of :class:`~hamburger.solvers.MatrixDecomposition` so that a block's
    options can switch ``ham`` to ``"identity"`` and back unchanged, but uses none of them: there is no
    dictionary (``init`` is always ``"random"``: no buffer or parameter is created), no step and no gradient
    mode. ``needs_nonnegative`` is True, as for NMF (the default ham), so the block keeps the ReLU after the
    lower bread and the branch is ``W_u cheese(ReLU(W_l x))``: the NMF block with ``M`` removed.
    """

    needs_nonnegative: ClassVar[bool] = True

    def __init__(self, rank: int = 64, **options: Any) -> None:
        options.pop("channels", None)
        options["init"] = "random"
        super().__init__(rank, **options)

    def forward(self, x: Tensor, bases: Tensor | None = None, *, mask: Tensor | None = None) -> Tensor:
        """``x`` unchanged (padded tokens of ``mask`` stay as they are: outputs there are unspecified)."""
        return x

    def factors(self, x: Tensor, bases: Tensor | None = None, *, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError("the identity ham has no factors (no dictionary and no codes)")

    def extra_repr(self) -> str:
        return "identity"
