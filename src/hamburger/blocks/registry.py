"""Context-module zoo: every global-context block shares the ``(B, C, H, W) -> (B, C, H, W)``
residual contract, so heads and benchmarks can swap them by name.

``CONTEXT_BLOCKS`` maps a name to a callable ``(channels, **kwargs) -> nn.Module``:

* ``"hamburger"``: :class:`Hamburger` (matrix decomposition, linear in ``n``);
* ``"self_attention"``: :class:`SelfAttention2d` (explicit ``n x n`` map, the paper's SA);
* ``"non_local"``: :class:`NonLocal2d` (embedded-Gaussian non-local block, ``C / 2`` wide);
* ``"sdpa"``: :class:`SDPAttention2d` (multi-head, fused ``scaled_dot_product_attention``);
* ``"linear"``: :class:`LinearAttention2d` (efficient attention, linear in ``n``);
* ``"em"``: :class:`EMAttention2d` (EMANet's EM attention over ``k`` bases);
* ``"gap"``: :class:`GlobalPoolContext2d` (global-average-pool vector broadcast over positions, the trivial
  baseline);
* ``"identity_ham"``: :class:`Hamburger` with ``ham="identity"`` (no decomposition; in a head it takes the
  head's Hamburger options, so it differs from the head's Hamburger only in ``M``);
* ``"none"``: identity.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .em_attention import EMAttention2d
from .global_pool import GlobalPoolContext2d
from .hamburger import Hamburger
from .linear_attention import LinearAttention2d
from .non_local import NonLocal2d
from .sdpa_attention import SDPAttention2d
from .self_attention import SelfAttention2d


def identity_hamburger(channels: int, **options) -> Hamburger:
    """``Hamburger(channels, ham="identity", **options)``: the block with its decomposition removed."""
    options.pop("ham", None)
    return Hamburger(channels, ham="identity", **options)


CONTEXT_BLOCKS: dict[str, Callable[..., nn.Module]] = {
    "hamburger": Hamburger,
    "self_attention": SelfAttention2d,
    "non_local": NonLocal2d,
    "sdpa": SDPAttention2d,
    "linear": LinearAttention2d,
    "em": EMAttention2d,
    "gap": GlobalPoolContext2d,
    "identity_ham": identity_hamburger,
    "none": lambda channels, **kwargs: nn.Identity(),
}


def create_context_block(name: str, channels: int, **kwargs) -> nn.Module:
    """Build a context block by name; ``kwargs`` go to the block's constructor."""
    if not isinstance(name, str):
        raise TypeError(f"context block name must be a str, got {type(name).__name__} {name!r}")
    if name not in CONTEXT_BLOCKS:
        raise ValueError(f"unknown context block {name!r}; choose from {sorted(CONTEXT_BLOCKS)}")
    return CONTEXT_BLOCKS[name](channels, **kwargs)
