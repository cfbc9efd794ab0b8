"""PASCAL VOC 2012 (+ SBD augmented list) and PASCAL-Context (59 classes), read in their on-disk layouts.

VOC 2012::

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/SegmentationClass/<id>.png            # palette PNG, index = class, 255 = boundary
    VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt

SBD augmented ("voc_aug")::

    VOCdevkit/VOC2012/SegmentationClassAug/<id>.png         # grayscale PNG of class ids
    VOCdevkit/VOC2012/ImageSets/Segmentation/train_aug.txt  # 10,582 ids (or aug.txt, mmseg's name)

PASCAL-Context (mmseg layout, masks converted with the Detail API)::

    VOCdevkit/VOC2010/JPEGImages/<id>.jpg
    VOCdevkit/VOC2010/SegmentationClassContext/<id>.png     # 0 = background, 1..59 = classes
    VOCdevkit/VOC2010/ImageSets/SegmentationContext/{train,val}.txt
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from ._io import DatasetError, bitwise_palette, read_list, resolve_root
from .base import SegmentationFiles, check_split, pair_by_list, reduce_zero_label

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

CONTEXT59_CLASSES = (
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle", "building",
    "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow", "cup", "curtain", "dog",
    "door", "fence", "floor", "flower", "food", "grass", "ground", "horse", "keyboard", "light", "motorbike",
    "mountain", "mouse", "person", "plate", "platform", "pottedplant", "road", "rock", "sheep", "shelves",
    "sidewalk", "sign", "sky", "snow", "sofa", "table", "track", "train", "tree", "truck", "tvmonitor", "wall",
    "water", "window", "wood",
)  # fmt: skip


def _ids(list_file: str) -> list[str]:
    ids = read_list(list_file)
    if not ids:
        raise DatasetError(f"empty dataset: split list {list_file} has no image ids")
    return ids


class VOCSegmentation(SegmentationFiles):
    """PASCAL VOC 2012 segmentation: 21 classes (0 = background), 255 = object boundary (ignored).

    Args:
        root: folder containing ``VOCdevkit`` (or ``VOCdevkit`` / ``VOC2012`` itself).
        split: ``"train"`` (1,464), ``"val"`` (1,449) or ``"trainval"``.
        transform: optional ``(image, mask) -> (image, mask)``.
    """

    splits = ("train", "val", "trainval")

    def __init__(self, root: str | None = None, *, split: str, transform: Callable | None = None) -> None:
        check_split(split, self.splits, "voc")
        base = resolve_root(root, ("VOCdevkit/VOC2012", "VOC2012", ""), "JPEGImages", "voc")
        list_file = os.path.join(base, "ImageSets", "Segmentation", f"{split}.txt")
        samples = pair_by_list(
            _ids(list_file), os.path.join(base, "JPEGImages"), [os.path.join(base, "SegmentationClass")]
        )
        super().__init__(
            samples, class_names=VOC_CLASSES, palette=bitwise_palette(21), transform=transform, source=list_file
        )


class VOCAugSegmentation(SegmentationFiles):
    """PASCAL VOC 2012 with the SBD augmented training list (``train_aug``, 10,582 images).

    Masks come from ``SegmentationClassAug`` (falling back to ``SegmentationClass`` per image, so
    ``val`` works with or without the converted validation masks).

    Args:
        root: folder containing ``VOCdevkit`` (or ``VOCdevkit`` / ``VOC2012`` itself).
        split: ``"train"`` (the ``train_aug.txt`` list; ``aug.txt`` is accepted too), ``"val"`` or
            ``"trainval"`` (``trainval_aug.txt``).
        transform: optional ``(image, mask) -> (image, mask)``.
    """

    splits = ("train", "val", "trainval")
    list_names = {"train": ("train_aug.txt", "aug.txt"), "val": ("val.txt",), "trainval": ("trainval_aug.txt",)}

    def __init__(self, root: str | None = None, *, split: str, transform: Callable | None = None) -> None:
        check_split(split, self.splits, "voc_aug")
        base = resolve_root(root, ("VOCdevkit/VOC2012", "VOC2012", ""), "SegmentationClassAug", "voc_aug")
        lists = [os.path.join(base, "ImageSets", "Segmentation", name) for name in self.list_names[split]]
        list_file = next((f for f in lists if os.path.isfile(f)), None)
        if list_file is None:
            raise FileNotFoundError(f"voc_aug split list not found: {' or '.join(lists)}")
        mask_dirs = [os.path.join(base, "SegmentationClassAug"), os.path.join(base, "SegmentationClass")]
        samples = pair_by_list(_ids(list_file), os.path.join(base, "JPEGImages"), mask_dirs)
        super().__init__(
            samples, class_names=VOC_CLASSES, palette=bitwise_palette(21), transform=transform, source=list_file
        )


class PascalContext59(SegmentationFiles):
    """PASCAL-Context with the 59 most frequent classes; background (0) is ignored (reduce-zero-label).

    Stored ``k`` (1..59) becomes class ``k - 1``; stored 0 becomes 255.

    Args:
        root: folder containing ``VOCdevkit`` (or ``VOCdevkit`` / ``VOC2010`` itself).
        split: ``"train"`` (4,996) or ``"val"`` (5,104).
        transform: optional ``(image, mask) -> (image, mask)``.
    """

    splits = ("train", "val")

    def __init__(self, root: str | None = None, *, split: str, transform: Callable | None = None) -> None:
        check_split(split, self.splits, "pascal_context")
        base = resolve_root(root, ("VOCdevkit/VOC2010", "VOC2010", ""), "SegmentationClassContext", "pascal_context")
        list_file = os.path.join(base, "ImageSets", "SegmentationContext", f"{split}.txt")
        samples = pair_by_list(
            _ids(list_file), os.path.join(base, "JPEGImages"), [os.path.join(base, "SegmentationClassContext")]
        )
        super().__init__(samples, class_names=CONTEXT59_CLASSES, transform=transform, source=list_file)

    def map_labels(self, raw: np.ndarray, path: str) -> np.ndarray:
        return reduce_zero_label(raw)
