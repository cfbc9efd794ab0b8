"""Segmentation heads: HamHead (HamNet), LightHamHead (Light-Ham / SegNeXt) and FCNHead (auxiliary).

The Hamburger heads take ``context=`` to swap their global-context block for another registered
block (``"none"``, attention baselines), so that comparisons differ only in that block.
"""

from .fcn_head import FCNHead
from .ham_head import HamHead
from .light_ham_head import LightHamHead
from .registry import HEADS, get_head, list_heads, register_head

__all__ = ["HEADS", "FCNHead", "HamHead", "LightHamHead", "get_head", "list_heads", "register_head"]
