"""Generic folder dataset: your own images and index-PNG masks with matching file stems::

    root/images/<stem>.{jpg,jpeg,png,bmp,tif,tiff}
    root/masks/<stem>.png        # single-channel (grayscale or palette) PNG, value = class id, 255 = ignore

Per-split folders are found first when present: ``root/images/<split>/`` + ``root/masks/<split>/``,
or ``root/<split>/images/`` + ``root/<split>/masks/``. Otherwise the flat ``root/images`` +
``root/masks`` pair serves every split (a warning is logged).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._io import DatasetError
from .base import Sample, SegmentationFiles, reduce_zero_label

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def _split_dirs(root: str, split: str) -> tuple[str, str]:
    for images, masks in (
        (os.path.join(root, "images", split), os.path.join(root, "masks", split)),
        (os.path.join(root, split, "images"), os.path.join(root, split, "masks")),
    ):
        if os.path.isdir(images):
            return images, masks
    images = os.path.join(root, "images")
    if not os.path.isdir(images):
        raise FileNotFoundError(
            f"folder dataset: no image folder under {root}: looked for {root}/images/{split}, "
            f"{root}/{split}/images and {root}/images"
        )
    logger.warning("folder dataset %s has no per-split folders; split %r uses all of %s", root, split, images)
    return images, os.path.join(root, "masks")


class FolderSegmentation(SegmentationFiles):
    """Images in ``images/`` and index-PNG masks in ``masks/`` with matching stems.

    Args:
        root: dataset folder.
        split: split name, used to find per-split folders (see the module docstring).
        num_classes: number of classes; mask values must lie in ``[0, num_classes)`` or be 255.
        class_names: optional names (default ``class_0 ... class_{n-1}``).
        palette: optional ``(num_classes, 3)`` colours.
        reduce_zero_label: treat stored 0 as ignore (255) and shift ``k -> k - 1``, as ADE20K does.
        transform: optional ``(image, mask) -> (image, mask)``.
    """

    def __init__(
        self,
        root: str | None = None,
        *,
        split: str,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        palette: Any = None,
        reduce_zero_label: bool = False,
        transform: Callable | None = None,
    ) -> None:
        if root is None:
            raise ValueError("dataset 'folder' needs root=<folder>, got root=None")
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or not 1 <= num_classes <= 255:
            raise ValueError(f"num_classes must be an int in [1, 255], got {num_classes!r}")
        if class_names is None:
            class_names = [f"class_{k}" for k in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(f"class_names must have num_classes={num_classes} entries, got {len(class_names)}")
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"folder dataset root not found: {root}")
        image_dir, mask_dir = _split_dirs(root, split)
        self.reduce_zero_label = reduce_zero_label
        samples: dict[str, Sample] = {}
        for file in sorted(os.listdir(image_dir)):
            stem, suffix = os.path.splitext(file)
            if suffix.lower() not in IMAGE_SUFFIXES or file.startswith("."):
                continue
            image = os.path.join(image_dir, file)
            if stem in samples:
                raise DatasetError(f"two images share the stem {stem!r}: {samples[stem].image} and {image}")
            mask = os.path.join(mask_dir, stem + ".png")
            if not os.path.isfile(mask):
                raise FileNotFoundError(f"mask file not found: {mask} (for image {image})")
            samples[stem] = Sample(image, mask, stem)
        pattern = os.path.join(image_dir, "*{" + ",".join(IMAGE_SUFFIXES) + "}")
        super().__init__(
            list(samples.values()),
            class_names=class_names,
            palette=palette,
            transform=transform,
            source=f"root {root}, pattern {pattern}",
        )

    def map_labels(self, raw: np.ndarray, path: str) -> np.ndarray:
        return reduce_zero_label(raw) if self.reduce_zero_label else raw
