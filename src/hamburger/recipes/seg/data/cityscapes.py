"""Cityscapes (fine annotations, 19 evaluation classes), read in its on-disk layout::

    leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

The stored ``labelIds`` (0..33) are mapped to the official ``trainIds`` (0..18); every other id
(void, rectification border, parking, rail track, guard rail, bridge, tunnel, polegroup, caravan,
trailer, license plate...) becomes 255.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable

import numpy as np

from ._io import DatasetError, resolve_root
from .base import Sample, SegmentationFiles, check_split, lookup_table

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip

# labelId -> trainId of the 19 evaluated classes (cityscapesScripts, helpers/labels.py).
LABEL_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
NUM_LABEL_IDS = 34  # labelIds 0..33 are stored in *_gtFine_labelIds.png

CITYSCAPES_PALETTE = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip

_TABLE = lookup_table(LABEL_TO_TRAIN_ID, size=NUM_LABEL_IDS)


class Cityscapes(SegmentationFiles):
    """Cityscapes fine annotations mapped to the 19 train ids (others 255).

    Args:
        root: folder containing ``leftImg8bit`` and ``gtFine``.
        split: ``"train"`` (2,975), ``"val"`` (500) or ``"test"`` (1,525; its public masks are all void).
        transform: optional ``(image, mask) -> (image, mask)``.
    """

    splits = ("train", "val", "test")

    def __init__(self, root: str | None = None, *, split: str, transform: Callable | None = None) -> None:
        check_split(split, self.splits, "cityscapes")
        base = resolve_root(root, ("", "cityscapes"), "gtFine", "cityscapes")
        pattern = os.path.join(base, "leftImg8bit", split, "*", "*_leftImg8bit.png")
        samples = []
        for image in sorted(glob.glob(pattern)):
            city = os.path.basename(os.path.dirname(image))
            stem = os.path.basename(image)[: -len("_leftImg8bit.png")]
            mask = os.path.join(base, "gtFine", split, city, stem + "_gtFine_labelIds.png")
            if not os.path.isfile(mask):
                raise FileNotFoundError(f"mask file not found: {mask} (for image {image})")
            samples.append(Sample(image, mask, stem))
        super().__init__(
            samples,
            class_names=CITYSCAPES_CLASSES,
            palette=CITYSCAPES_PALETTE,
            transform=transform,
            source=f"pattern {pattern}",
        )

    def map_labels(self, raw: np.ndarray, path: str) -> np.ndarray:
        bad = (raw < 0) | (raw >= NUM_LABEL_IDS)
        if bad.any():
            values = ", ".join(str(v) for v in np.unique(raw[bad])[:10])
            raise DatasetError(
                f"mask {path} has values [{values}] outside the Cityscapes labelIds 0..{NUM_LABEL_IDS - 1}"
            )
        return _TABLE[raw]
