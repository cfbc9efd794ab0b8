"""The training-curve callback: configurable monitored metrics, the plot, and a history that survives resume."""

from __future__ import annotations

import os

import pytest
import torch

pytest.importorskip("lightning")

import lightning.pytorch as pl  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from hamburger.training.checkpoint import AtomicCheckpointIO  # noqa: E402
from hamburger.training.curves import TrainingCurves, plot_curves  # noqa: E402


class _TwoLosses(pl.LightningModule):
    """A GAN-like module: training_step returns two losses; validation logs ``val/score`` = the step / 1000."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)
        self.seen: dict[int, tuple[float, float]] = {}

    def training_step(self, batch, idx):
        (x,) = batch
        loss = self.lin(x).pow(2).mean()
        loss_d = 2.0 * loss.detach() + 1.0
        self.seen[self.global_step + 1] = (float(loss.detach()), float(loss_d))  # global_step after the update
        return {"loss": loss, "loss_d": loss_d}

    def validation_step(self, batch, idx) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        self.log("val/score", self.global_step / 1000.0)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2)


def _fit(root, curves: TrainingCurves, *, max_steps: int, ckpt_path: str | None = None) -> _TwoLosses:
    module = _TwoLosses()
    ckpt = ModelCheckpoint(dirpath=os.path.join(root, "ckpt"), filename="s{step}", every_n_train_steps=2,
                           save_top_k=-1, auto_insert_metric_name=False)  # fmt: skip
    trainer = pl.Trainer(
        default_root_dir=str(root), accelerator="cpu", max_steps=max_steps, val_check_interval=2,
        check_val_every_n_epoch=None, num_sanity_val_steps=0, limit_val_batches=1, logger=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[ckpt, curves],
        plugins=[AtomicCheckpointIO()],
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=_loader(), val_dataloaders=_loader(), ckpt_path=ckpt_path)
    return module


def _curves() -> TrainingCurves:
    return TrainingCurves(
        train_metrics=["loss", "loss_d"], val_metrics=["val/score"], train_label="losses",
        val_label="score", val_scale=1.0, filename="curves.png",
    )  # fmt: skip


def test_configured_metrics_are_recorded_and_plotted(tmp_path) -> None:
    curves = _curves()
    module = _fit(tmp_path, curves, max_steps=4)
    assert [s for s, _ in curves.train["loss"]] == [1, 2, 3, 4]
    for step, value in curves.train["loss"]:
        assert value == pytest.approx(module.seen[step][0])
    for step, value in curves.train["loss_d"]:
        assert value == pytest.approx(module.seen[step][1])  # the second output key, not the loss
    assert curves.val == {"val/score": [(2, pytest.approx(0.002)), (4, pytest.approx(0.004))]}
    assert curves.loss == curves.train["loss"] and curves.miou == curves.val["val/score"]
    png = tmp_path / "ckpt" / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [f for f in os.listdir(tmp_path / "ckpt") if f.endswith(".tmp")]


def test_history_survives_resume(tmp_path) -> None:
    _fit(tmp_path, _curves(), max_steps=2)
    resumed = _curves()
    _fit(tmp_path, resumed, max_steps=4, ckpt_path=str(tmp_path / "ckpt" / "s2.ckpt"))
    assert [s for s, _ in resumed.train["loss"]] == [1, 2, 3, 4]
    assert [s for s, _ in resumed.train["loss_d"]] == [1, 2, 3, 4]
    # the step-2 checkpoint is written before step 2's validation, so the restored history starts after it
    assert [s for s, _ in resumed.val["val/score"]] == [4]


def test_defaults_are_the_segmentation_ones_and_old_state_loads() -> None:
    curves = TrainingCurves()
    assert curves.train_metrics == ("loss",) and curves.val_metrics == ("val/mIoU",)
    assert (curves.train_label, curves.val_label, curves.val_scale) == ("training loss", "validation mIoU (%)", 100.0)
    curves.load_state_dict({"loss": [[1, 0.5], [2, 0.4]], "miou": [[2, 0.25]]})  # the seg-only callback's state
    assert curves.loss == [(1, 0.5), (2, 0.4)] and curves.miou == [(2, 0.25)]
    again = TrainingCurves()
    again.load_state_dict(curves.state_dict())
    assert again.train == curves.train and again.val == curves.val


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="every_n_steps"):
        TrainingCurves(every_n_steps=0)
    with pytest.raises(TypeError, match="every_n_steps"):
        TrainingCurves(every_n_steps=1.5)
    with pytest.raises(ValueError, match="repeated"):
        TrainingCurves(val_metrics=["val/mIoU", "val/mIoU"])
    with pytest.raises(ValueError, match="png"):
        TrainingCurves(filename="curves.jpg")


def test_plot_curves_accepts_series_mappings(tmp_path) -> None:
    path = tmp_path / "p.png"
    plot_curves({"g": [(1, 1.0), (2, 0.5)], "d": [(1, 2.0)]}, {"fid": [(2, 40.0)]}, str(path), val_scale=1.0,
                val_label="FID")  # fmt: skip
    assert path.read_bytes()[:4] == b"\x89PNG"
