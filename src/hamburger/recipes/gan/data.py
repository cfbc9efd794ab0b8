"""Training data of the GAN recipe: class-labelled images as ``uint8`` tensors, and their Lightning data module.

* ``fashion_mnist``: the Fashion-MNIST test split shipped in the package (10,000 grey 28x28 images, 10 classes),
  padded by 2 pixels to 32x32 (``root``: a folder with the full training IDX files instead).
* ``folder``: ``root/<class>/*.{jpg,jpeg,png,bmp,tif,tiff}``, one sub-folder per class; class ids are the sorted
  sub-folder names; images are converted to RGB, resized (shorter side) and center-cropped to ``image_size``.
* ``imagenet``: ImageNet's layout ``root/train/<wnid>/*.JPEG``; class ids from the sorted wnids (as ``folder``
  on ``root/train``).

Samples are ``{"image": uint8 (C, S, S), "label": int64 ()}``; the module scales images to [-1, 1] on the device
(``x / 127.5 - 1``), and the evaluation reads the same ``uint8`` images as the real set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ...training.sampling import ResumableLoader
from ...utils import check_choice, check_int, check_positive_int

__all__ = ["DATASETS", "FashionMNIST32", "GANDataModule", "ImageFolderGAN", "build_gan_dataset", "to_unit_range"]

log = logging.getLogger(__name__)

DATASETS = ("fashion_mnist", "folder", "imagenet")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` images to float in [-1, 1] (``x / 127.5 - 1``)."""
    return images.float() / 127.5 - 1.0


class FashionMNIST32(Dataset):
    """Fashion-MNIST at 32x32 (2 zero pixels around each 28x28 image), one grey channel, 10 classes.

    Args:
        root: ``None`` for the 10,000 test images shipped in the package, or a folder holding the full
            ``train-images-idx3-ubyte.gz`` / ``train-labels-idx1-ubyte.gz`` (60,000 images).
    """

    channels = 1
    image_size = 32

    def __init__(self, root: str | None = None) -> None:
        from ..seg.data.fashion_mnist import FASHION_CLASSES, load_fashion_mnist

        if root is not None and not os.path.isdir(root):
            raise FileNotFoundError(f"data.root {root!r}: no such folder (fashion_mnist: leave it unset for the "
                                    "embedded test split)")  # fmt: skip
        images, labels = load_fashion_mnist("t10k" if root is None else "train", root)
        padded = np.zeros((len(images), 1, 32, 32), dtype=np.uint8)
        padded[:, 0, 2:30, 2:30] = images
        self.images = torch.from_numpy(padded)
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.class_names = list(FASHION_CLASSES)
        self.num_classes = len(self.class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index], "label": self.labels[index]}


