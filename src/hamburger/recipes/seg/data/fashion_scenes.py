"""FashionScenes: the embedded segmentation dataset, composed on the fly from Fashion-MNIST items.

Each scene is a ``canvas_size`` square RGB image: a dark, noisy background with 2-4 (by default)
28x28 Fashion-MNIST items pasted on it, each scaled, tinted with a random bright colour and
alpha-blended by its own intensity. The mask is exact: ``class + 1`` where the item pixel is above
``threshold`` (and not covered by a later item), 0 for background; 11 classes.

Variants:
    ``"plain"``: every item pixel is labelled with its own class (local evidence suffices).
    ``"context"``: exactly one item is marked: it is white-grey (unsaturated) while every other item
    is a saturated colour, and it is pasted last (never covered). Every item pixel in the scene is
    labelled with the *marked* item's class + 1. The other items are always of other classes, so
    their own appearance never tells their label: a pixel's label is decided by an item that may be
    anywhere in the image. A local FCN can label the marked item and the background but not the
    other items; a head with global context (Hamburger, attention) can propagate the marked class
    to every item.
    ``"consensus"``: every item in a scene is a different instance of one class, labelled with its own
    (the shared) class. Each item can be classified alone, but pooling the evidence of all items in
    the scene is more reliable: a head with global context can make the labels of a scene agree,
    a local FCN labels each item independently.

Item pools are disjoint: validation scenes use test items 8000-9999 of the shipped test split;
training scenes use test items 0-7999, or the full 60,000-item training split when it is present
(the Debian ``dataset-fashion-mnist`` path or ``fashion_root``). Scene ``i`` depends only on
``(seed, split, variant, i)`` and the dataset options, never on the worker or access order.
"""

from __future__ import annotations

import colorsys
import functools
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ._io import IGNORE_INDEX
from .fashion_mnist import FASHION_CLASSES, full_dataset_root, load_fashion_mnist

logger = logging.getLogger(__name__)

ITEM_SIZE = 28
VAL_START = 8000  # shipped test items [0, 8000) train the embedded model, [8000, 10000) validate
# background black, then one distinct colour per Fashion-MNIST class (matplotlib's tab10)
FASHION_PALETTE = (
    (0, 0, 0), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip
_SPLIT_CODE = {"train": 0, "val": 1}
_VARIANT_CODE = {"plain": 0, "context": 1, "consensus": 2}


@functools.lru_cache(maxsize=64)
def _resize_matrix(size: int, source: int = ITEM_SIZE) -> np.ndarray:
    """Bilinear interpolation matrix ``(size, source)`` (half-pixel centres, edge clamped)."""
    position = np.clip((np.arange(size) + 0.5) * source / size - 0.5, 0, source - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, source - 1)
    weight = (position - low).astype(np.float32)
    matrix = np.zeros((size, source), dtype=np.float32)
    matrix[np.arange(size), low] += 1 - weight
    matrix[np.arange(size), high] += weight
    return matrix


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32) * 255


def _pair(value: Any, name: str, kind: type) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2) or value[0] > value[1]:
        raise ValueError(f"{name} must be a number or an ordered pair (low, high), got {value!r}")
    return kind(value[0]), kind(value[1])


