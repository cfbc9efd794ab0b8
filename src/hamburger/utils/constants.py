"""Data constants used by several layers."""

from __future__ import annotations

IGNORE_INDEX = 255
"""Label of pixels that count in neither loss nor metrics (the VOC / mmseg convention)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""RGB mean of ImageNet in [0, 1], the normalisation of timm / torchvision backbones."""

IMAGENET_STD = (0.229, 0.224, 0.225)
"""RGB standard deviation of ImageNet in [0, 1]."""


def _voc_palette(n: int = 256) -> tuple[tuple[int, int, int], ...]:
    """The PASCAL VOC colour map: bits of the class index spread over the high bits of R, G and B."""
    colours = []
    for index in range(n):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append((r, g, b))
    return tuple(colours)


VOC_PALETTE = _voc_palette()
"""256 RGB colours of the VOC colour map; class 0 (background) is black, 255 (ignore) is (224, 224, 192)."""
