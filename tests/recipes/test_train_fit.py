"""Lightning training: exact resume, atomic checkpoints, samplers, curves plot, loss going down."""

from __future__ import annotations

import os

import pytest
import torch

pytest.importorskip("lightning")

import lightning.pytorch as pl  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402

from hamburger.recipes.seg.datamodule import SegDataModule  # noqa: E402
from hamburger.recipes.seg.module import SegModule  # noqa: E402
from hamburger.training import checkpoint as ckpt_mod  # noqa: E402
from hamburger.training.checkpoint import AtomicCheckpointIO, load_checkpoint  # noqa: E402
from hamburger.training.curves import TrainingCurves  # noqa: E402
from hamburger.training.sampling import EvalSampler, ResumableTrainSampler  # noqa: E402

# a narrower tiny_ham keeps these Lightning runs to a few seconds
SMALL = {"backbone_kwargs": {"widths": [8, 16, 32], "depth": 1}, "channels": 16, "ham_channels": 16, "rank": 4}


def _datamodule(train_scenes: int = 24) -> SegDataModule:
    return SegDataModule(
        "fashion_scenes", train_kwargs={"num_scenes": train_scenes}, val_kwargs={"num_scenes": 6},
        crop_size=48, scale_range=(0.75, 1.25), batch_size=4, val_batch_size=4, num_workers=0, seed=3,
    )  # fmt: skip


class _StopAt(pl.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True


def _fit(root, *, max_steps: int, stop_at: int | None = None, ckpt_path: str | None = None, **module_kw):
    pl.seed_everything(7, verbose=False)
    module = SegModule("tiny_ham", num_classes=11, model_kwargs=SMALL, optimizer="sgd", lr=0.02, **module_kw)
    callbacks = [
        ModelCheckpoint(dirpath=os.path.join(root, "ckpt"), filename="step{step}", every_n_train_steps=2,
                        save_top_k=-1, save_last=True, auto_insert_metric_name=False),
        TrainingCurves(every_n_steps=1),
    ]  # fmt: skip
    if stop_at is not None:
        callbacks.append(_StopAt(stop_at))
    trainer = pl.Trainer(
        default_root_dir=str(root), accelerator="cpu", devices=1, max_steps=max_steps, val_check_interval=4,
        check_val_every_n_epoch=None, num_sanity_val_steps=0, logger=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=callbacks, plugins=[AtomicCheckpointIO()],
    )  # fmt: skip
    trainer.fit(module, datamodule=_datamodule(), ckpt_path=ckpt_path)
    return trainer, module


def test_exact_resume_mid_epoch(tmp_path) -> None:
    # 24 scenes / batch 4 = 6 steps per epoch: resume at step 4 (mid epoch 0), then cross into epoch 1
    straight, m_straight = _fit(tmp_path / "a", max_steps=8)
    _, m_first = _fit(tmp_path / "b", max_steps=8, stop_at=4)
    resumed_ckpt = tmp_path / "b" / "ckpt" / "step4.ckpt"
    assert resumed_ckpt.is_file() and load_checkpoint(resumed_ckpt)["global_step"] == 4
    resumed, m_resumed = _fit(tmp_path / "b", max_steps=8, ckpt_path=str(resumed_ckpt))
    assert straight.global_step == resumed.global_step == 8
    for (name, a), (_, b) in zip(m_straight.state_dict().items(), m_resumed.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    opt_a, opt_b = straight.optimizers[0], resumed.optimizers[0]
    assert opt_a.param_groups[0]["lr"] == opt_b.param_groups[0]["lr"]
    # the curve history survived the resume and the plot is next to the checkpoints
    curves = next(c for c in resumed.callbacks if isinstance(c, TrainingCurves))
    assert [s for s, _ in curves.loss] == list(range(1, 9))
    # a step checkpoint is written before that step's validation, so the resumed history starts after it
    assert [s for s, _ in curves.miou] == [8]
    straight_curves = next(c for c in straight.callbacks if isinstance(c, TrainingCurves))
    assert [s for s, _ in straight_curves.miou] == [4, 8]
    assert straight_curves.miou[-1] == curves.miou[-1]  # identical final validation mIoU
    assert 0.0 <= m_straight.last_scores["mIoU"] <= 1.0
    first, late = straight_curves.loss[0][1], sum(v for _, v in straight_curves.loss[-3:]) / 3
    assert late < first  # it learns
    assert (tmp_path / "b" / "ckpt" / "training_curves.png").stat().st_size > 1000
    last = load_checkpoint(tmp_path / "b" / "ckpt" / "last.ckpt")
    assert last["global_step"] == 8 and last["seg_meta"]["class_names"][0] == "background"
    assert len(last["seg_meta"]["palette"]) == 11 and last["seg_meta"]["mean"] == [0.485, 0.456, 0.406]


def test_atomic_save_keeps_previous_checkpoint(tmp_path, monkeypatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "model.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    before = path.read_bytes()

    def crash(obj, f, *args, **kwargs):
        f.write(b"partial garbage")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(ckpt_mod.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"]
    assert io.load_checkpoint(path)["step"] == 1


def test_load_checkpoint_errors_name_the_path(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        load_checkpoint(tmp_path / "missing.ckpt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="bad.ckpt"):
        load_checkpoint(bad)


def test_samplers_resume_and_shard() -> None:
    data = list(range(10))
    full = ResumableTrainSampler(data, seed=5)
    full.set_epoch(2)
    order = list(full)
    assert sorted(i for i, _ in order) == data
    resumed = ResumableTrainSampler(data, seed=5)
    resumed.start_at(2, 4)
    resumed.set_epoch(2)
    assert list(resumed) == order[4:]
    resumed.set_epoch(3)  # the skip applies to the resumed epoch only
    assert len(list(resumed)) == 10
    other = ResumableTrainSampler(data, seed=5)
    other.set_epoch(3)
    assert [i for i, _ in other] != [i for i, _ in order]
    # evaluation: 3 ranks over 10 items -> every item exactly once, no padding
    seen = [i for r in range(3) for i in EvalSampler(data, num_replicas=3, rank=r)]
    assert sorted(seen) == data
    assert [len(EvalSampler(data, num_replicas=3, rank=r)) for r in range(3)] == [4, 3, 3]


def test_datamodule_bad_input() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        SegDataModule(batch_size=0)
    dm = SegDataModule(
        "fashion_scenes",
        train_kwargs={"num_scenes": 2},
        val_kwargs={"num_scenes": 2},
        crop_size=32,
        batch_size=4,
        num_workers=0,
    )
    with pytest.raises(ValueError, match="fewer than batch_size"):
        dm.train_dataloader()
    assert dm.num_classes == 11 and dm.class_names[0] == "background"
