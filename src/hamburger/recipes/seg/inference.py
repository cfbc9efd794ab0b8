"""Test-time inference: single scale, multi-scale + flip (logits summed, as HamNet), sliding window.

Every function takes a segmentation model returning ``{"out": logits}`` (or a bare tensor) and a
normalised image batch ``(B, 3, H, W)``, and returns logits ``(B, K, H, W)`` at the input size.

Every forward pass sees an input whose height and width are aligned to the model's output stride ``s``
(:func:`~hamburger.models.segmentation.aligned_size`: a multiple of ``s``, or a multiple plus one for a model
with ``align_corners=True``): the batch (each rescaled view, each sliding window) is zero-padded at the
bottom/right (zero = the mean colour after normalisation) and the logits are cropped back. Fed directly, a
233 x 197 image gives 30 x 25 logits that are stretched back by 233/30 instead of 8, so the predictions drift
by up to half a cell towards the bottom/right. ``s`` is ``model.output_stride``
(:class:`~hamburger.models.SegmentationModel`), ``size_divisor=`` overrides it, and 32 is used for a module
that declares none (mmseg's ``size_divisor``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...models.segmentation import aligned_size
from ...utils import check_pair, check_positive_int

__all__ = [
    "DEFAULT_SIZE_DIVISOR",
    "INFERENCE_MODES",
    "check_inference_options",
    "infer",
    "model_size_divisor",
    "multiscale_logits",
    "single_logits",
    "slide_logits",
]

INFERENCE_MODES = ("single", "multiscale", "slide")
DEFAULT_SIZE_DIVISOR = 32


def model_size_divisor(model: nn.Module, size_divisor: int | None = None) -> int:
    """``size_divisor`` if given, else ``model.output_stride``, else :data:`DEFAULT_SIZE_DIVISOR` (32)."""
    if size_divisor is not None:
        return check_positive_int("size_divisor", size_divisor)
    stride = getattr(model, "output_stride", None)
    if isinstance(stride, int) and not isinstance(stride, bool) and stride >= 1:
        return stride
    return DEFAULT_SIZE_DIVISOR


def _align_corners(model: nn.Module) -> bool:
    return bool(getattr(model, "align_corners", False))


def _forward(model: nn.Module, images: torch.Tensor, size_divisor: int | None) -> torch.Tensor:
    """One forward pass on ``images`` zero-padded to an aligned size; logits cropped back to ``(H, W)``."""
    divisor = model_size_divisor(model, size_divisor)
    align_corners = _align_corners(model)
    h, w = images.shape[-2:]
    hp = aligned_size(h, divisor, align_corners=align_corners)
    wp = aligned_size(w, divisor, align_corners=align_corners)
    if (hp, wp) != (h, w):
        images = F.pad(images, (0, wp - w, 0, hp - h))
    out = model(images)
    logits = out["out"] if isinstance(out, dict) else out
    if logits.shape[-2:] != (hp, wp):
        logits = F.interpolate(logits, size=(hp, wp), mode="bilinear", align_corners=align_corners)
    return logits[..., :h, :w]


def single_logits(model: nn.Module, images: torch.Tensor, *, size_divisor: int | None = None) -> torch.Tensor:
    """One forward pass on the batch padded to an aligned size; logits at the input size."""
    return _forward(model, images, size_divisor)


def _check_window(
    crop_size: int | Sequence[int], stride: int | Sequence[int], prefix: str = ""
) -> tuple[tuple[int, int], tuple[int, int]]:
    crop_name, stride_name = f"{prefix}crop_size", f"{prefix}stride"
    crop, step = check_pair(crop_name, crop_size), check_pair(stride_name, stride)
    if step[0] > crop[0] or step[1] > crop[1]:
        raise ValueError(
            f"sliding-window {stride_name} must be <= {crop_name} in both dimensions, got {stride_name}={stride!r} "
            f"and {crop_name}={crop_size!r}: the pixels between two windows would be covered by none"
        )
    return crop, step


def check_inference_options(
    *,
    mode: str = "single",
    scales: Sequence[float] = (1.0,),
    crop_size: int | Sequence[int] | None = None,
    stride: int | Sequence[int] | None = None,
    size_divisor: int | None = None,
    prefix: str = "",
) -> None:
    """Raise ``ValueError`` / ``TypeError`` naming the option for a combination :func:`infer` cannot run.

    ``SegModule`` calls it at construction with ``prefix="eval_"`` (the names of its options), so a bad
    ``eval_*`` setting fails before any training.
    """
    if mode not in INFERENCE_MODES:
        raise ValueError(f"{prefix}mode must be one of {list(INFERENCE_MODES)}, got {mode!r}")
    if mode == "multiscale" and (not scales or min(scales) <= 0):
        raise ValueError(f"{prefix}scales must be a non-empty list of positive floats, got {list(scales or ())!r}")
    if mode == "slide" or (mode == "multiscale" and crop_size is not None):
        if crop_size is None or stride is None:
            raise ValueError(
                f"sliding-window inference needs {prefix}crop_size and {prefix}stride, got "
                f"{prefix}crop_size={crop_size!r}, {prefix}stride={stride!r}"
            )
        _check_window(crop_size, stride, prefix)
    if size_divisor is not None:
        check_positive_int("size_divisor", size_divisor)


def slide_logits(
    model: nn.Module,
    images: torch.Tensor,
    *,
    crop_size: int | Sequence[int],
    stride: int | Sequence[int],
    size_divisor: int | None = None,
) -> torch.Tensor:
    """Sliding-window inference (mmseg ``slide``): overlapping crops, logits averaged where they overlap.

    ``stride`` must not exceed ``crop_size`` (else some pixels lie in no window). Images smaller than the crop
    are zero-padded (after normalisation) to the crop, and each window is padded to an aligned size when the
    crop is not one (``crop_size`` 512 or 513 need none at stride 8 / ``align_corners=True``); the padding is
    cropped off again.
    """
    (ch, cw), (sh, sw) = _check_window(crop_size, stride)
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
            crop_logits = _forward(model, images[:, :, y0 : y0 + ch, x0 : x0 + cw], size_divisor)
            if logits is None:
                logits = images.new_zeros((b, crop_logits.shape[1], hp, wp), dtype=crop_logits.dtype)
            logits[:, :, y0 : y0 + ch, x0 : x0 + cw] += crop_logits
            count[:, :, y0 : y0 + ch, x0 : x0 + cw] += 1
    assert logits is not None  # rows, cols >= 1: at least one window ran
    uncovered = int((count[:, :, :h, :w] == 0).sum())
    if uncovered:  # unreachable with stride <= crop_size; never let 0/0 = NaN reach an argmax
        raise RuntimeError(f"sliding-window inference left {uncovered} pixels in no window")
    return (logits / count)[:, :, :h, :w]


def _one_scale(
    model: nn.Module, images: torch.Tensor, mode: str, crop_size, stride, size_divisor: int | None
) -> torch.Tensor:
    if mode == "slide":
        return slide_logits(model, images, crop_size=crop_size, stride=stride, size_divisor=size_divisor)
    return single_logits(model, images, size_divisor=size_divisor)


def multiscale_logits(
    model: nn.Module,
    images: torch.Tensor,
    *,
    scales: Sequence[float] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75),
    flip: bool = True,
    base_mode: str = "single",
    crop_size: int | Sequence[int] | None = None,
    stride: int | Sequence[int] | None = None,
    size_divisor: int | None = None,
) -> torch.Tensor:
    """Sum of logits over rescaled (and horizontally flipped) copies, each resized back to ``(H, W)``.

    HamNet's ``test.py`` sums raw logits over the scales (0.5 ... 1.75) and their flips; argmax is unchanged
    by the constant factor, so the sum is returned as is. Each view is padded to an aligned size on its own.
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
            logits = _one_scale(model, view, base_mode, crop_size, stride, size_divisor)
            if flipped:
                logits = logits.flip(-1)
            if logits.shape[-2:] != (h, w):
                logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            total = logits if total is None else total + logits
    assert total is not None  # scales is non-empty (checked above)
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
    size_divisor: int | None = None,
) -> torch.Tensor:
    """Dispatch on ``mode``: ``"single"``, ``"slide"`` (needs ``crop_size``/``stride``) or ``"multiscale"``
    (``scales`` x optional ``flip``, each scale run single or sliding when ``crop_size`` is given).

    ``size_divisor`` overrides the stride every forward input is padded to (default ``model.output_stride``,
    or 32 for a module without one); see the module docstring.
    """
    check_inference_options(mode=mode, scales=scales, crop_size=crop_size, stride=stride, size_divisor=size_divisor)
    if mode == "single":
        return single_logits(model, images, size_divisor=size_divisor)
    if mode == "slide":
        assert crop_size is not None and stride is not None  # check_inference_options requires both
        return slide_logits(model, images, crop_size=crop_size, stride=stride, size_divisor=size_divisor)
    base = "slide" if crop_size is not None else "single"
    return multiscale_logits(
        model, images, scales=scales, flip=flip, base_mode=base, crop_size=crop_size, stride=stride,
        size_divisor=size_divisor,
    )  # fmt: skip
