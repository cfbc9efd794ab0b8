"""Paired image/mask transforms for semantic segmentation (mmseg-style training pipeline).

Pure torch (no torchvision import, which keeps DataLoader workers light). Both transforms map
``(image uint8 (3, H, W), mask int64 (H, W))`` to ``(image float32 (3, h, w), mask int64 (h, w))``
with the image normalised as ``(x / 255 - mean) / std``. Randomness comes from the optional
``generator`` argument (a ``torch.Generator``) or torch's global generator, which the DataLoader
seeds per worker.

Training order (as in mmseg): random rescale by a factor in ``scale_range`` (bilinear image,
nearest mask) -> random crop to ``crop_size`` -> horizontal flip -> photometric distortion ->
normalise -> pad to ``crop_size`` at the bottom/right (image 0 after normalisation, i.e. the mean
colour; mask ``ignore_index``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
        raise ValueError(f"{name} must be a positive int or a pair (height, width) of them, got {size!r}")
    return int(size[0]), int(size[1])


def _stats(values: Sequence[float], name: str) -> Tensor:
    tensor = torch.as_tensor(values, dtype=torch.float32).flatten()
    if tensor.numel() != 3 or (name == "std" and bool((tensor <= 0).any())):
        raise ValueError(f"{name} must be 3 numbers (0-1 scale){' > 0' if name == 'std' else ''}, got {values!r}")
    return tensor.view(3, 1, 1)


def _check(image: Tensor, mask: Tensor | None) -> None:
    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be a (3, H, W) tensor, got {getattr(image, 'shape', type(image))}")
    if mask is not None and (not isinstance(mask, Tensor) or tuple(mask.shape) != tuple(image.shape[1:])):
        raise ValueError(
            f"mask must be a ({image.shape[1]}, {image.shape[2]}) tensor matching the image, "
            f"got {getattr(mask, 'shape', type(mask))}"
        )


def _to_unit(image: Tensor) -> Tensor:
    """uint8 [0, 255] (or float already in [0, 1]) to float32 [0, 1]."""
    return image.float().div_(255) if image.dtype == torch.uint8 else image.float()


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _coin(generator: torch.Generator | None, p: float = 0.5) -> bool:
    return float(torch.rand((), generator=generator)) < p


def resize_nearest(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of an integer ``(H, W)`` mask (pixel-centre sampling, exact for ints)."""
    height, width = mask.shape
    rows = ((torch.arange(size[0], device=mask.device) + 0.5) * (height / size[0])).long().clamp_(max=height - 1)
    cols = ((torch.arange(size[1], device=mask.device) + 0.5) * (width / size[1])).long().clamp_(max=width - 1)
    return mask[rows][:, cols]


def resize_bilinear(image: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of a float ``(C, H, W)`` image (half-pixel centres, no antialiasing)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]


def adjust_saturation(image: Tensor, factor: float) -> Tensor:
    """Blend a float ``[0, 1]`` RGB image with its grey (ITU-R 601 luma): 0 gives grey, 1 the input."""
    grey = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).unsqueeze(0)
    return (grey + factor * (image - grey)).clamp_(0, 1)


def shift_hue(image: Tensor, shift: float) -> Tensor:
    """Rotate the hue of a float ``[0, 1]`` RGB image by ``shift`` turns (HSV round trip)."""
    value, argmax = image.max(0)
    chroma = value - image.min(0).values
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    r, g, b = image
    hue = torch.stack([((g - b) / safe) % 6, (b - r) / safe + 2, (r - g) / safe + 4]).gather(0, argmax[None])[0]
    hue = torch.where(chroma > 0, hue, torch.zeros_like(hue)) + 6 * shift  # hue in sextants [0, 6)
    channels = []
    for n in (5.0, 3.0, 1.0):  # R, G, B of HSV -> RGB: V - C * clamp(min(k, 4 - k), 0, 1)
        k = (n + hue) % 6
        channels.append(value - chroma * torch.minimum(k, 4 - k).clamp(0, 1))
    return torch.stack(channels).clamp_(0, 1)


