"""``SegModule``: the LightningModule of the segmentation recipe (loss, optimiser, schedule, evaluation).

The model comes from :func:`hamburger.models.create_model` (or any ``"package.module:factory"`` path) and
returns ``{"out": logits, "aux": logits or None}``; the loss lives here:
``CE(out, y) + aux_weight * CE(aux, y)`` with ``ignore_index`` pixels skipped.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from ...training.optim import build_optimizer, build_scheduler, param_groups
from ...training.rng import TrainingRNG
from .inference import infer
from .metrics import build_confmat, scores_from_confmat

__all__ = ["SegModule", "create_seg_model"]

log = logging.getLogger(__name__)


def create_seg_model(name: str, *, num_classes: int, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """A registered model name (``hamburger.models``) or an import path ``"pkg.module:factory"``."""
    if ":" in name:
        module_name, _, attr = name.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        return factory(num_classes=num_classes, pretrained=pretrained, **kwargs)
    from hamburger.models import create_model

    return create_model(name, num_classes=num_classes, pretrained=pretrained, **kwargs)


class SegModule(pl.LightningModule):
    """Segmentation training / evaluation around a ``hamburger.models`` model.

    Args:
        model: registered model name (``tiny_ham``, ``hamnet_r101``, ...) or ``"pkg.module:factory"``.
        num_classes: number of classes (linked from the data module by the CLI).
        model_kwargs: overrides passed to the model factory (``ham``, ``rank``, ``channels``, ...).
        pretrained: load the backbone's pretrained weights (off by default; never downloads in tests).
        optimizer: ``"sgd"`` (HamNet) or ``"adamw"`` (Light-Ham).
        lr: base learning rate.
        momentum: SGD momentum.
        betas: AdamW betas.
        weight_decay: weight decay on conv / linear weights (not on norms, biases or ``coef*`` gates).
        head_lr_mult: LR multiplier for every parameter outside ``backbone.``.
        aux_weight: weight of the auxiliary loss when the model returns ``"aux"``.
        poly_power: power of the poly schedule.
        warmup_steps: linear warmup steps before the poly schedule.
        warmup_ratio: LR factor at step 0 of the warmup.
        min_lr: LR floor of the poly schedule.
        ignore_index: label skipped by loss and metrics.
        eval_mode: ``"single"``, ``"multiscale"`` (scales x flip, logits summed) or ``"slide"``.
        eval_scales: scales for multi-scale evaluation.
        eval_flip: add horizontally flipped views in multi-scale evaluation.
        eval_crop_size: sliding-window crop (also used per scale in multi-scale when set).
        eval_stride: sliding-window stride.
    """

    def __init__(
        self,
        model: str = "tiny_ham",
        *,
        num_classes: int = 0,
        model_kwargs: dict[str, Any] | None = None,
        pretrained: bool = False,
        optimizer: Literal["sgd", "adamw"] = "sgd",
        lr: float = 0.01,
        momentum: float = 0.9,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 1e-4,
        head_lr_mult: float = 1.0,
        aux_weight: float = 0.4,
        poly_power: float = 0.9,
        warmup_steps: int = 0,
        warmup_ratio: float = 1e-6,
        min_lr: float = 0.0,
        ignore_index: int = 255,
        eval_mode: Literal["single", "multiscale", "slide"] = "single",
        eval_scales: Sequence[float] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75),
        eval_flip: bool = True,
        eval_crop_size: int | tuple[int, int] | None = None,
        eval_stride: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if aux_weight < 0:
            raise ValueError(f"aux_weight must be >= 0, got {aux_weight}")
        if optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {optimizer!r}")
        self.save_hyperparameters()
        self.net = create_seg_model(model, num_classes=num_classes, pretrained=pretrained, **(model_kwargs or {}))
        self.val_confmat = build_confmat(num_classes, ignore_index=ignore_index)
        self.class_names: list[str] | None = None
        self.palette: list[list[int]] | None = None
        self.last_scores: dict | None = None

    # ------------------------------------------------------------------ forward / loss
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K, H, W)`` with the configured evaluation mode."""
        hp = self.hparams
        return infer(
            self.net, images, mode=hp.eval_mode, scales=hp.eval_scales, flip=hp.eval_flip,
            crop_size=hp.eval_crop_size, stride=hp.eval_stride,
        )  # fmt: skip

    def _ce(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if logits.shape[-2:] != mask.shape[-2:]:
            logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
        return F.cross_entropy(logits.float(), mask, ignore_index=self.hparams.ignore_index)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.net(batch["image"])
        out = out if isinstance(out, dict) else {"out": out}
        loss_main = self._ce(out["out"], batch["mask"])
        loss = loss_main
        if out.get("aux") is not None and self.hparams.aux_weight > 0:
            loss_aux = self._ce(out["aux"], batch["mask"])
            loss = loss + self.hparams.aux_weight * loss_aux
            self.log("train/loss_aux", loss_aux.detach())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss {loss.item()} at step {self.global_step}")
        self.log("train/loss", loss.detach(), prog_bar=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        return loss

    # ------------------------------------------------------------------ evaluation
    def on_validation_epoch_start(self) -> None:
        self.val_confmat.reset()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch["image"])
        self.val_confmat.update(logits.argmax(1), batch["mask"])

    def on_validation_epoch_end(self) -> None:
        confmat = self.val_confmat.compute()  # summed over processes
        self.val_confmat.reset()
        names = self.class_names if self.class_names and len(self.class_names) == confmat.shape[0] else None
        self.last_scores = scores_from_confmat(confmat, names)
        if not self.trainer.sanity_checking:
            self.log("val/mIoU", self.last_scores["mIoU"], prog_bar=True, sync_dist=False)
            self.log("val/aAcc", self.last_scores["aAcc"], sync_dist=False)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def on_test_epoch_start(self) -> None:
        self.on_validation_epoch_start()

    def on_test_epoch_end(self) -> None:
        self.on_validation_epoch_end()

    # ------------------------------------------------------------------ optimiser
    def configure_optimizers(self):
        hp = self.hparams
        groups = param_groups(
            self.net, weight_decay=hp.weight_decay, head_lr_mult=hp.head_lr_mult, backbone_prefixes=("backbone.",)
        )
        optimizer = build_optimizer(groups, hp.optimizer, lr=hp.lr, momentum=hp.momentum, betas=hp.betas)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = build_scheduler(
            optimizer, total_steps=max(total, 1), power=hp.poly_power, warmup_steps=hp.warmup_steps,
            warmup_ratio=hp.warmup_ratio, min_lr=hp.min_lr,
        )  # fmt: skip
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ metadata + exact resume
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "class_names"):
            self.class_names = list(dm.class_names)
            self.palette = dm.palette.tolist()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        checkpoint["seg_meta"] = {
            "class_names": self.class_names,
            "palette": self.palette,
            "mean": list(getattr(dm, "mean", ())) or None,
            "std": list(getattr(dm, "std", ())) or None,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        meta = checkpoint.get("seg_meta") or {}
        self.class_names = meta.get("class_names") or self.class_names
        self.palette = meta.get("palette") or self.palette

    def configure_callbacks(self) -> list[pl.Callback]:
        # the training RNG stream: saved in checkpoints, restored on resume, untouched by validation
        return [TrainingRNG()]
