"""Class-conditional GAN recipe (HamGAN, SAGAN, SNGAN-projection): training (:mod:`.module`, :mod:`.data`),
sample grids and scoring (:mod:`.generate`), evaluation features (:mod:`.features`) and metrics
(:mod:`.metrics`), the ``hamburger gan`` command line (:mod:`.cli`).

The Python API: :func:`fit`, :func:`sample`, :func:`evaluate`. Submodules are imported on demand; this package
itself imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate", "fit", "sample"]


def fit(config: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Train like ``hamburger gan fit --config CONFIG``; see :func:`hamburger.recipes.gan.api.fit`."""
    from .api import fit as _fit

    return _fit(config, **overrides)


def sample(ckpt_path: Any, *, output: Any, **kwargs: Any) -> Any:
    """Write a sample grid; see :func:`hamburger.recipes.gan.generate.sample`."""
    from .generate import sample as _sample

    return _sample(ckpt_path, output=output, **kwargs)


def evaluate(ckpt_path: Any, **kwargs: Any) -> dict[str, Any]:
    """Score a checkpoint; see :func:`hamburger.recipes.gan.generate.evaluate`."""
    from .generate import evaluate as _evaluate

    return _evaluate(ckpt_path, **kwargs)
