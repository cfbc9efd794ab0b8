"""ADE20K (SceneParsing ADEChallengeData2016, 150 classes), read in its on-disk layout::

    ADEChallengeData2016/images/{training,validation}/ADE_*.jpg
    ADEChallengeData2016/annotations/{training,validation}/ADE_*.png   # 0 = other, 1..150 = classes

Labels use reduce-zero-label: stored 0 ("other") becomes 255 (ignored), stored ``k`` becomes ``k - 1``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable

import numpy as np

from ._io import resolve_root
from .base import Sample, SegmentationFiles, check_split, reduce_zero_label

ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass",
    "clock", "flag",
)  # fmt: skip

_SPLIT_DIRS = {"train": "training", "val": "validation"}


class ADE20K(SegmentationFiles):
    """ADE20K scene parsing, 150 classes, reduce-zero-label.

    Args:
        root: folder containing ``ADEChallengeData2016`` (or that folder itself).
        split: ``"train"`` (20,210 images, ``training/``) or ``"val"`` (2,000, ``validation/``).
        transform: optional ``(image, mask) -> (image, mask)``.
    """

    splits = tuple(_SPLIT_DIRS)

    def __init__(self, root: str | None = None, *, split: str, transform: Callable | None = None) -> None:
        check_split(split, self.splits, "ade20k")
        base = resolve_root(root, ("ADEChallengeData2016", ""), "annotations", "ade20k")
        sub = _SPLIT_DIRS[split]
        pattern = os.path.join(base, "images", sub, "*.jpg")
        samples = []
        for image in sorted(glob.glob(pattern)):
            name = os.path.splitext(os.path.basename(image))[0]
            mask = os.path.join(base, "annotations", sub, name + ".png")
            if not os.path.isfile(mask):
                raise FileNotFoundError(f"mask file not found: {mask} (for image {image})")
            samples.append(Sample(image, mask, name))
        super().__init__(samples, class_names=ADE20K_CLASSES, transform=transform, source=f"pattern {pattern}")

    def map_labels(self, raw: np.ndarray, path: str) -> np.ndarray:
        return reduce_zero_label(raw)
