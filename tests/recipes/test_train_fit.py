"""Lightning training: exact resume (also with workers), atomic checkpoints, one run per checkpoint folder,
samplers and loaders, the training RNG stream, curves plot, loss going down."""

from __future__ import annotations

import os
import random
import shutil
import signal
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("lightning")

import lightning.pytorch as pl  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402

from hamburger.recipes.seg.datamodule import SegDataModule  # noqa: E402
from hamburger.recipes.seg.module import SegModule  # noqa: E402
from hamburger.training import checkpoint as ckpt_mod  # noqa: E402
from hamburger.training.checkpoint import AtomicCheckpointIO, RunCheckpoint, load_checkpoint  # noqa: E402
from hamburger.training.curves import TrainingCurves  # noqa: E402
from hamburger.training.rng import capture_rng_state, restore_rng_state  # noqa: E402
from hamburger.training.sampling import EvalSampler, ResumableLoader, ResumableTrainSampler  # noqa: E402

# a narrower tiny_ham keeps these Lightning runs to a few seconds
SMALL = {"backbone_kwargs": {"widths": [8, 16, 32], "depth": 1}, "channels": 16, "ham_channels": 16, "rank": 4}


def _datamodule(train_scenes: int = 24, num_workers: int = 0) -> SegDataModule:
    return SegDataModule(
        "fashion_scenes", train_kwargs={"num_scenes": train_scenes}, val_kwargs={"num_scenes": 6},
        crop_size=48, scale_range=(0.75, 1.25), batch_size=4, val_batch_size=4, num_workers=num_workers, seed=3,
    )  # fmt: skip


class _Names(pl.Callback):
    """The scene names of every training batch, by global step (the data order a run really trained on)."""

    def __init__(self) -> None:
        self.by_step: dict[int, list[str]] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.by_step[trainer.global_step] = list(batch["name"])


