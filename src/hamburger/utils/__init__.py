"""Level-0 helpers shared by every layer: argument checks, atomic file writes and data constants.

Imports nothing from the rest of the package (and nothing beyond the standard library at import time).
"""

from __future__ import annotations

from .checks import check_choice, check_float, check_int, check_pair, check_positive_int
from .constants import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD, VOC_PALETTE
from .files import atomic_directory, atomic_write, atomic_write_text

__all__ = [
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VOC_PALETTE",
    "atomic_directory",
    "atomic_write",
    "atomic_write_text",
    "check_choice",
    "check_float",
    "check_int",
    "check_pair",
    "check_positive_int",
]
