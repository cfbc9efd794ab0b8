"""Scores of an experiment run: context-dependent pixels and mean +- std over seeds.

*Context-dependent pixels* of a FashionScenes scene are the item pixels whose label differs from the class of the
item under them (from :meth:`FashionScenes.layout`): in the ``context`` variant every item not marked, whose label
is the far-away marked item's class. A local model cannot get them right; "ctx acc" is the accuracy on them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

__all__ = ["aggregate", "context_pixels", "ctx_counts", "item_class_mask"]


def item_class_mask(dataset: Any, index: int) -> torch.Tensor:
    """``int64 (S, S)``: ``class + 1`` of the item under each pixel of scene ``index`` (0: background).

    The same pixels as the scene's mask (item intensity above the dataset's ``threshold``, later items on top), but
    each labelled with its *own* item's class rather than the label the variant gives it.
    """
    from ..recipes.seg.data.fashion_scenes import _resize_matrix

    size = dataset.canvas_size
    own = np.zeros((size, size), dtype=np.int64)
    for item in dataset.layout(index):
        matrix = _resize_matrix(item["size"])
        value = matrix @ (dataset._images[item["item"]].astype(np.float32) / 255) @ matrix.T
        rows = slice(item["top"], item["top"] + item["size"])
        cols = slice(item["left"], item["left"] + item["size"])
        own[rows, cols][value > dataset.threshold] = item["cls"] + 1
    return torch.from_numpy(own)


def context_pixels(label: torch.Tensor, own: torch.Tensor, *, ignore_index: int = 255) -> torch.Tensor:
    """Boolean mask of the context-dependent pixels: item pixels (``label`` not 0 nor ``ignore_index``) whose
    ``label`` differs from ``own``, the class + 1 of the item under them (:func:`item_class_mask`)."""
    if label.shape != own.shape:
        raise ValueError(f"label and own must have the same shape, got {tuple(label.shape)} and {tuple(own.shape)}")
    return (label != 0) & (label != ignore_index) & (label != own)


def ctx_counts(
    pred: torch.Tensor, label: torch.Tensor, own: torch.Tensor, *, ignore_index: int = 255
) -> tuple[int, int]:
    """``(correct, total)`` over the context-dependent pixels (:func:`context_pixels`) of a prediction."""
    if pred.shape != label.shape:
        raise ValueError(f"pred and label must have the same shape, got {tuple(pred.shape)} and {tuple(label.shape)}")
    ctx = context_pixels(label, own, ignore_index=ignore_index)
    return int((pred[ctx] == label[ctx]).sum()), int(ctx.sum())


def aggregate(values: Iterable[float | None]) -> dict[str, Any]:
    """``{"mean", "std", "n"}`` of the finite values: ``std`` is the sample standard deviation (``n - 1``;
    ``None`` for one value); ``None`` values (not measured) and NaN are left out; no value gives ``mean None``."""
    kept = [float(v) for v in values if v is not None and isinstance(v, (int, float)) and math.isfinite(v)]
    n = len(kept)
    if not n:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(kept) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in kept) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n}
