"""Shared data handling of the hams that assign tokens by cosine similarity (VQ, CD)."""

from __future__ import annotations

from torch import Tensor

from . import functional as MF
from .base import MatrixDecomposition


class CosineAssignment(MatrixDecomposition):
    """Base of VQ and CD: ``prepare`` gives ``(x, unit tokens, token norms)``, once per forward; a padding mask is
    appended as a fourth entry that the steps use to leave padded tokens out of the codes' sums over the tokens."""

    def prepare(self, x: Tensor) -> tuple[Tensor, ...]:
        return (x, *MF.normalize_tokens(x))  # the cosine needs unit tokens; they do not change

    def mask_data(self, data: tuple[Tensor, ...], weight: Tensor) -> tuple[Tensor, ...]:
        return (*data, weight)

    @staticmethod
    def step_inputs(data: tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(x, unit tokens, padding weight or None)`` from ``prepare`` (+ ``mask_data``)."""
        return data[0], data[1], (data[3] if len(data) > 3 else None)
