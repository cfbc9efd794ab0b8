"""Base class of the on-disk datasets: a list of (image file, mask file, name) triples."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ._io import IGNORE_INDEX, DatasetError, bitwise_palette, check_mask, check_same_size, read_image, read_mask


class Sample(NamedTuple):
    """One dataset item on disk."""

    image: str
    mask: str
    name: str


def as_palette(palette: Any, num_classes: int) -> torch.Tensor:
    """``uint8 (num_classes, 3)`` tensor from ``palette``; ``None`` gives the VOC colour map without black."""
    if palette is None:
        return bitwise_palette(num_classes + 1)[1:]
    palette = torch.as_tensor(np.asarray(palette, dtype=np.uint8))
    if palette.shape != (num_classes, 3):
        raise ValueError(f"palette must have shape ({num_classes}, 3), got {tuple(palette.shape)}")
    return palette


class SegmentationFiles(Dataset):
    """Image/mask file pairs with label mapping and validation.

    Subclasses find the files (:attr:`samples`) and may override :meth:`map_labels` to turn stored
    values into train ids (``reduce_zero_label``, Cityscapes ``labelIds -> trainIds``...).

    Every item is ``{"image": Tensor, "mask": Tensor, "name": str}``: without a transform ``image``
    is ``uint8 (3, H, W)`` for 8-bit files (``float32`` in ``[0, 1]`` for 16-bit files or a non-default
    :attr:`image_scale`) and ``mask`` is ``int64 (H, W)`` with values in ``[0, num_classes)`` or
    255 (ignore); with a transform, whatever ``transform(image, mask)`` returns.

    Errors name the file: a missing image or mask (``FileNotFoundError``), an unreadable file, an
    image/mask size mismatch or a label outside ``[0, num_classes)`` other than 255
    (:class:`DatasetError`, a ``ValueError``).

    Attributes:
        num_classes: number of classes (255 is ignore, never a class).
        class_names: one name per class.
        ignore_index: 255.
        palette: ``uint8 (num_classes, 3)`` colours for visualising masks.
        samples: the ``Sample(image, mask, name)`` triples, in a fixed (sorted) order.
    """

    ignore_index: int = IGNORE_INDEX
    image_scale: str | float = "dtype"
    """How image values map to ``[0, 1]`` (see :func:`~hamburger.recipes.seg.data._io.read_image`)."""

    def __init__(
        self,
        samples: Sequence[Sample],
        *,
        class_names: Sequence[str],
        palette: Any = None,
        transform: Callable | None = None,
        source: str = "",
    ) -> None:
        if not samples:
            raise DatasetError(f"empty dataset: no items found ({source})")
        self.samples = list(samples)
        self.transform = transform
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.palette = as_palette(palette, self.num_classes)

    def __len__(self) -> int:
        return len(self.samples)

    def map_labels(self, raw: np.ndarray, path: str) -> np.ndarray:
        """Map the stored values of mask file ``path`` to train ids (identity here)."""
        return raw

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Read, map and validate item ``index`` (no transform)."""
        sample = self.samples[index]
        image = read_image(sample.image, scale=self.image_scale)
        mask = self.map_labels(read_mask(sample.mask), sample.mask)
        check_same_size(image, mask, sample.image, sample.mask)
        check_mask(mask, self.num_classes, sample.mask)
        return image, torch.from_numpy(np.ascontiguousarray(mask, dtype=np.int64))

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for dataset of length {len(self)}")
        image, mask = self.load(index)
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return {"image": image, "mask": mask, "name": self.samples[index].name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(items={len(self)}, num_classes={self.num_classes})"


def check_split(split: str, allowed: Sequence[str], dataset: str) -> None:
    if split not in allowed:
        raise ValueError(f"{dataset}: split must be one of {list(allowed)}, got {split!r}")


def pair_by_list(
    ids: Sequence[str],
    image_dir: str,
    mask_dirs: Sequence[str],
    *,
    image_suffix: str = ".jpg",
    mask_suffix: str = ".png",
) -> list[Sample]:
    """Samples for ids from a list file; the mask is taken from the first of ``mask_dirs`` that has it.

    Raises ``FileNotFoundError`` naming the first missing image or mask.
    """
    samples = []
    for name in ids:
        image = os.path.join(image_dir, name + image_suffix)
        if not os.path.isfile(image):
            raise FileNotFoundError(f"image file not found: {image} (listed as {name!r})")
        candidates = [os.path.join(d, name + mask_suffix) for d in mask_dirs]
        mask = next((m for m in candidates if os.path.isfile(m)), None)
        if mask is None:
            raise FileNotFoundError(f"mask file not found: {' or '.join(candidates)} (listed as {name!r})")
        samples.append(Sample(image, mask, name))
    return samples


def lookup_table(mapping: dict[int, int], size: int = 256, default: int = IGNORE_INDEX) -> np.ndarray:
    """``int64`` table of ``size`` entries: ``table[k] = mapping.get(k, default)``."""
    table = np.full(size, default, dtype=np.int64)
    for key, value in mapping.items():
        table[key] = value
    return table


def reduce_zero_label(raw: np.ndarray) -> np.ndarray:
    """``0 -> 255`` (ignore), ``k -> k - 1`` for ``1 <= k <= 254``; 255 stays 255."""
    out = raw - 1
    out[(raw == 0) | (raw == IGNORE_INDEX)] = IGNORE_INDEX
    return out
