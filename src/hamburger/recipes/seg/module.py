"""``SegModule``: the LightningModule of the segmentation recipe (loss, optimiser, schedule, evaluation).

The model comes from :func:`hamburger.models.create_model` (or any ``"package.module:factory"`` path given by the
user) and returns ``{"out": logits, "aux": logits or None}``; the loss lives here:
``CE(out, y) + aux_weight * CE(aux, y)`` with ``ignore_index`` pixels skipped.

Rebuilding a model from a checkpoint (``seg predict``, ``seg validate --ckpt_path``,
:meth:`SegModule.load_from_checkpoint`) goes through :func:`checkpoint_hparams`: a checkpoint may only name
registered models, never an import path, unless the user names the same path explicitly.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from typing import Any, Literal, cast

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.fabric.utilities.data import AttributeDict
from torch import nn

from ...training.hparams import check_plain_hparams, is_import_path, read_checkpoint
from ...training.optim import build_optimizer, build_scheduler, param_groups
from ...training.rng import TrainingRNG
from ...utils import check_float
from .inference import infer
from .metrics import build_confmat, scores_from_confmat, warn_classes_without_ground_truth

__all__ = ["SegModule", "checkpoint_hparams", "create_seg_model", "is_import_path"]

log = logging.getLogger(__name__)


def create_seg_model(name: str, *, num_classes: int, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """A registered model name (``hamburger.models``) or an import path ``"pkg.module:factory"``.

    An import path is code: it is imported and called, so only pass one you typed yourself (checkpoints are
    vetted by :func:`checkpoint_hparams` before they get here).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"model must be a registered model name or 'pkg.module:factory', got {name!r}")
    if is_import_path(name):
        module_name, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as err:
            raise ValueError(
                f"model {name!r}: cannot import factory {attr!r} from module {module_name!r} ({err})"
            ) from err
        return factory(num_classes=num_classes, pretrained=pretrained, **kwargs)
    from hamburger.models import create_model

    return create_model(name, num_classes=num_classes, pretrained=pretrained, **kwargs)


def checkpoint_hparams(
    hparams: object, *, source: str | os.PathLike = "checkpoint", model: str | None = None
) -> dict[str, Any]:
    """The hyper-parameters of a segmentation checkpoint, vetted for rebuilding its model.

    * plain data only (:func:`hamburger.training.hparams.check_plain_hparams`: no class specs);
    * ``model`` must be a string; an import path ``"pkg.module:factory"`` is refused (``ValueError``) unless the
      caller passes the same path as ``model``, i.e. the user typed it (``--model.model`` / ``--model``);
    * ``pretrained`` is set to ``False`` and ``model_kwargs["weights"]`` is dropped: the checkpoint holds the
      weights, so no backbone weights are downloaded or read first.

    Args:
        hparams: ``checkpoint["hyper_parameters"]``.
        source: the checkpoint path, for messages.
        model: the model the user asked for explicitly (``None``: none).
    """
    source = os.fspath(source)
    hp = check_plain_hparams(hparams, source=source)
    name = hp.get("model", "tiny_ham")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{source}: hyper-parameter model must be a model name, got {name!r}")
    if is_import_path(name) and name != model:
        raise ValueError(
            f"{source} names the model import path {name!r}; a checkpoint may only name registered models "
            f"(importing code named in a file is refused). If you trust it, give the same path yourself: "
            f"--model.model {name} (fit/validate/test) or --model {name} (predict)"
        )
    hp["pretrained"] = False
    if isinstance(hp.get("model_kwargs"), dict) and "weights" in hp["model_kwargs"]:
        hp["model_kwargs"] = {k: v for k, v in hp["model_kwargs"].items() if k != "weights"}
    return hp


