"""File reading and validation shared by the on-disk dataset formats.

Images are read with Pillow (imported inside the functions). 8-bit files give ``uint8 (3, H, W)`` tensors;
high-bit-depth files (16-bit PNG / TIFF, 32-bit integer or float TIFF) and any image read with a
non-default ``scale`` give ``float32 (3, H, W)`` tensors in ``[0, 1]`` (see :func:`read_image`). Nothing is
clipped. Masks are read as single-channel index PNGs (mode ``L``, ``P``, ``I``, ``I;16`` or ``1``) and
returned as ``int64`` numpy arrays of raw values, before any label mapping.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence

import numpy as np
import torch

from ....utils import IGNORE_INDEX

MASK_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L", "1")
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
"""Pillow modes of single-channel images with more than 8 bits per pixel (``I;16*``: 16-bit, ``I``: 32-bit
integer, or 16-bit PNG in Pillow < 10, ``F``: 32-bit float)."""
IMAGE_SCALES = ("dtype", "minmax")

_WORKER_WRAPPED = re.compile(r"^Caught (\w+) (in DataLoader worker process \d+)\.\nOriginal Traceback")


class DatasetError(ValueError):
    """A dataset file or layout problem; the message names the file, folder or list involved.

    The message stays one line when the error is raised in a ``DataLoader`` worker: torch re-raises it in
    the main process as ``DatasetError("Caught DatasetError in DataLoader worker process N. Original
    Traceback ...")``; that form is reduced here to the original message plus the worker.
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            match = _WORKER_WRAPPED.match(args[0])
            if match is not None:
                last = args[0].rstrip().splitlines()[-1]  # "pkg.mod.DatasetError: <original message>"
                _, sep, original = last.partition(f"{match.group(1)}: ")
                if sep:
                    args = (f"{original} ({match.group(2)})",)
        super().__init__(*args)


def check_image_scale(value: object, name: str = "image_scale") -> str | float:
    """Return a valid image scale: ``"dtype"``, ``"minmax"`` or a positive finite number (the stored maximum).

    Raises:
        TypeError: ``value`` is neither a string nor a number.
        ValueError: an unknown string or a number that is not positive and finite.
    """
    expected = "'dtype', 'minmax' or a positive number (the largest stored value, e.g. 4095 for 12-bit data)"
    if isinstance(value, str):
        if value not in IMAGE_SCALES:
            raise ValueError(f"{name} must be {expected}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return float(value)


def _bit_depth_max(im, path: str) -> float | None:
    """Largest value of the stored integer type of a high-bit-depth Pillow image (None for float data)."""
    if im.mode.startswith("I;16"):
        return 65535.0
    if im.mode == "F":
        return None
    # mode "I": a 16-bit PNG in Pillow < 10, or a 32-bit integer TIFF; TIFF says its bits per sample
    bits = 16
    tags = getattr(im, "tag_v2", None)
    if tags is not None and tags.get(258):
        bits = int(tags.get(258)[0])
    return float(2**bits - 1)


def _reason(err: Exception) -> str:
    """One line describing a decoding error."""
    text = " ".join(str(err).split("\n")).strip()
    if isinstance(err, OSError) and text:
        return text
    kind = (
        type(err).__qualname__
        if type(err).__module__ == "builtins"
        else f"{type(err).__module__}.{type(err).__qualname__}"
    )
    return f"{kind}: {text}" if text else kind


def read_image(path: str | os.PathLike, *, scale: str | float = "dtype") -> torch.Tensor:
    """Read an image file as RGB (a single channel is repeated three times).

    Args:
        path: image file (anything Pillow reads: JPEG, PNG incl. 16-bit, TIFF incl. 16/32-bit, BMP, ...).
        scale: how stored values map to ``[0, 1]``:

            - ``"dtype"`` (default): by the bit depth of the file. 8-bit files are returned unchanged as
              ``uint8`` (the transforms divide by 255); 16-bit files are divided by 65535, 32-bit integer TIFFs
              by ``2**32 - 1``; float TIFFs must already lie in ``[0, 1]``.
            - ``"minmax"``: per image, ``(x - min) / (max - min)`` over all pixels and channels (a constant
              image gives 0). For 12-bit data in 16-bit containers and other data that uses part of the range.
            - a number ``M``: ``x / M``, e.g. ``4095`` for 12-bit data; a stored value above ``M`` is an error.

    Returns:
        ``uint8`` tensor ``(3, H, W)`` for 8-bit files with ``scale="dtype"``, else ``float32 (3, H, W)`` in
        ``[0, 1]``.

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetError: the file exists but Pillow cannot decode it, or its values do not fit ``scale``
            (never clipped silently).
    """
    from PIL import Image

    path = os.fspath(path)
    scale = check_image_scale(scale)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in HIGH_BIT_MODES:
                stored_max = _bit_depth_max(im, path)
                array = np.asarray(im)
            else:  # 8 bits per channel (L, P, RGB, RGBA, CMYK, ...; 16-bit RGB PNGs are reduced to 8 bits by PIL)
                stored_max = 255.0
                array = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as err:  # a decoder fails on bad data in many ways (OSError mostly, struct.error, ...)
        raise DatasetError(f"cannot read image {path}: {_reason(err)}") from err
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if scale == "dtype" and array.dtype == np.uint8:
        return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise DatasetError(f"image {path} has non-finite values (NaN or inf)")
    low, high = float(values.min()), float(values.max())
    if scale == "minmax":
        values = (values - low) / (high - low) if high > low else np.zeros_like(values)
    else:
        limit = stored_max if isinstance(scale, str) else scale  # the only string left is "dtype"
        if limit is None:  # float data read with "dtype": must already be in [0, 1]
            limit = 1.0
        if low < 0 or high > limit:
            raise DatasetError(
                f"image {path} (mode {im.mode}) has values in [{low:g}, {high:g}], outside [0, {limit:g}] of "
                f"image_scale={scale!r}; pass image_scale='minmax' (per image) or the largest stored value"
            )
        values = values / limit
    return torch.from_numpy(values.astype(np.float32)).permute(2, 0, 1).contiguous()


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a single-channel index PNG mask (palette PNGs give their palette indices, not colours).

    Returns:
        ``int64`` array of shape ``(H, W)`` with the raw stored values.

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetError: the file is unreadable, is not a PNG file (whatever its name: a JPEG saved as
            ``.png`` has lossy, wrong labels at every edge) or is not a single-channel index image (e.g. an
            RGB colour rendering of the labels).
    """
    from PIL import Image

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"mask file not found: {path}")
    try:
        with Image.open(path) as im:
            if im.format != "PNG":
                raise DatasetError(
                    f"mask {path} is a {im.format or 'non-PNG'} file; masks must be PNG files (lossless): "
                    f"a JPEG mask has wrong labels along every edge"
                )
            mode = im.mode
            if mode not in MASK_MODES:
                raise DatasetError(
                    f"mask {path} has image mode {mode!r}; expected a single-channel index image "
                    f"(one of {', '.join(MASK_MODES)}), e.g. a grayscale or palette PNG of class ids"
                )
            array = np.asarray(im)
    except DatasetError:
        raise
    except Exception as err:
        raise DatasetError(f"cannot read mask {path}: {_reason(err)}") from err
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
