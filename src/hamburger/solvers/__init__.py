"""Matrix-decomposition solvers (the "hams"): NMF, VQ and CD."""

from __future__ import annotations

from .base import MatrixDecomposition, NonFiniteError
from .cd import CD
from .nmf import NMF
from .vq import VQ

SOLVERS: dict[str, type[MatrixDecomposition]] = {"nmf": NMF, "vq": VQ, "cd": CD}


def create_solver(name: str, **kwargs) -> MatrixDecomposition:
    """Build a solver by name (``"nmf"``, ``"vq"``, ``"cd"``, case-insensitive)."""
    if not isinstance(name, str):
        raise TypeError(f"ham name must be a str, got {type(name).__name__} {name!r}")
    if name.lower() not in SOLVERS:
        raise ValueError(f"unknown ham {name!r}; choose from {sorted(SOLVERS)}")
    return SOLVERS[name.lower()](**kwargs)


__all__ = ["CD", "NMF", "SOLVERS", "VQ", "MatrixDecomposition", "NonFiniteError", "create_solver"]
