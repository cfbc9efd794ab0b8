"""Blocks built from solvers and layers."""

from .hamburger import Hamburger, HamburgerTokens

__all__ = ["Hamburger", "HamburgerTokens"]
