"""The modules the benchmark knows by name: Hamburger blocks, bare solvers and the zoo.

Every builder has the signature ``(channels, *, rank, steps) -> nn.Module``; modules that have
no rank or steps ignore them. Hamburger blocks run ``steps`` iterations in training *and* in
eval (``eval_steps = steps``), the setting of the paper's Table 3.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..blocks import Hamburger, create_context_block
from ..solvers import create_solver

Builder = Callable[..., nn.Module]


def _hamburger(ham: str) -> Builder:
    def build(channels: int, *, rank: int, steps: int) -> nn.Module:
        return Hamburger(channels, ham=ham, rank=rank, steps=steps, eval_steps=steps)

    return build


def _solver(ham: str) -> Builder:
    def build(channels: int, *, rank: int, steps: int) -> nn.Module:
        return create_solver(ham, rank=rank, steps=steps, eval_steps=steps)

    return build


def _zoo(name: str, **fixed) -> Builder:
    def build(channels: int, *, rank: int, steps: int) -> nn.Module:
        return create_context_block(name, channels, **fixed)

    return build


BENCH_MODULES: dict[str, Builder] = {
    "ham_nmf": _hamburger("nmf"),
    "ham_vq": _hamburger("vq"),
    "ham_cd": _hamburger("cd"),
    "self_attention": _zoo("self_attention"),
    "non_local": _zoo("non_local"),
    "sdpa": _zoo("sdpa"),
    "linear": _zoo("linear"),
    "em": _zoo("em"),
    "nmf": _solver("nmf"),
    "vq": _solver("vq"),
    "cd": _solver("cd"),
}
"""Name -> builder. ``ham_*`` are full Hamburger blocks (breads + ham + norm + residual); the
bare names ``nmf``, ``vq``, ``cd`` are the solvers alone on a non-negative ``(B, C, H, W)`` input."""

DEFAULT_MODULES = ("ham_nmf", "ham_vq", "ham_cd", "self_attention", "non_local", "sdpa", "linear", "em")
SOLVER_MODULES = ("nmf", "vq", "cd")


def build_module(name: str, channels: int, *, rank: int, steps: int) -> nn.Module:
    """Build the benchmark module ``name`` (see :data:`BENCH_MODULES`)."""
    if name not in BENCH_MODULES:
        raise ValueError(f"unknown benchmark module {name!r}; choose from {sorted(BENCH_MODULES)}")
    return BENCH_MODULES[name](channels, rank=rank, steps=steps)