class _StopAt(pl.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True


def _fit(
    root, *, max_steps: int, stop_at: int | None = None, ckpt_path: str | None = None, num_workers: int = 0,
    checkpoint: ModelCheckpoint | None = None, extra: tuple[pl.Callback, ...] = (), **module_kw,
):  # fmt: skip
    pl.seed_everything(7, verbose=False)
    module = SegModule("tiny_ham", num_classes=11, model_kwargs=SMALL, optimizer="sgd", lr=0.02, **module_kw)
    callbacks = [
        checkpoint or ModelCheckpoint(dirpath=os.path.join(root, "ckpt"), filename="step{step}", every_n_train_steps=2,
                                      save_top_k=-1, save_last=True, auto_insert_metric_name=False),
        TrainingCurves(every_n_steps=1),
        _Names(),
    ]  # fmt: skip
    callbacks += list(extra)
    if stop_at is not None:
        callbacks.append(_StopAt(stop_at))
    trainer = pl.Trainer(
        default_root_dir=str(root), accelerator="cpu", devices=1, max_steps=max_steps, val_check_interval=4,
        check_val_every_n_epoch=None, num_sanity_val_steps=0, logger=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=callbacks, plugins=[AtomicCheckpointIO()],
    )  # fmt: skip
    trainer.fit(module, datamodule=_datamodule(num_workers=num_workers), ckpt_path=ckpt_path)
    return trainer, module


def _callback(trainer, kind):
    return next(c for c in trainer.callbacks if isinstance(c, kind))


def _assert_same_weights(a: pl.LightningModule, b: pl.LightningModule) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


@pytest.fixture(scope="module")
def straight8(tmp_path_factory):
    """An uninterrupted 8-step run without workers (the reference of the resume tests)."""
    return _fit(tmp_path_factory.mktemp("straight8"), max_steps=8)


def test_exact_resume_mid_epoch(tmp_path, straight8) -> None:
    # 24 scenes / batch 4 = 6 steps per epoch: resume at step 4 (mid epoch 0), then cross into epoch 1
    straight, m_straight = straight8
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


# ---------------------------------------------------------------- exact resume with worker processes
@pytest.fixture(scope="module")
def straight_workers(tmp_path_factory):
    """An uninterrupted 10-step run with 2 persistent workers per loader; checkpoints every 2 steps."""
    root = tmp_path_factory.mktemp("straight_workers")
    trainer, module = _fit(root, max_steps=10, num_workers=2)
    return root, trainer, module


@pytest.mark.parametrize("resume_step", [6, 8], ids=["epoch_boundary", "mid_epoch_1"])
def test_exact_resume_with_workers(straight_workers, tmp_path, resume_step: int) -> None:
    # 6 steps per epoch: step 6 is the last batch of epoch 0, step 8 is the middle of epoch 1
    root, straight, m_straight = straight_workers
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed, m_resumed = _fit(
            tmp_path, max_steps=10, num_workers=2, ckpt_path=str(root / "ckpt" / f"step{resume_step}.ckpt")
        )
    assert not [w for w in caught if "not resumable" in str(w.message)]  # Lightning sees a resumable loader
    assert resumed.global_step == 10
    _assert_same_weights(m_straight, m_resumed)
    assert dict(_callback(resumed, TrainingCurves).loss) == dict(_callback(straight, TrainingCurves).loss)
    curves_a, curves_b = _callback(straight, TrainingCurves), _callback(resumed, TrainingCurves)
    # the same validation scores (a validation due at the checkpoint's own step is not repeated on resume)
    assert dict(curves_b.miou).items() <= dict(curves_a.miou).items() and curves_a.miou[-1][0] == 8
    assert [s for s, _ in curves_b.miou] == ([4, 8] if resume_step < 8 else [4])
    # the resumed run trained on exactly the batches the uninterrupted one trained on after the checkpoint
    names_a, names_b = _callback(straight, _Names).by_step, _callback(resumed, _Names).by_step
    assert sorted(names_b) == list(range(resume_step + 1, 11))
    assert names_b == {step: names_a[step] for step in names_b}
    # ... and that order is the sampler's pure function of (seed, epoch): epoch 1 is epoch 1's permutation
    sampler = ResumableTrainSampler(list(range(24)), seed=3)
    orders = []
    for epoch, steps in ((0, range(1, 7)), (1, range(7, 11))):
        sampler.set_epoch(epoch)
        order = [index for index, _ in sampler]
        seen = [int(name.rsplit("_", 1)[1]) for step in steps for name in names_a[step]]
        assert seen == order[: len(seen)]
        orders.append(order)
    assert orders[0] != orders[1]


def test_loader_resumes_with_workers_when_the_epoch_is_set_after_iter() -> None:
    # Lightning calls iter() on the train loader before set_epoch(); workers must not prefetch epoch 0 then
    def run(state=None, epoch=1, take=None):
        loader = ResumableLoader(list(range(20)), batch_size=3, seed=5, num_workers=2)
        if state is not None:
            loader.load_state_dict(state)
        it = iter(loader)
        loader.sampler.set_epoch(epoch)
        batches = [next(it).tolist() for _ in range(take)] if take is not None else [b.tolist() for b in it]
        return batches, loader.state_dict()

    sampler = ResumableTrainSampler(list(range(20)), seed=5)
    sampler.set_epoch(1)
    order = [i for i, _ in sampler]
    full = [order[k : k + 3] for k in range(0, 18, 3)]
    first, state = run(take=2)
    assert first == full[:2] and state["epoch"] == 1 and state["samples"] == 6
    rest, state = run(state)
    assert rest == full[2:] and state["samples"] == 18
    after, _ = run(state, epoch=2)  # a completely delivered epoch: the next one starts from its beginning
    sampler.set_epoch(2)
    order2 = [i for i, _ in sampler]
    assert after == [order2[k : k + 3] for k in range(0, 18, 3)] and after != full


def test_eval_loader_leaves_the_global_rng_alone() -> None:
    from torch.utils.data import DataLoader

    from hamburger.training.sampling import eval_loader

    data = list(range(6))
    before = torch.get_rng_state()
    assert [b.tolist() for b in eval_loader(data, batch_size=4, num_workers=2)] == [[0, 1, 2, 3], [4, 5]]
    assert torch.equal(torch.get_rng_state(), before)
    list(DataLoader(data, batch_size=4, num_workers=2))  # a plain loader draws its workers' seed from it
    assert not torch.equal(torch.get_rng_state(), before)


def test_workers_ignore_sigterm() -> None:
    from hamburger.training.sampling import worker_init

    old = signal.getsignal(signal.SIGTERM)
    try:
        worker_init(0)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, old)


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path) -> None:
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.randn()  # a cached Gaussian is part of NumPy's state
    torch.save({"rng_state": capture_rng_state()}, tmp_path / "rng.pt")
    expected = torch.rand(4), np.random.randn(4), random.random()
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng_state"])
    got = torch.rand(4), np.random.randn(4), random.random()
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


# ---------------------------------------------------------------- one run per checkpoint folder
def _run_ckpt(root, *, every: int = 2, **kwargs) -> RunCheckpoint:
    return RunCheckpoint(dirpath=os.path.join(root, "ckpt"), filename="step{step:07d}", every_n_train_steps=every,
                         save_top_k=1, save_last=True, auto_insert_metric_name=False, **kwargs)  # fmt: skip


