"""Segmentation datasets: the embedded :class:`FashionScenes` and readers for real on-disk formats.

Every dataset item is ``{"image": Tensor, "mask": Tensor, "name": str}``; without a transform the
image is ``uint8 (3, H, W)`` and the mask ``int64 (H, W)`` with values in ``[0, num_classes)`` or 255
(ignore). Datasets expose ``num_classes``, ``class_names``, ``ignore_index`` (255), ``palette``
(``uint8 (num_classes, 3)`` tensor) and ``__len__``.

Example:
    >>> from hamburger.recipes.seg.data import build_dataset
    >>> ds = build_dataset("fashion_scenes", split="train", num_scenes=1000)
    >>> ds[0]["image"].shape, ds.num_classes
    (torch.Size([3, 64, 64]), 11)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from ._io import IGNORE_INDEX, DatasetError
from .ade20k import ADE20K
from .base import SegmentationFiles
from .cityscapes import Cityscapes
from .fashion_scenes import FashionScenes
from .folder import FolderSegmentation
from .voc import PascalContext59, VOCAugSegmentation, VOCSegmentation

DATASETS: dict[str, type[Dataset]] = {
    "fashion_scenes": FashionScenes,
    "voc": VOCSegmentation,
    "voc_aug": VOCAugSegmentation,
    "ade20k": ADE20K,
    "cityscapes": Cityscapes,
    "pascal_context": PascalContext59,
    "folder": FolderSegmentation,
}


def build_dataset(
    name: str,
    *,
    root: str | None = None,
    split: str,
    transform: Callable | None = None,
    **kwargs: Any,
) -> Dataset:
    """Build a dataset by name.

    Args:
        name: one of :data:`DATASETS`.
        root: dataset folder. For ``fashion_scenes`` it is optional and means ``fashion_root`` (a
            folder with the full Fashion-MNIST files for training scenes).
        split: ``"train"``, ``"val"``, ... (each dataset lists the splits it accepts).
        transform: optional ``(image, mask) -> (image, mask)`` applied to every item.
        **kwargs: dataset options, e.g. ``num_scenes``/``variant`` for ``fashion_scenes`` or
            ``num_classes`` for ``folder``.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")
    if name == "fashion_scenes":
        if root is not None:
            if kwargs.get("fashion_root") not in (None, root):
                raise ValueError(f"fashion_scenes: give root or fashion_root, not both ({root!r}, {kwargs})")
            kwargs["fashion_root"] = root
        return FashionScenes(split, transform=transform, **kwargs)
    file_dataset: Callable[..., Dataset] = DATASETS[name]  # every other dataset takes (root, split=, transform=)
    return file_dataset(root, split=split, transform=transform, **kwargs)


__all__ = [
    "ADE20K",
    "DATASETS",
    "IGNORE_INDEX",
    "Cityscapes",
    "DatasetError",
    "FashionScenes",
    "FolderSegmentation",
    "PascalContext59",
    "SegmentationFiles",
    "VOCAugSegmentation",
    "VOCSegmentation",
    "build_dataset",
]
