"""File reading and validation shared by the on-disk dataset formats.

Images are read with Pillow (imported inside the functions) and returned as ``uint8 (3, H, W)``
tensors; masks are read as single-channel index images (PNG mode ``L``, ``P``, ``I``, ``I;16`` or
``1``) and returned as ``int64`` numpy arrays of raw values, before any label mapping.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

IGNORE_INDEX = 255
MASK_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L", "1")


class DatasetError(ValueError):
    """A dataset file or layout problem; the message names the file, folder or list involved."""


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as RGB.

    Returns:
        ``uint8`` tensor of shape ``(3, H, W)``.

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetError: the file exists but Pillow cannot decode it.
    """
    from PIL import Image

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as err:  # PIL raises these for truncated / unknown data
        raise DatasetError(f"cannot read image {path}: {err}") from err
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a single-channel index mask (palette PNGs give their palette indices, not colours).

    Returns:
        ``int64`` array of shape ``(H, W)`` with the raw stored values.

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetError: the file is unreadable or is not a single-channel index image (e.g. an RGB
            colour rendering of the labels).
    """
    from PIL import Image

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"mask file not found: {path}")
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode not in MASK_MODES:
                raise DatasetError(
                    f"mask {path} has image mode {mode!r}; expected a single-channel index image "
                    f"(one of {', '.join(MASK_MODES)}), e.g. a grayscale or palette PNG of class ids"
                )
            array = np.asarray(im)
    except DatasetError:
        raise
    except (OSError, ValueError, SyntaxError) as err:
        raise DatasetError(f"cannot read mask {path}: {err}") from err
    return array.astype(np.int64)


def check_mask(mask: np.ndarray, num_classes: int, path: str | os.PathLike) -> None:
    """Raise :class:`DatasetError` naming ``path`` if a value is outside ``[0, num_classes)`` and not 255."""
    bad = (mask < 0) | ((mask >= num_classes) & (mask != IGNORE_INDEX))
    if bad.any():
        values = np.unique(mask[bad])
        shown = ", ".join(str(v) for v in values[:10]) + (", ..." if values.size > 10 else "")
        raise DatasetError(
            f"mask {os.fspath(path)} has label values [{shown}] outside [0, {num_classes}) "
            f"(255 = ignore is allowed) after label mapping"
        )


def check_same_size(image: torch.Tensor, mask: np.ndarray, image_path, mask_path) -> None:
    """Raise :class:`DatasetError` naming both files if the image and mask sizes differ."""
    if tuple(image.shape[-2:]) != tuple(mask.shape):
        h, w = image.shape[-2:]
        mh, mw = mask.shape
        raise DatasetError(
            f"image {os.fspath(image_path)} is {w}x{h} (WxH) but its mask {os.fspath(mask_path)} is {mw}x{mh}"
        )


def read_list(path: str | os.PathLike) -> list[str]:
    """Read an image-id list file (one id per line; ``/JPEGImages/x.jpg /SegmentationClassAug/x.png``
    lines give the id ``x``). Blank lines are skipped."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"split list file not found: {path}")
    ids = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if parts:
                ids.append(os.path.splitext(os.path.basename(parts[0]))[0])
    return ids


def resolve_root(root: str | os.PathLike | None, candidates: Sequence[str], marker: str, dataset: str) -> str:
    """Find the dataset folder: the first of ``root/<candidate>`` that contains ``marker``.

    ``candidates`` lists relative paths tried in order (``""`` is ``root`` itself), so a user may pass
    either the parent folder or the dataset folder itself.
    """
    if root is None:
        raise ValueError(f"dataset {dataset!r} needs root=<folder>, got root=None")
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{dataset} root folder not found: {root}")
    for candidate in candidates:
        folder = os.path.join(root, candidate) if candidate else root
        if os.path.exists(os.path.join(folder, marker)):
            return os.path.normpath(folder)
    tried = ", ".join(os.path.join(root, c, marker) if c else os.path.join(root, marker) for c in candidates)
    raise FileNotFoundError(f"{dataset} layout not found under {root}: looked for {tried}")


def bitwise_palette(num_colors: int) -> torch.Tensor:
    """The PASCAL VOC colour map: bits of the label index spread over the high bits of R, G and B.

    Returns:
        ``uint8`` tensor of shape ``(num_colors, 3)``; entry 0 is black, entry 1 is (128, 0, 0).
    """
    palette = np.zeros((num_colors, 3), dtype=np.uint8)
    for index in range(num_colors):
        value, rgb = index, [0, 0, 0]
        for bit in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << bit
            value >>= 3
        palette[index] = rgb
    return torch.from_numpy(palette)