class SegModule(pl.LightningModule):
    """Segmentation training / evaluation around a ``hamburger.models`` model.

    Args:
        model: registered model name (``tiny_ham``, ``hamnet_resnet101``, ...) or ``"pkg.module:factory"`` (code you
            name yourself; checkpoints may not name one, see :func:`checkpoint_hparams`).
        num_classes: number of classes (linked from the data module by the CLI).
        model_kwargs: overrides passed to the model factory (``ham``, ``rank``, ``channels``, ...).
        pretrained: load the backbone's pretrained weights (off by default; never downloads in tests).
        optimizer: ``"sgd"`` (HamNet) or ``"adamw"`` (Light-Ham).
        lr: base learning rate.
        momentum: SGD momentum.
        betas: AdamW betas.
        weight_decay: weight decay on conv / linear weights (not on 1-D parameters such as norms and biases,
            nor on parameters a submodule lists in ``no_weight_decay()``, e.g. the Hamburger gates).
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
        from .inference import check_inference_options

        check_inference_options(
            mode=eval_mode, scales=eval_scales, crop_size=eval_crop_size, stride=eval_stride, prefix="eval_"
        )
        check_float("lr", lr, low=0.0, low_open=True)  # fail at construction, not at the first step
        check_float("weight_decay", weight_decay, low=0.0)
        check_float("momentum", momentum, low=0.0, high=1.0, high_open=True)
        check_float("head_lr_mult", head_lr_mult, low=0.0, low_open=True)
        self.save_hyperparameters()
        self.net = create_seg_model(model, num_classes=num_classes, pretrained=pretrained, **(model_kwargs or {}))
        self.val_confmat = build_confmat(num_classes, ignore_index=ignore_index)
        self.class_names: list[str] | None = None
        self.palette: list[list[int]] | None = None
        self.last_scores: dict | None = None

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> SegModule:
        """Lightning's ``load_from_checkpoint`` after :func:`checkpoint_hparams` vetted the checkpoint: a model
        import path stored in it is refused unless ``model=`` names the same path (keyword overrides win, as in
        Lightning)."""
        if isinstance(checkpoint_path, (str, os.PathLike)):
            ckpt = read_checkpoint(checkpoint_path)  # weights_only; tensors memory-mapped, not read twice
            checkpoint_hparams(ckpt.get("hyper_parameters") or {}, source=checkpoint_path, model=kwargs.get("model"))
        else:
            raise TypeError(f"checkpoint_path must be a path, got {type(checkpoint_path).__name__}")
        kwargs.setdefault("pretrained", False)  # the checkpoint holds the weights
        # Lightning's stub says str | Path | IO; any os.PathLike works (torch.load opens it)
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ forward / loss
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K, H, W)`` with the configured evaluation mode."""
        hp = cast(AttributeDict, self.hparams)  # save_hyperparameters() made it an AttributeDict
        return infer(
            self.net, images, mode=hp.eval_mode, scales=hp.eval_scales, flip=hp.eval_flip,
            crop_size=hp.eval_crop_size, stride=hp.eval_stride,
        )  # fmt: skip

    def _ce(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the pixels not labelled ``ignore_index``.

        A batch without such a pixel (an all-255 crop) gives 0 with zero gradients, as in mmseg, instead of
        the NaN of ``0 / 0`` (which would stop training, and stop it again at the same batch on resume).
        """
        if logits.shape[-2:] != mask.shape[-2:]:
            logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
        ignore = cast(AttributeDict, self.hparams).ignore_index
        total = F.cross_entropy(logits.float(), mask, ignore_index=ignore, reduction="sum")
        return total / (mask != ignore).sum().clamp_min(1)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.net(batch["image"])
        out = out if isinstance(out, dict) else {"out": out}
        loss_main = self._ce(out["out"], batch["mask"])
        loss = loss_main
        aux_weight = cast(AttributeDict, self.hparams).aux_weight
        if out.get("aux") is not None and aux_weight > 0:
            loss_aux = self._ce(out["aux"], batch["mask"])
            loss = loss + aux_weight * loss_aux
            self.log("train/loss_aux", loss_aux.detach())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss {loss.item()} at step {self.global_step}")
        self.log("train/loss", loss.detach(), prog_bar=True)
        optimizer = self.optimizers()
        assert not isinstance(optimizer, list)  # configure_optimizers returns one optimizer
        self.log("train/lr", optimizer.param_groups[0]["lr"])
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
            if self.trainer.is_global_zero:
                warn_classes_without_ground_truth(self.last_scores, key=self)

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
