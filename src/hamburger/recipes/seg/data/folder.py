"""Generic folder dataset: your own images and index-PNG masks with matching file stems::

    root/images/<stem>.{jpg,jpeg,png,bmp,tif,tiff}
    root/masks/<stem>.png        # single-channel (grayscale or palette) PNG, value = class id, 255 = ignore

Per-split folders are found first when present: ``root/images/<split>/`` + ``root/masks/<split>/``,
or ``root/<split>/images/`` + ``root/<split>/masks/``. Otherwise the flat ``root/images`` +
``root/masks`` pair serves every split (a warning is logged).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ._io import HIGH_BIT_MODES, IGNORE_INDEX, DatasetError, check_image_scale, check_mask, read_mask
from .base import Sample, SegmentationFiles, reduce_zero_label

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def _split_dirs(root: str, split: str) -> tuple[str, str]:
    for images, masks in (
        (os.path.join(root, "images", split), os.path.join(root, "masks", split)),
        (os.path.join(root, split, "images"), os.path.join(root, split, "masks")),
    ):
        if os.path.isdir(images):
            return images, masks
    images = os.path.join(root, "images")
    if not os.path.isdir(images):
        raise FileNotFoundError(
            f"folder dataset: no image folder under {root}: looked for {root}/images/{split}, "
            f"{root}/{split}/images and {root}/images"
        )
    logger.warning("folder dataset %s has no per-split folders; split %r uses all of %s", root, split, images)
    return images, os.path.join(root, "masks")


def _as_label(what: str, value: object, *, allow_str: bool) -> int:
    if allow_str and isinstance(value, str) and value.strip().isdigit():  # JSON object keys are strings
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"label_map {what} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def check_label_map(label_map: Mapping[Any, Any] | None, num_classes: int) -> dict[int, int]:
    """Validate ``label_map`` ``{stored mask value: class id}``: keys in ``[0, 255]`` (ints, or digit strings
    as JSON writes them), values in ``[0, num_classes)`` or 255 (ignore). Returns it with int keys."""
    if label_map is None:
        return {}
    if not isinstance(label_map, Mapping):
        raise TypeError(
            f"label_map must be a dict {{stored mask value: class id}}, e.g. {{255: 1}}, "
            f"got {type(label_map).__name__} {label_map!r}"
        )
    checked: dict[int, int] = {}
    for key, value in label_map.items():
        stored = _as_label("key", key, allow_str=True)
        if not 0 <= stored <= 255:
            raise ValueError(f"label_map keys must be stored mask values in [0, 255], got {key!r}")
        target = _as_label(f"value label_map[{stored}]", value, allow_str=False)
        if not (0 <= target < num_classes or target == IGNORE_INDEX):
            raise ValueError(
                f"label_map[{stored}] must be a class id in [0, {num_classes}) or {IGNORE_INDEX} (ignore), "
                f"got {value!r}"
            )
        checked[stored] = target
    return checked


class FolderSegmentation(SegmentationFiles):
    """Images in ``images/`` and index-PNG masks in ``masks/`` with matching stems.

    When the dataset is built, up to ``check_masks`` masks (evenly spaced over the sorted files) are read,
    mapped and checked: a bad file fails at once, and a warning is logged when some classes never occur in
    them while 255 (ignore) is one of the two most frequent values, the signature of binary masks saved as
    0/255, whose foreground would otherwise be ignored in silence. High-bit-depth images whose values use
    only a small part of their range (12-bit data in 16-bit files) are reported the same way.

    Args:
        root: dataset folder.
        split: split name, used to find per-split folders (see the module docstring).
        num_classes: number of classes; mask values must lie in ``[0, num_classes)`` or be 255 (after
            ``label_map``).
        class_names: optional names (default ``class_0 ... class_{n-1}``).
        palette: optional ``(num_classes, 3)`` colours.
        reduce_zero_label: treat stored 0 as ignore (255) and shift ``k -> k - 1``, as ADE20K does.
        label_map: ``{stored value: class id}`` applied to every mask before the ignore handling and the
            label check, e.g. ``{255: 1}`` for binary 0/255 masks; unlisted values are kept. Keys in
            ``[0, 255]``, values in ``[0, num_classes)`` or 255. Not combined with ``reduce_zero_label``.
        image_scale: how image values map to ``[0, 1]``: ``"dtype"`` (by bit depth: 8-bit / 255, 16-bit
            / 65535), ``"minmax"`` (per image) or the largest stored value (e.g. ``4095`` for 12-bit data).
        check_masks: number of masks checked when the dataset is built (0 skips the check).
        transform: optional ``(image, mask) -> (image, mask)``.
    """

    def __init__(
        self,
        root: str | None = None,
        *,
        split: str,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        palette: Any = None,
        reduce_zero_label: bool = False,
        label_map: Mapping[int, int] | None = None,
        image_scale: str | float = "dtype",
        check_masks: int = 16,
        transform: Callable | None = None,
    ) -> None:
        if root is None:
            raise ValueError("dataset 'folder' needs root=<folder>, got root=None")
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or not 1 <= num_classes <= 255:
            raise ValueError(f"num_classes must be an int in [1, 255], got {num_classes!r}")
        if class_names is None:
            class_names = [f"class_{k}" for k in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(f"class_names must have num_classes={num_classes} entries, got {len(class_names)}")
        label_map = check_label_map(label_map, num_classes)
        if label_map and reduce_zero_label:
            raise ValueError(
                f"give label_map or reduce_zero_label, not both (got label_map={label_map}); "
                "write the shift into label_map"
            )
        self.image_scale = check_image_scale(image_scale)
        if isinstance(check_masks, bool) or not isinstance(check_masks, int) or check_masks < 0:
            raise ValueError(f"check_masks must be an int >= 0, got {check_masks!r}")
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"folder dataset root not found: {root}")
        image_dir, mask_dir = _split_dirs(root, split)
        self.reduce_zero_label = reduce_zero_label
        self.label_map = label_map
        self._label_table = None
        if label_map:
            self._label_table = np.arange(256, dtype=np.int64)
            for stored, target in label_map.items():
                self._label_table[stored] = target
        samples: dict[str, Sample] = {}
        for file in sorted(os.listdir(image_dir)):
            stem, suffix = os.path.splitext(file)
            if suffix.lower() not in IMAGE_SUFFIXES or file.startswith("."):
                continue
            image = os.path.join(image_dir, file)
            if stem in samples:
                raise DatasetError(f"two images share the stem {stem!r}: {samples[stem].image} and {image}")
            mask = os.path.join(mask_dir, stem + ".png")
            if not os.path.isfile(mask):
                raise FileNotFoundError(f"mask file not found: {mask} (for image {image})")
            samples[stem] = Sample(image, mask, stem)
        pattern = os.path.join(image_dir, "*{" + ",".join(IMAGE_SUFFIXES) + "}")
        super().__init__(
            list(samples.values()),
            class_names=class_names,
            palette=palette,
            transform=transform,
            source=f"root {root}, pattern {pattern}",
        )
        if check_masks:
            self._check_sample(check_masks, f"folder dataset {root} split {split!r}")

    def map_labels(self, raw: np.ndarray, path: str) -> np.ndarray:
        if self._label_table is not None:
            inside = (raw >= 0) & (raw <= 255)
            raw = np.where(inside, self._label_table[np.clip(raw, 0, 255)], raw)
        return reduce_zero_label(raw) if self.reduce_zero_label else raw

    def _check_sample(self, count: int, where: str) -> None:
        """Read up to ``count`` evenly spaced masks (and, for high-bit-depth files, their images) and warn
        about the silent failures described in the class docstring."""
        n = len(self.samples)
        picked = np.unique(np.linspace(0, n - 1, min(count, n)).round().astype(np.int64)).tolist()
        counts = np.zeros(256, dtype=np.int64)
        for index in picked:
            sample = self.samples[index]
            mask = self.map_labels(read_mask(sample.mask), sample.mask)
            check_mask(mask, self.num_classes, sample.mask)
            counts += np.bincount(mask.ravel(), minlength=256)[:256]
        missing = [k for k in range(self.num_classes) if counts[k] == 0]
        ignored = int(counts[IGNORE_INDEX])
        present = sorted((int(counts[k]) for k in range(self.num_classes) if counts[k] > 0), reverse=True)
        if missing and ignored > 0 and (len(present) < 2 or ignored >= present[1]):
            shown = ", ".join(f"{k} ({self.class_names[k]})" for k in missing[:10]) + (", ..." * (len(missing) > 10))
            logger.warning(
                "%s: class(es) %s never occur in %d of %d masks checked, while 255 (ignore) is %.1f%% of their "
                "pixels; if your masks store a class as 255 (binary masks saved as 0/255), map it with "
                "label_map={255: %d} (data.dataset_kwargs), otherwise those pixels are ignored in training and "
                "scoring",
                where, shown, len(picked), n, 100.0 * ignored / max(int(counts.sum()), 1), missing[0],
            )  # fmt: skip
        if self.image_scale == "dtype":
            self._check_bit_depth(picked, where)

    def _check_bit_depth(self, picked: list[int], where: str) -> None:
        from PIL import Image

        peak, stored_max = 0.0, None
        for index in picked:
            path = self.samples[index].image
            try:
                with Image.open(path) as im:
                    if im.mode not in HIGH_BIT_MODES or im.mode == "F":
                        return
                    stored_max = 65535.0 if im.mode.startswith("I;16") else None
                    peak = max(peak, float(np.asarray(im).max()))
            except (OSError, ValueError, SyntaxError, EOFError):
                return  # unreadable files fail with a clear message when they are loaded
        if stored_max is not None and 0 < peak <= stored_max / 16:
            logger.warning(
                "%s: the 16-bit images checked reach at most %d of 65535, so image_scale='dtype' maps them into "
                "[0, %.4f]; for 12-bit data pass image_scale=4095 (or 'minmax' for per-image scaling)",
                where, int(peak), peak / stored_max,
            )  # fmt: skip