class FashionScenes(Dataset):
    """Scenes of pasted Fashion-MNIST items with exact masks (see the module docstring).

    Args:
        split: ``"train"`` or ``"val"``.
        num_scenes: dataset length.
        canvas_size: scene height and width in pixels.
        items: inclusive range of the number of items per scene.
        scale: range of the item scale factor (an item is ``round(28 * scale)`` pixels wide).
        variant: ``"plain"``, ``"context"`` or ``"consensus"``.
        seed: base seed; scene ``i`` is a pure function of ``(seed, split, variant, i)``.
        fashion_root: folder with the full Fashion-MNIST IDX files for training scenes; ``None`` uses
            the Debian path when present, ``"embedded"`` forces the shipped test split.
        threshold: item intensity (0-1) above which a pixel belongs to the item.
        transform: optional ``(image, mask) -> (image, mask)``.

    Shape:
        Item ``{"image": uint8 (3, S, S), "mask": int64 (S, S), "name": str}`` with
        ``S = canvas_size`` (before the transform).
    """

    ignore_index = IGNORE_INDEX

    def __init__(
        self,
        split: str = "train",
        *,
        num_scenes: int,
        canvas_size: int = 64,
        items: tuple[int, int] = (2, 4),
        scale: tuple[float, float] = (1.0, 1.5),
        variant: str = "plain",
        seed: int = 0,
        fashion_root: str | None = None,
        threshold: float = 0.1,
        transform: Callable | None = None,
    ) -> None:
        if split not in _SPLIT_CODE:
            raise ValueError(f"fashion_scenes: split must be one of {list(_SPLIT_CODE)}, got {split!r}")
        if variant not in _VARIANT_CODE:
            raise ValueError(f"variant must be one of {list(_VARIANT_CODE)}, got {variant!r}")
        if not isinstance(num_scenes, int) or num_scenes < 1:
            raise ValueError(f"num_scenes must be a positive int, got {num_scenes!r}")
        self.items = _pair(items, "items", int)
        self.scale = _pair(scale, "scale", float)
        if self.items[0] < 1:
            raise ValueError(f"items must be >= 1, got {items!r}")
        if self.scale[0] <= 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
        largest = round(ITEM_SIZE * self.scale[1])
        if not isinstance(canvas_size, int) or canvas_size < largest:
            raise ValueError(
                f"canvas_size must be an int >= {largest} (the largest item for scale={self.scale}), "
                f"got {canvas_size!r}"
            )
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.split, self.variant, self.seed = split, variant, seed
        self.num_scenes, self.canvas_size, self.threshold = num_scenes, canvas_size, float(threshold)
        self.transform = transform
        self.class_names = ["background", *FASHION_CLASSES]
        self.num_classes = len(self.class_names)
        self.palette = torch.tensor(FASHION_PALETTE, dtype=torch.uint8)
        if split == "train":
            self._root = full_dataset_root(fashion_root)
            self._source = ("train", self._root) if self._root else ("t10k", None)
        else:
            self._root, self._source = None, ("t10k", None)
        images, labels = load_fashion_mnist(*self._source)
        if self._source[0] == "train":
            self.pool = np.arange(len(labels))
            self.source = f"Fashion-MNIST train split ({len(labels)} items, {self._root})"
        else:
            self.pool = np.arange(0, VAL_START) if split == "train" else np.arange(VAL_START, len(labels))
            self.source = f"shipped Fashion-MNIST test split, items {self.pool[0]}-{self.pool[-1]}"
        logger.info("FashionScenes(%s, %s): items from %s", split, variant, self.source)
        self._pool_labels = labels[self.pool]
        self._by_class = [self.pool[self._pool_labels == c] for c in range(len(FASHION_CLASSES))]
        self._classes = [c for c, members in enumerate(self._by_class) if len(members)]
        if variant == "context" and len(self._classes) < 2:  # other items must be of other classes
            raise ValueError(
                f"the context variant needs items of at least 2 classes; {self.source} has {self._classes}"
            )
        self._images, self._labels = images, labels

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_images"] = None  # reloaded from the cached file on unpickling (DataLoader workers)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._images = load_fashion_mnist(*self._source)[0]

    def __len__(self) -> int:
        return self.num_scenes

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, _SPLIT_CODE[self.split], _VARIANT_CODE[self.variant], index])

    def layout(self, index: int) -> list[dict[str, Any]]:
        """The items of scene ``index`` in paste order: ``item`` (index into the source split),
        ``cls`` (0-9), ``top``, ``left``, ``size`` and ``marked`` (context variant)."""
        return self._layout(self._rng(index))

    def _layout(self, rng: np.random.Generator) -> list[dict[str, Any]]:
        count = int(rng.integers(self.items[0], self.items[1] + 1))
        context = self.variant == "context"
        if context:  # the marked item comes last, so it is pasted on top and stays fully visible
            marked = self._classes[int(rng.integers(len(self._classes)))]
            others = [c for c in self._classes if c != marked]
            classes = [others[int(rng.integers(len(others)))] for _ in range(count - 1)] + [marked]
            picks = [self._by_class[c][int(rng.integers(len(self._by_class[c])))] for c in classes]
        elif self.variant == "consensus":
            members = self._by_class[self._classes[int(rng.integers(len(self._classes)))]]
            picks = [members[int(rng.integers(len(members)))] for _ in range(count)]
        else:
            picks = [self.pool[int(rng.integers(len(self.pool)))] for _ in range(count)]
        placed: list[dict[str, Any]] = []
        boxes = np.zeros((0, 3), dtype=np.int64)  # top, left, size of the items placed so far
        for n, item in enumerate(picks):
            size = round(ITEM_SIZE * rng.uniform(*self.scale))
            # of 16 candidate positions take the one overlapping earlier items least (first on ties)
            candidates = rng.integers(0, self.canvas_size - size + 1, size=(16, 2))
            top, left = candidates[:, :1], candidates[:, 1:]
            bt, bl, bs = boxes[:, 0], boxes[:, 1], boxes[:, 2]
            rows = np.clip(np.minimum(top + size, bt + bs) - np.maximum(top, bt), 0, None)
            cols = np.clip(np.minimum(left + size, bl + bs) - np.maximum(left, bl), 0, None)
            choice = int(np.argmin((rows * cols).sum(axis=1)))
            top_, left_ = int(candidates[choice, 0]), int(candidates[choice, 1])
            boxes = np.concatenate([boxes, [[top_, left_, size]]])
            placed.append(
                {"item": int(item), "cls": int(self._labels[item]), "top": top_, "left": left_,
                 "size": size, "marked": context and n == count - 1}
            )  # fmt: skip
        return placed

    def scene(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Render scene ``index``: ``uint8 (3, S, S)`` image and ``int64 (S, S)`` mask."""
        if not 0 <= index < self.num_scenes:
            raise IndexError(f"index {index} out of range for {self.num_scenes} scenes")
        rng = self._rng(index)
        placed = self._layout(rng)
        size = self.canvas_size
        background = _hsv(rng.uniform(), rng.uniform(0.2, 0.6), rng.uniform(0.05, 0.3))
        canvas = background + 6.0 * rng.standard_normal((size, size, 3), dtype=np.float32)
        mask = np.zeros((size, size), dtype=np.int64)
        label_all = next((p["cls"] for p in placed if p["marked"]), None)
        for p in placed:
            matrix = _resize_matrix(p["size"])
            value = matrix @ (self._images[p["item"]].astype(np.float32) / 255) @ matrix.T
            if p["marked"]:  # neutral white-grey: no other item is ever unsaturated
                colour = _hsv(0.0, 0.0, rng.uniform(0.85, 1.0))
            else:
                colour = _hsv(rng.uniform(), rng.uniform(0.55, 1.0), rng.uniform(0.7, 1.0))
            alpha = np.clip(value / self.threshold, 0.0, 1.0)[..., None]
            rows = slice(p["top"], p["top"] + p["size"])
            cols = slice(p["left"], p["left"] + p["size"])
            shaded = colour * (0.45 + 0.55 * value[..., None])
            canvas[rows, cols] = canvas[rows, cols] * (1 - alpha) + shaded * alpha
            label = (p["cls"] if label_all is None else label_all) + 1
            mask[rows, cols][value > self.threshold] = label
        image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
        return torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(mask)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if -self.num_scenes <= index < 0:
            index += self.num_scenes
        image, mask = self.scene(index)
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return {"image": image, "mask": mask, "name": f"fashion_{self.variant}_{self.split}_{index:06d}"}

    def __repr__(self) -> str:
        return (
            f"FashionScenes(split={self.split!r}, num_scenes={self.num_scenes}, canvas_size={self.canvas_size}, "
            f"items={self.items}, scale={self.scale}, variant={self.variant!r}, seed={self.seed})"
        )
