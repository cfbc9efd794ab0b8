"""hamburger: global context by matrix decomposition ("Is Attention Better Than Matrix Decomposition?").

``import hamburger`` loads only torch and numpy; segmentation models, recipes and benchmarks
are imported from their subpackages on demand.
"""

from __future__ import annotations

from .blocks import Hamburger, HamburgerTokens, HamOptions
from .models import create_model, list_models
from .solvers import CD, NMF, SOLVERS, VQ, MatrixDecomposition, create_solver

__version__ = "0.1.0"

__all__ = [
    "CD",
    "NMF",
    "SOLVERS",
    "VQ",
    "HamOptions",
    "Hamburger",
    "HamburgerTokens",
    "MatrixDecomposition",
    "__version__",
    "create_model",
    "create_solver",
    "list_models",
]
