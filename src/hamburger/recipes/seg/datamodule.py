"""``SegDataModule``: datasets + transforms + deterministic samplers for the segmentation recipe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from ...training.sampling import ResumableLoader, ResumableTrainSampler, eval_loader

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "SegDataModule"]

# (dataset, split) pairs whose masks are not public: scoring them would count no pixel
UNLABELLED_SPLITS = {("cityscapes", "test")}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _SegDataset(Protocol):
    """What the module reads from a built dataset besides ``Dataset`` itself."""

    num_classes: int
    class_names: Sequence[str]
    palette: Any

    def __len__(self) -> int: ...


def _collate(items: list[dict]) -> dict:
    return {
        "image": torch.stack([it["image"] for it in items]),
        "mask": torch.stack([it["mask"] for it in items]),
        "name": [it["name"] for it in items],
    }


class SegDataModule(pl.LightningDataModule):
    """Train / val loaders for any dataset of :func:`hamburger.recipes.seg.data.build_dataset`.

    Training uses random scale, crop (padded with the ignore label), flip and photometric distortion; evaluation
    only normalises. The train order is a pure function of ``(seed, epoch)`` and resumes mid-epoch.

    Args:
        dataset: dataset name (``fashion_scenes``, ``voc``, ``voc_aug``, ``ade20k``, ``cityscapes``,
            ``pascal_context``, ``folder``).
        root: dataset folder (optional for ``fashion_scenes``).
        train_split: split used for training.
        val_split: split used for validation.
        test_split: labelled split used by ``test`` (``None``: ``test`` is refused; none of the built-in datasets
            has a public labelled test split, a ``folder`` dataset may have ``images/test`` + ``masks/test``).
        dataset_kwargs: options for all splits (e.g. ``variant``, ``canvas_size``).
        train_kwargs: extra options for the training split only (e.g. ``num_scenes``).
        val_kwargs: extra options for the validation split only.
        test_kwargs: extra options for the test split only.
        crop_size: training crop ``int`` or ``(h, w)``.
        scale_range: random rescale range.
        flip: random horizontal flip.
        photometric: random photometric distortion.
        mean: normalisation mean (RGB, in [0, 1]).
        std: normalisation std.
        batch_size: training batch size per process.
        val_batch_size: evaluation batch size per process (use 1 for images of different sizes).
        num_workers: loader worker processes.
        seed: data-order and augmentation seed.
    """

    def __init__(
        self,
        dataset: str = "fashion_scenes",
        *,
        root: str | None = None,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str | None = None,
        dataset_kwargs: dict[str, Any] | None = None,
        train_kwargs: dict[str, Any] | None = None,
        val_kwargs: dict[str, Any] | None = None,
        test_kwargs: dict[str, Any] | None = None,
        crop_size: int | tuple[int, int] = 512,
        scale_range: tuple[float, float] = (0.5, 2.0),
        flip: bool = True,
        photometric: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        batch_size: int = 8,
        val_batch_size: int = 1,
        num_workers: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("val_batch_size", val_batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
        self.save_hyperparameters()
        self.dataset_name = dataset
        self.root = root
        self._common = dict(dataset_kwargs or {})
        self._split_kwargs = {
            "train": dict(train_kwargs or {}), "val": dict(val_kwargs or {}), "test": dict(test_kwargs or {})
        }  # fmt: skip
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.crop_size = crop_size
        self.scale_range = cast(tuple[float, float], tuple(scale_range))  # SegTrainTransform checks the length
        self.flip, self.photometric = flip, photometric
        self.mean, self.std = tuple(mean), tuple(std)
        self.batch_size, self.val_batch_size = batch_size, val_batch_size
        self.num_workers, self.seed = num_workers, seed
        self._datasets: dict[str, Dataset] = {}
        self._train_sampler: ResumableTrainSampler | None = None

    # ----------------------------------------------------------------- datasets
    def _transform(self, stage: str):
        from .transforms import SegEvalTransform, SegTrainTransform

        if stage == "train":
            return SegTrainTransform(
                self.crop_size, scale_range=self.scale_range, flip=self.flip, photometric=self.photometric,
                mean=self.mean, std=self.std, ignore_index=255,
            )  # fmt: skip
        return SegEvalTransform(mean=self.mean, std=self.std)

    def get_dataset(self, stage: str) -> Dataset:
        """The (cached) transformed dataset of ``stage`` (``"train"``, ``"val"`` or ``"test"``)."""
        if stage not in self._datasets:
            from .data import build_dataset

            kwargs = {**self._common, **self._split_kwargs[stage]}
            split = self.splits[stage]
            if split is None:
                raise ValueError(f"data.{stage}_split is not set: there is no {stage} dataset")
            ds = build_dataset(
                self.dataset_name, root=self.root, split=split, transform=self._transform(stage), **kwargs
            )
            if len(cast(_SegDataset, ds)) == 0:
                raise ValueError(
                    f"dataset {self.dataset_name!r} split {self.splits[stage]!r} is empty (root={self.root!r})"
                )
            self._datasets[stage] = ds
        return self._datasets[stage]

    @property
    def num_classes(self) -> int:
        return int(cast(_SegDataset, self.get_dataset("val")).num_classes)

    @property
    def class_names(self) -> list[str]:
        return list(cast(_SegDataset, self.get_dataset("val")).class_names)

    @property
    def palette(self) -> torch.Tensor:
        return torch.as_tensor(cast(_SegDataset, self.get_dataset("val")).palette, dtype=torch.uint8)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.get_dataset("train")
        if stage == "test" and self.splits["test"] is not None:
            self.get_dataset("test")
        self.get_dataset("val")

    # -------------------------------------------------------------- loaders
    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return trainer.world_size, trainer.global_rank

    def train_dataloader(self) -> DataLoader:
        world, rank = self._world()
        loader = ResumableLoader(
            self.get_dataset("train"), batch_size=self.batch_size, seed=self.seed, num_replicas=world, rank=rank,
            num_workers=self.num_workers, collate_fn=_collate,
        )  # fmt: skip
        self._train_sampler = loader.sampler
        return loader

    def _eval_loader(self, stage: str) -> DataLoader:
        world, rank = self._world()
        return eval_loader(
            self.get_dataset(stage), batch_size=self.val_batch_size, num_replicas=world, rank=rank,
            num_workers=self.num_workers, collate_fn=_collate, seed=self.seed,
        )  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        """The ``test_split`` (with labels); there is no silent fallback to the validation split."""
        if self.splits["test"] is None:
            raise ValueError(
                f"data.test_split is not set: dataset {self.dataset_name!r} has no labelled test split here; "
                "'hamburger seg validate' scores the validation split, or set --data.test_split"
            )
        if (self.dataset_name, self.splits["test"]) in UNLABELLED_SPLITS:
            raise ValueError(
                f"dataset {self.dataset_name!r} split {self.splits['test']!r} has no public labels (its masks are "
                "all void); score it on the benchmark's server, or test on a labelled split"
            )
        return self._eval_loader("test")
