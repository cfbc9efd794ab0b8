"""Segmentation scores from a confusion matrix: mIoU, per-class IoU, pixel accuracy.

The confusion matrix is a torchmetrics ``MulticlassConfusionMatrix`` (pixels whose target is ``ignore_index``
are dropped), so its state is summed across processes under DDP: every rank counts its own pixels and
``compute()`` sums the integer counts, which is exact whatever the split of images between ranks.
"""

from __future__ import annotations

import json
import logging
import math
import os
import weakref
from collections.abc import Sequence

import torch

log = logging.getLogger(__name__)
_WARNED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

__all__ = [
    "build_confmat",
    "classes_without_ground_truth",
    "format_table",
    "scores_from_confmat",
    "warn_classes_without_ground_truth",
    "write_json",
]


def build_confmat(num_classes: int, *, ignore_index: int = 255):
    """A torchmetrics confusion matrix over ``num_classes`` that skips ``ignore_index`` targets."""
    from torchmetrics.classification import MulticlassConfusionMatrix

    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index, validate_args=False)


def scores_from_confmat(confmat: torch.Tensor, class_names: Sequence[str] | None = None) -> dict:
    """Scores from a ``(K, K)`` confusion matrix (rows = target, columns = prediction).

    IoU_k = TP_k / (TP_k + FP_k + FN_k). Classes absent from both target and prediction have no IoU
    (``nan`` per class, reported as ``None`` in JSON) and are left out of the mean, as in mmseg.

    Returns:
        dict with ``mIoU``, ``aAcc`` (pixel accuracy), ``mAcc`` (mean class accuracy), ``per_class``
        (name -> {"IoU", "Acc"}), ``num_pixels`` and ``confusion_matrix`` (list of lists).
    """
    cm = confmat.detach().to(torch.float64).cpu()
    k = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"class_names has {len(names)} entries, confusion matrix has {k} classes")
    tp = cm.diag()
    target = cm.sum(1)
    pred = cm.sum(0)
    union = target + pred - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))
    acc = torch.where(target > 0, tp / target.clamp_min(1), torch.full_like(tp, float("nan")))
    total = cm.sum()
    return {
        "mIoU": float(iou.nanmean()) if (~iou.isnan()).any() else float("nan"),
        "aAcc": float(tp.sum() / total) if total > 0 else float("nan"),
        "mAcc": float(acc.nanmean()) if (~acc.isnan()).any() else float("nan"),
        "per_class": {n: {"IoU": float(i), "Acc": float(a)} for n, i, a in zip(names, iou, acc, strict=True)},
        "num_pixels": int(total),
        "confusion_matrix": confmat.detach().cpu().long().tolist(),
    }


def classes_without_ground_truth(scores: dict) -> list[str]:
    """Names of the classes with no ground-truth pixel in the scored data (their Acc is undefined).

    Such a class has no IoU either unless it was predicted, and is left out of the mean: a mIoU of 100 over a
    split whose foreground is all labelled 255 looks perfect. The table lists them under the rows.
    """
    out = []
    for name, row in scores["per_class"].items():
        acc = row["Acc"]
        if acc is None or math.isnan(acc):
            out.append(name)
    return out


def warn_classes_without_ground_truth(scores: dict, *, key: object | None = None) -> list[str]:
    """Log one warning naming :func:`classes_without_ground_truth`; with ``key`` (e.g. the LightningModule),
    only the first time for a given ``key`` and set of classes, so repeated validations do not repeat it."""
    absent = classes_without_ground_truth(scores)
    if not absent:
        return absent
    if key is not None:
        if _WARNED.get(key) == frozenset(absent):
            return absent
        _WARNED[key] = frozenset(absent)
    log.warning(
        "class(es) %s have no ground-truth pixel in the whole validation split: their IoU/Acc show '-' and they "
        "are left out of the means (masks that store a class as 255, the ignore label? see label_map in "
        "docs/datasets.md)",
        ", ".join(absent),
    )
    return absent


def _pct(value: float) -> str:
    return "   -  " if value is None or math.isnan(value) else f"{100 * value:6.2f}"


def format_table(scores: dict, *, title: str = "") -> str:
    """A plain-text table: one row per class (IoU, Acc in %), then the summary row."""
    names = list(scores["per_class"])
    width = max([5, *map(len, names)])
    lines = [title] if title else []
    lines.append(f"{'class':<{width}}  {'IoU':>6}  {'Acc':>6}")
    lines.append("-" * (width + 16))
    for name in names:
        row = scores["per_class"][name]
        lines.append(f"{name:<{width}}  {_pct(row['IoU'])}  {_pct(row['Acc'])}")
    lines.append("-" * (width + 16))
    lines.append(
        f"mIoU {_pct(scores['mIoU'])}   aAcc {_pct(scores['aAcc'])}   mAcc {_pct(scores['mAcc'])}"
        f"   ({scores['num_pixels']} pixels)"
    )
    absent = classes_without_ground_truth(scores)
    if absent:
        lines.append(
            f"no ground-truth pixels (Acc '-', left out of mAcc; IoU '-' unless predicted): {', '.join(absent)}"
        )
    return "\n".join(lines)


def _json_safe(obj):
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_json(scores: dict, path: str | os.PathLike) -> None:
    """Write ``scores`` as JSON (``nan`` -> ``null``) atomically."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(_json_safe(scores), f, indent=2)
    os.replace(tmp, path)
