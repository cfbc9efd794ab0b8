"""Test-time inference: single scale, multi-scale + flip (logits summed, as HamNet), sliding window.

Every function takes a segmentation model returning ``{"out": logits}`` (or a bare tensor) and a
normalised image batch ``(B, 3, H, W)``, and returns logits ``(B, K, H, W)`` at the input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["INFERENCE_MODES", "infer", "multiscale_logits", "single_logits", "slide_logits"]

INFERENCE_MODES = ("single", "multiscale", "slide")


def _forward(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    out = model(images)
    logits = out["out"] if isinstance(out, dict) else out
    if logits.shape[-2:] != images.shape[-2:]:
        logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return logits


def single_logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """One forward pass; logits resized to the input size if the model returns a smaller map."""
    return _forward(model, images)


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (int(value), int(value)) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or (h, w), got {value!r}")
    return pair


def slide_logits(
    model: nn.Module, images: torch.Tensor, *, crop_size: int | Sequence[int], stride: int | Sequence[int]
) -> torch.Tensor:
    """Sliding-window inference (mmseg ``slide``): overlapping crops, logits averaged where they overlap.

    Images smaller than the crop are zero-padded (after normalisation) and the padding cropped off again.
    """
    ch, cw = _pair(crop_size, "crop_size")
    sh, sw = _pair(stride, "stride")
    b, _, h, w = images.shape
    pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
    if pad_h or pad_w:
        images = F.pad(images, (0, pad_w, 0, pad_h))
    hp, wp = images.shape[-2:]
    rows = max(-(-(hp - ch) // sh), 0) + 1
    cols = max(-(-(wp - cw) // sw), 0) + 1
    logits = None
    count = images.new_zeros((1, 1, hp, wp))
    for r in range(rows):
        for c in range(cols):
            y0 = min(r * sh, hp - ch)
            x0 = min(c * sw, wp - cw)
            crop_logits = _forward(model, images[:, :, y0 : y0 + ch, x0 : x0 + cw])
            if logits is None:
                logits = images.new_zeros((b, crop_logits.shape[1], hp, wp), dtype=crop_logits.dtype)
            logits[:, :, y0 : y0 + ch, x0 : x0 + cw] += crop_logits
            count[:, :, y0 : y0 + ch, x0 : x0 + cw] += 1
    return (logits / count)[:, :, :h, :w]


def _one_scale(model: nn.Module, images: torch.Tensor, mode: str, crop_size, stride) -> torch.Tensor:
    if mode == "slide":
        return slide_logits(model, images, crop_size=crop_size, stride=stride)
    return single_logits(model, images)


def multiscale_logits(
    model: nn.Module,
    images: torch.Tensor,
    *,
    scales: Sequence[float] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75),
    flip: bool = True,
    base_mode: str = "single",
    crop_size: int | Sequence[int] | None = None,
    stride: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """Sum of logits over rescaled (and horizontally flipped) copies, each resized back to ``(H, W)``.

    HamNet's ``test.py`` sums raw logits over the scales (0.5 ... 1.75) and their flips; argmax is unchanged
    by the constant factor, so the sum is returned as is.
    """
    if not scales or min(scales) <= 0:
        raise ValueError(f"scales must be a non-empty list of positive floats, got {list(scales)!r}")
    h, w = images.shape[-2:]
    total = None
    for scale in scales:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        scaled = images if size == (h, w) else F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        views = [(scaled, False), (scaled.flip(-1), True)] if flip else [(scaled, False)]
        for view, flipped in views:
            logits = _one_scale(model, view, base_mode, crop_size, stride)
            if flipped:
                logits = logits.flip(-1)
            if logits.shape[-2:] != (h, w):
                logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            total = logits if total is None else total + logits
    return total


def infer(
    model: nn.Module,
    images: torch.Tensor,
    *,
    mode: str = "single",
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    crop_size: int | Sequence[int] | None = None,
    stride: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """Dispatch on ``mode``: ``"single"``, ``"slide"`` (needs ``crop_size``/``stride``) or ``"multiscale"``
    (``scales`` x optional ``flip``, each scale run single or sliding when ``crop_size`` is given)."""
    if mode not in INFERENCE_MODES:
        raise ValueError(f"inference mode must be one of {INFERENCE_MODES}, got {mode!r}")
    if mode == "slide" or (mode == "multiscale" and crop_size is not None):
        if crop_size is None or stride is None:
            raise ValueError(f"sliding-window inference needs crop_size and stride, got {crop_size!r}, {stride!r}")
    if mode == "single":
        return single_logits(model, images)
    if mode == "slide":
        return slide_logits(model, images, crop_size=crop_size, stride=stride)
    base = "slide" if crop_size is not None else "single"
    return multiscale_logits(
        model, images, scales=scales, flip=flip, base_mode=base, crop_size=crop_size, stride=stride
    )
