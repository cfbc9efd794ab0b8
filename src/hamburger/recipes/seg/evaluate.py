"""Evaluate a model on a dataset without a Trainer (single process): confusion-matrix scores.

``hamburger seg validate`` does the same through Lightning (and across GPUs); this function is for
notebooks and scripts:

    >>> from hamburger.recipes.seg.evaluate import evaluate
    >>> from hamburger.recipes.seg.predict import load_module
    >>> module, meta = load_module("runs/seg/fashion_scenes/checkpoints/last.ckpt")
    >>> scores = evaluate(module.net, loader, num_classes=11, mode="multiscale", scales=(0.75, 1.0, 1.25))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .inference import infer
from .metrics import build_confmat, scores_from_confmat

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[dict],
    *,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    ignore_index: int = 255,
    mode: str = "single",
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    crop_size: int | Sequence[int] | None = None,
    stride: int | Sequence[int] | None = None,
) -> dict:
    """Scores (see :func:`~hamburger.recipes.seg.metrics.scores_from_confmat`) of ``model`` over ``batches``.

    ``batches`` yields dicts with a normalised ``"image"`` ``(B, 3, H, W)`` and a ``"mask"`` ``(B, H, W)``
    (``SegDataModule.val_dataloader()`` does). The model is put in eval mode and restored afterwards.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    confmat = build_confmat(num_classes, ignore_index=ignore_index).to(device)
    try:
        for batch in batches:
            images, masks = batch["image"].to(device), batch["mask"].to(device)
            logits = infer(model, images, mode=mode, scales=scales, flip=flip, crop_size=crop_size, stride=stride)
            confmat.update(logits.argmax(1), masks)
    finally:
        model.train(was_training)
    return scores_from_confmat(confmat.compute(), class_names)