def _resize_center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """``(C, H, W)`` float in [0, 1] -> shorter side ``size`` (antialiased bilinear), center crop ``size``."""
    _, h, w = image.shape
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        image = F.interpolate(image[None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)[0]
    top, left = (nh - size) // 2, (nw - size) // 2
    return image[:, top : top + size, left : left + size]


class ImageFolderGAN(Dataset):
    """Images in one sub-folder per class (``root/<class>/<image>``), as RGB ``uint8`` of ``image_size``.

    Class ids follow the sorted sub-folder names. 8- and 16-bit PNG / TIFF, JPEG and BMP are read (16-bit data
    is scaled by its bit depth, then rounded to 8 bits).

    Args:
        root: the folder of class folders.
        image_size: output side ``S`` (shorter side resized to ``S``, then center-cropped).
        flip: random horizontal flip (seeded per sample by the training loader).
    """

    channels = 3

    def __init__(self, root: str, *, image_size: int, flip: bool = False) -> None:
        if not root or not os.path.isdir(root):
            raise FileNotFoundError(f"data.root {root!r}: no such folder (expected one sub-folder per class)")
        self.root, self.image_size, self.flip = root, check_positive_int("image_size", image_size), bool(flip)
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
        if not classes:
            raise FileNotFoundError(f"data.root {root}: no class sub-folders (expected {root}/<class>/<image>)")
        self.class_names = classes
        self.num_classes = len(classes)
        files: list[str] = []
        labels: list[int] = []
        for label, name in enumerate(classes):
            folder = os.path.join(root, name)
            found = sorted(
                e.name for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES)
            )
            if not found:
                raise FileNotFoundError(f"data.root {root}: class folder {name!r} has no images ({IMAGE_SUFFIXES})")
            files += [os.path.join(folder, f) for f in found]
            labels += [label] * len(found)
        self.files, self.labels = files, torch.tensor(labels, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from ..seg.data._io import read_image

        image = read_image(self.files[index])
        image = image.float() / 255.0 if image.dtype == torch.uint8 else image
        image = _resize_center_crop(image, self.image_size)
        if self.flip and bool(torch.rand(()) < 0.5):
            image = image.flip(-1)
        return {"image": (image * 255).round().clamp(0, 255).to(torch.uint8), "label": self.labels[index]}


def build_gan_dataset(
    dataset: str, *, root: str | None = None, image_size: int = 32, flip: bool = False
) -> FashionMNIST32 | ImageFolderGAN:
    """The dataset ``dataset`` (one of :data:`DATASETS`); see the module docstring."""
    check_choice("data.dataset", dataset, DATASETS)
    if dataset == "fashion_mnist":
        if image_size != 32:
            raise ValueError(f"data.image_size={image_size}: fashion_mnist is 32x32 (28x28 padded by 2 pixels)")
        return FashionMNIST32(root)
    if root is None:
        raise ValueError(f"data.root is required for dataset {dataset!r} (the folder of the images)")
    if dataset == "imagenet":
        train = os.path.join(root, "train")
        if not os.path.isdir(train):
            raise FileNotFoundError(f"data.root {root!r}: no train/ folder (ImageNet layout: root/train/<wnid>/*.JPEG)")
        root = train
    return ImageFolderGAN(root, image_size=image_size, flip=flip)


def _collate(items: list[dict]) -> dict[str, torch.Tensor]:
    return {"image": torch.stack([it["image"] for it in items]), "label": torch.stack([it["label"] for it in items])}


class GANDataModule(pl.LightningDataModule):
    """Training loader of the GAN recipe (no validation split: the GAN is scored by ``hamburger gan evaluate``).

    Each training batch holds ``batch_size * n_critic`` images: the module splits it into ``n_critic``
    discriminator batches of ``batch_size``. The order is a pure function of ``(seed, epoch)`` and resumes
    mid-epoch (:class:`~hamburger.training.sampling.ResumableLoader`).

    Args:
        dataset: ``"fashion_mnist"`` (embedded), ``"folder"`` or ``"imagenet"``.
        root: the data folder (required for ``folder`` / ``imagenet``).
        image_size: image side; must equal the generator's.
        batch_size: images per discriminator step and process (also the generator's batch).
        n_critic: discriminator steps per generator step (linked from ``model.n_critic`` by the CLI).
        flip: random horizontal flip (``folder`` / ``imagenet``).
        num_workers: loader worker processes.
        seed: data-order seed.
    """

    def __init__(
        self,
        dataset: Literal["fashion_mnist", "folder", "imagenet"] = "fashion_mnist",
        *,
        root: str | None = None,
        image_size: int = 32,
        batch_size: int = 64,
        n_critic: int = 1,
        flip: bool = False,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_choice("data.dataset", dataset, DATASETS)
        check_positive_int("data.batch_size", batch_size)
        check_positive_int("data.n_critic", n_critic)
        check_positive_int("data.image_size", image_size)
        check_int("data.num_workers", num_workers, 0)
        if dataset != "fashion_mnist" and root is None:
            raise ValueError(f"data.root is required for dataset {dataset!r} (the folder of the images; see "
                             "docs/gan.md)")  # fmt: skip
        if root is not None and not os.path.isdir(root):
            raise FileNotFoundError(f"data.root {root!r}: no such folder")
        self.save_hyperparameters()
        self.dataset_name, self.root, self.image_size = dataset, root, image_size
        self.batch_size, self.n_critic, self.flip = batch_size, n_critic, flip
        self.num_workers, self.seed = num_workers, seed
        self._dataset: FashionMNIST32 | ImageFolderGAN | None = None

    @property
    def dataset(self) -> FashionMNIST32 | ImageFolderGAN:
        """The (cached) training dataset."""
        if self._dataset is None:
            self._dataset = build_gan_dataset(self.dataset_name, root=self.root, image_size=self.image_size,
                                              flip=self.flip)  # fmt: skip
        return self._dataset

    @property
    def num_classes(self) -> int:
        return int(self.dataset.num_classes)

    @property
    def channels(self) -> int:
        return int(self.dataset.channels)

    @property
    def class_names(self) -> list[str]:
        return list(self.dataset.class_names)

    def setup(self, stage: str | None = None) -> None:
        self.dataset  # noqa: B018  (build it now: a missing folder fails before training starts)

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        return ResumableLoader(
            self.dataset, batch_size=self.batch_size * self.n_critic, seed=self.seed, num_replicas=world,
            rank=rank, num_workers=self.num_workers, collate_fn=_collate,
        )  # fmt: skip

    def real_images(self, limit: int | None = None) -> torch.Tensor:
        """The first ``limit`` (default all) images of the dataset as one ``uint8`` tensor ``(N, C, S, S)``."""
        ds = self.dataset
        n = len(ds) if limit is None else min(limit, len(ds))
        if isinstance(ds, FashionMNIST32):
            return ds.images[:n]
        return torch.stack([ds[i]["image"] for i in range(n)])


def class_names_of(names: Sequence[str] | None, num_classes: int) -> list[str]:
    """``names`` if it has ``num_classes`` entries, else ``["0", "1", ...]``."""
    return list(names) if names is not None and len(names) == num_classes else [str(i) for i in range(num_classes)]