def photometric_distortion(image: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """mmseg's PhotoMetricDistortion on a float ``[0, 1]`` RGB image, each step with probability 0.5.

    Brightness: add ``U(-32, 32) / 255``; contrast: multiply by ``U(0.5, 1.5)`` (before or after the
    colour steps, chosen at random); saturation: scale by ``U(0.5, 1.5)``; hue: shift by
    ``U(-18, 18)`` on OpenCV's 0-180 hue scale (up to 36 degrees). The result is clamped to ``[0, 1]``.
    """
    if _coin(generator):
        image = (image + _uniform(-32, 32, generator) / 255).clamp_(0, 1)
    contrast_first = _coin(generator)

    def contrast(x: Tensor) -> Tensor:
        return (x * _uniform(0.5, 1.5, generator)).clamp_(0, 1) if _coin(generator) else x

    if contrast_first:
        image = contrast(image)
    if _coin(generator):
        image = adjust_saturation(image, _uniform(0.5, 1.5, generator))
    if _coin(generator):
        image = shift_hue(image, _uniform(-18, 18, generator) / 180)
    if not contrast_first:
        image = contrast(image)
    return image


class SegTrainTransform:
    """Training augmentation: random rescale, crop with ignore padding, flip, photometric, normalise.

    Args:
        crop_size: output ``(height, width)`` (an int for a square crop).
        scale_range: range of the random rescale factor relative to the input size.
        flip: random horizontal flip with probability 0.5.
        photometric: apply :func:`photometric_distortion`.
        mean: per-channel mean on the 0-1 scale.
        std: per-channel standard deviation on the 0-1 scale.
        ignore_index: mask value of padded pixels.

    Shape:
        ``(image uint8 (3, H, W), mask int64 (H, W)) -> (float32 (3, h, w), int64 (h, w))`` with
        ``(h, w) = crop_size``.
    """

    def __init__(
        self,
        crop_size: int | tuple[int, int],
        *,
        scale_range: tuple[float, float] = (0.5, 2.0),
        flip: bool = True,
        photometric: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        ignore_index: int = 255,
    ) -> None:
        self.crop_size = _pair(crop_size, "crop_size")
        if not (len(scale_range) == 2 and 0 < scale_range[0] <= scale_range[1]):
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range!r}")
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.flip, self.photometric, self.ignore_index = bool(flip), bool(photometric), int(ignore_index)
        self.mean, self.std = _stats(mean, "mean"), _stats(std, "std")

    def __call__(self, image: Tensor, mask: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        if mask is None:
            raise ValueError("SegTrainTransform needs a mask, got None")
        _check(image, mask)
        height, width = image.shape[1:]
        factor = _uniform(*self.scale_range, generator)
        size = (max(1, round(height * factor)), max(1, round(width * factor)))
        image = resize_bilinear(_to_unit(image), size)
        mask = resize_nearest(mask, size)
        crop_h, crop_w = self.crop_size
        top = int(torch.randint(0, max(size[0] - crop_h, 0) + 1, (), generator=generator))
        left = int(torch.randint(0, max(size[1] - crop_w, 0) + 1, (), generator=generator))
        image = image[:, top : top + crop_h, left : left + crop_w]
        mask = mask[top : top + crop_h, left : left + crop_w]
        if self.flip and _coin(generator):
            image, mask = image.flip(-1), mask.flip(-1)
        if self.photometric:
            image = photometric_distortion(image, generator)
        image = (image - self.mean.to(image.device)) / self.std.to(image.device)
        pad_h, pad_w = crop_h - image.shape[1], crop_w - image.shape[2]
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), value=0.0)
            mask = F.pad(mask, (0, pad_w, 0, pad_h), value=self.ignore_index)
        return image.contiguous(), mask.contiguous()

    def __repr__(self) -> str:
        return (
            f"SegTrainTransform(crop_size={self.crop_size}, scale_range={self.scale_range}, flip={self.flip}, "
            f"photometric={self.photometric}, ignore_index={self.ignore_index})"
        )


class SegEvalTransform:
    """Evaluation transform: normalise the image, keep the mask (full resolution, no resizing).

    Args:
        mean: per-channel mean on the 0-1 scale.
        std: per-channel standard deviation on the 0-1 scale.

    Shape:
        ``(image uint8 (3, H, W), mask int64 (H, W) or None) -> (float32 (3, H, W), mask)``.
    """

    def __init__(self, *, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        self.mean, self.std = _stats(mean, "mean"), _stats(std, "std")

    def __call__(
        self, image: Tensor, mask: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        _check(image, mask)
        return (_to_unit(image) - self.mean.to(image.device)) / self.std.to(image.device), mask

    def __repr__(self) -> str:
        return "SegEvalTransform()"


def denormalize(image: Tensor, *, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> Tensor:
    """Undo the normalisation: float ``(3, H, W)`` (or ``(B, 3, H, W)``) to ``uint8`` in ``[0, 255]``."""
    mean_t = torch.as_tensor(mean, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std_t = torch.as_tensor(std, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return ((image * std_t + mean_t) * 255).round_().clamp_(0, 255).to(torch.uint8)