def test_resume_prunes_stale_step_checkpoints_and_never_versions(tmp_path) -> None:
    ckpt = tmp_path / "ckpt"
    _fit(tmp_path, max_steps=4, checkpoint=_run_ckpt(tmp_path))
    assert sorted(p.name for p in ckpt.glob("*.ckpt")) == ["last.ckpt", "step0000004.ckpt"]
    # what crashes leave: an older step file whose deletion never happened, a newer one written just before
    # the kill (last.ckpt still at step 4); and files that are not ours
    shutil.copy(ckpt / "step0000004.ckpt", ckpt / "step0000002.ckpt")
    shutil.copy(ckpt / "step0000004.ckpt", ckpt / "step0000006.ckpt")
    shutil.copy(ckpt / "step0000004.ckpt", ckpt / "mine.ckpt")
    (ckpt / "notes.txt").write_text("not a checkpoint")
    trainer, _ = _fit(tmp_path, max_steps=8, ckpt_path="last", checkpoint=_run_ckpt(tmp_path))
    assert trainer.global_step == 8
    names = sorted(os.listdir(ckpt))
    assert names == ["last.ckpt", "mine.ckpt", "notes.txt", "step0000008.ckpt", "training_curves.png"]
    assert load_checkpoint(ckpt / "last.ckpt")["global_step"] == 8
    assert load_checkpoint(ckpt / "step0000008.ckpt")["global_step"] == 8


def test_fresh_fit_into_a_used_folder_is_refused_unless_overwrite(tmp_path) -> None:
    ckpt = tmp_path / "ckpt"
    _fit(tmp_path, max_steps=4, checkpoint=_run_ckpt(tmp_path))
    before = (ckpt / "last.ckpt").read_bytes()
    with pytest.raises(ValueError, match=r"already holds checkpoints.*--ckpt_path last.*overwrite") as err:
        _fit(tmp_path, max_steps=2, checkpoint=_run_ckpt(tmp_path))
    assert str(ckpt) in str(err.value) and "\n" not in str(err.value)
    assert (ckpt / "last.ckpt").read_bytes() == before
    assert sorted(p.name for p in ckpt.glob("*.ckpt")) == ["last.ckpt", "step0000004.ckpt"]
    (ckpt / "notes.txt").write_text("not a checkpoint")
    trainer, _ = _fit(tmp_path, max_steps=2, checkpoint=_run_ckpt(tmp_path, overwrite=True))
    assert trainer.global_step == 2  # a new run from step 0; the old run's step 4 file is gone
    assert sorted(p.name for p in ckpt.iterdir() if p.suffix != ".png") == [
        "last.ckpt",
        "notes.txt",
        "step0000002.ckpt",
    ]
    assert load_checkpoint(ckpt / "last.ckpt")["global_step"] == 2


# ---------------------------------------------------------------- SIGTERM
class _SigtermAt(pl.Callback):
    """Send this process SIGTERM at the end of training step ``step``, or during its validation."""

    def __init__(self, step: int, *, during_validation: bool) -> None:
        self.step, self.during_validation, self.sent = step, during_validation, False

    def _send(self, trainer) -> None:
        if trainer.global_step == self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)

    def on_train_batch_end(self, trainer, *args) -> None:
        if not self.during_validation:
            self._send(trainer)

    def on_validation_batch_start(self, trainer, *args) -> None:
        if self.during_validation and not trainer.sanity_checking:
            self._send(trainer)


@pytest.mark.parametrize(("step", "during_validation"), [(5, False), (4, True)], ids=["training", "validation"])
def test_sigterm_saves_a_resumable_checkpoint_and_exits_143(tmp_path, straight8, step, during_validation) -> None:
    # checkpoints every 3 steps and validation every 4: the SIGTERM steps 5 and 4 have no step checkpoint
    straight, m_straight = straight8
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stop:
        _fit(tmp_path, max_steps=8, checkpoint=_run_ckpt(tmp_path, every=3),
             extra=(_SigtermAt(step, during_validation=during_validation),))  # fmt: skip
    assert stop.value.code == 143  # 128 + SIGTERM: a scheduler reads "terminated", not success
    assert signal.getsignal(signal.SIGTERM) == handler  # Lightning put the handler back
    last = load_checkpoint(tmp_path / "ckpt" / "last.ckpt")
    assert last["global_step"] == step
    resumed, m_resumed = _fit(tmp_path, max_steps=8, ckpt_path="last", checkpoint=_run_ckpt(tmp_path, every=3))
    assert resumed.global_step == 8
    _assert_same_weights(m_straight, m_resumed)
    assert dict(_callback(resumed, TrainingCurves).loss) == dict(_callback(straight, TrainingCurves).loss)
    assert dict(_callback(resumed, TrainingCurves).miou)[8] == dict(_callback(straight, TrainingCurves).miou)[8]
