"""Blocks built from solvers and layers: the Hamburger block and the context-module zoo."""

from .hamburger import Hamburger, HamburgerTokens
from .registry import CONTEXT_BLOCKS, create_context_block

__all__ = ["CONTEXT_BLOCKS", "Hamburger", "HamburgerTokens", "create_context_block"]
