"""Reading Fashion-MNIST IDX files: the test split shipped in the package, or a full copy on disk."""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import os

import numpy as np

from ._io import DatasetError

DEBIAN_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_idx(data: bytes, path: str, magic: int, offset: int) -> np.ndarray:
    if len(data) < offset or int.from_bytes(data[:4], "big") != magic:
        raise DatasetError(f"{path} is not an IDX file with magic number {magic}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset)


def _gunzip(path: str) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"Fashion-MNIST file not found: {path}") from None
    except (OSError, EOFError) as err:
        raise DatasetError(f"cannot read Fashion-MNIST file {path}: {err}") from err


def full_dataset_root(fashion_root: str | None) -> str | None:
    """Folder with the full Fashion-MNIST training files, or ``None`` to use the shipped test split.

    ``fashion_root=None`` looks at the Debian package path :data:`DEBIAN_ROOT`; ``"embedded"`` forces
    the shipped split; any other path must contain ``train-{images-idx3,labels-idx1}-ubyte.gz``.
    """
    if fashion_root == "embedded":
        return None
    if fashion_root is None:
        present = all(os.path.isfile(os.path.join(DEBIAN_ROOT, f)) for f in _FILES["train"])
        return DEBIAN_ROOT if present else None
    fashion_root = os.fspath(fashion_root)
    for file in _FILES["train"]:
        if not os.path.isfile(os.path.join(fashion_root, file)):
            raise FileNotFoundError(f"fashion_root={fashion_root!r} has no {file}")
    return fashion_root


@functools.lru_cache(maxsize=4)
def load_fashion_mnist(split: str = "t10k", root: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load a Fashion-MNIST split.

    Args:
        split: ``"t10k"`` (10,000 test items) or ``"train"`` (60,000; needs ``root``).
        root: folder with the IDX ``.gz`` files; ``None`` reads the test split shipped in the package.

    Returns:
        ``images`` ``uint8 (N, 28, 28)`` and ``labels`` ``uint8 (N,)`` (read-only arrays, cached).
    """
    if split not in _FILES:
        raise ValueError(f"split must be one of {list(_FILES)}, got {split!r}")
    image_file, label_file = _FILES[split]
    if root is None:
        if split != "t10k":
            raise ValueError("only the 't10k' split ships with the package; pass root=<folder> for 'train'")
        package = importlib.resources.files("hamburger").joinpath("data", "fashion_mnist")
        with importlib.resources.as_file(package.joinpath(image_file)) as p:
            image_path, image_data = str(p), _gunzip(str(p))
        with importlib.resources.as_file(package.joinpath(label_file)) as p:
            label_path, label_data = str(p), _gunzip(str(p))
    else:
        image_path, label_path = os.path.join(root, image_file), os.path.join(root, label_file)
        image_data, label_data = _gunzip(image_path), _gunzip(label_path)
    images = _read_idx(image_data, image_path, 2051, 16)
    labels = _read_idx(label_data, label_path, 2049, 8)
    if images.size != labels.size * 28 * 28:
        raise DatasetError(f"{image_path} holds {images.size} bytes, expected {labels.size} images of 28x28")
    if labels.size and labels.max() >= len(FASHION_CLASSES):
        raise DatasetError(f"{label_path} has labels >= {len(FASHION_CLASSES)}")
    return images.reshape(-1, 28, 28), labels
