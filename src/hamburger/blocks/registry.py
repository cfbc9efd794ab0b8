"""Context-module zoo: every global-context block shares the ``(B, C, H, W) -> (B, C, H, W)``
residual contract, so heads and benchmarks can swap them by name.

``CONTEXT_BLOCKS`` maps a name to a callable ``(channels, **kwargs) -> nn.Module``.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from .hamburger import Hamburger

CONTEXT_BLOCKS: dict[str, Callable[..., nn.Module]] = {
    "hamburger": Hamburger,
    "none": lambda channels, **kwargs: nn.Identity(),
}


def create_context_block(name: str, channels: int, **kwargs) -> nn.Module:
    """Build a context block by name; ``kwargs`` go to the block's constructor."""
    if name not in CONTEXT_BLOCKS:
        raise ValueError(f"unknown context block {name!r}; choose from {sorted(CONTEXT_BLOCKS)}")
    return CONTEXT_BLOCKS[name](channels, **kwargs)
