"""Blocks built from solvers and layers: the Hamburger block and the context-module zoo."""

from .em_attention import EMAttention2d
from .global_pool import GlobalPoolContext2d
from .hamburger import Hamburger, HamburgerTokens
from .linear_attention import LinearAttention2d
from .non_local import NonLocal2d
from .options import HamOptions
from .registry import CONTEXT_BLOCKS, create_context_block
from .sdpa_attention import SDPAttention2d
from .self_attention import SelfAttention2d

__all__ = [
    "CONTEXT_BLOCKS",
    "EMAttention2d",
    "GlobalPoolContext2d",
    "Hamburger",
    "HamOptions",
    "HamburgerTokens",
    "LinearAttention2d",
    "NonLocal2d",
    "SDPAttention2d",
    "SelfAttention2d",
    "create_context_block",
]
