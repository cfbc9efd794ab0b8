"""Fault tolerance through the CLI, with 2 data workers per loader: SIGKILL a ``hamburger seg fit`` run between
two checkpoints, resume it, SIGTERM the resumed run (the whole process group, as SLURM does), resume again; the
final weights and every logged training loss equal those of an uninterrupted run, bit for bit."""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

from hamburger.training.checkpoint import load_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "src" / "hamburger" / "configs" / "seg" / "fashion_scenes.yaml"
# 40 scenes / batch 4 = 10 steps per epoch, 24 steps end in epoch 2; a checkpoint every 3 steps, so most of
# them and most kill points are in the middle of an epoch; validation (also with 2 workers) every 8 steps
STEPS = 24
ARGS = [
    f"--trainer.max_steps={STEPS}", "--trainer.val_check_interval=8", "--trainer.enable_progress_bar=false",
    "--trainer.log_every_n_steps=1", "--checkpoint.every_n_train_steps=3", "--curves.every_n_steps=1",
    "--data.train_kwargs={num_scenes: 40}", "--data.val_kwargs={num_scenes: 4}", "--data.batch_size=4",
    "--data.val_batch_size=2", "--data.crop_size=48", "--data.num_workers=2",
    "--model.model_kwargs={backbone_kwargs: {widths: [8, 16, 32], depth: 1}, channels: 16, ham_channels: 16, rank: 4}",
]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_orphans():
    """A failing test leaves no run behind."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.log.close()


def _fit(root: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hamburger", "seg", "fit", "--config", str(CONFIG),
           f"--trainer.default_root_dir={root}", *ARGS, *extra]  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    log = open(root / f"stderr{len(list(root.glob('stderr*')))}.txt", "w+")  # a file: a full pipe would block
    # a session of its own, so that a signal can go to the whole process group (main process and workers)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True, env=ENV, start_new_session=True)
    proc.log = log
    _STARTED.append(proc)
    return proc


def _stderr(proc: subprocess.Popen) -> str:
    proc.log.seek(0)
    return proc.log.read()


def _wait(proc: subprocess.Popen, timeout: float = 600) -> str:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return _stderr(proc)


def _finish(proc: subprocess.Popen) -> str:
    err = _wait(proc)
    assert proc.returncode == 0, err[-3000:]
    return err


def _step_files(folder: Path) -> dict[int, Path]:
    found = {}
    for path in folder.glob("step*.ckpt") if folder.is_dir() else ():
        match = re.fullmatch(r"step(\d+)\.ckpt", path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def _wait_for_step(proc: subprocess.Popen, folder: Path, step: int) -> None:
    """Until a step checkpoint >= ``step`` exists (the run goes on training meanwhile)."""
    deadline = time.time() + 400
    while time.time() < deadline:
        if any(s >= step for s in _step_files(folder)):
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before step {step}: {_stderr(proc)[-3000:]}")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"no checkpoint of step >= {step} within 400 s")


def _logged_losses(root: Path) -> dict[int, float]:
    """``train/loss`` by logger step over all CSV log versions; a step logged twice must have one value."""
    losses: dict[int, float] = {}
    for path in sorted((root / "logs").glob("version_*/metrics.csv")):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("train/loss"):
                    step, value = int(row["step"]), float(row["train/loss"])
                    assert losses.setdefault(step, value) == value, (path, step)
    return losses


def test_sigkill_and_sigterm_then_resume_is_exact(tmp_path: Path) -> None:
    reference = tmp_path / "uninterrupted"
    uninterrupted = _fit(reference)  # runs alongside the interrupted ones
    tmp_path = tmp_path / "interrupted"
    ckpt_dir = tmp_path / "checkpoints"
    # 1. SIGKILL once a checkpoint of epoch 1 exists (step 12 = epoch 1, batch 2): the work since is lost
    proc = _fit(tmp_path)
    _wait_for_step(proc, ckpt_dir, 12)
    os.killpg(proc.pid, signal.SIGKILL)
    _wait(proc)
    assert proc.returncode == -signal.SIGKILL
    # whatever moment the kill hit, every checkpoint file on disk is complete
    saved = sorted(p for p in ckpt_dir.iterdir() if p.suffix == ".ckpt")
    killed_at = [load_checkpoint(p)["global_step"] for p in saved]
    assert max(killed_at) >= 12 and all(s % 3 == 0 and 0 < s < STEPS for s in killed_at)
    resume_step = load_checkpoint(ckpt_dir / "last.ckpt")["global_step"]  # may lag behind the newest step file
    # a crash between writing a step checkpoint and deleting the previous one leaves an extra step file
    newest = max(_step_files(ckpt_dir).items())[1]
    shutil.copy(newest, ckpt_dir / "step0000003.ckpt")

    # 2. resume; SIGTERM to the process group after the checkpoint of step 18 exists (epoch 1)
    proc = _fit(tmp_path, "--ckpt_path", "last")
    _wait_for_step(proc, ckpt_dir, 18)
    os.killpg(proc.pid, signal.SIGTERM)
    err = _wait(proc, timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]  # 143: "terminated", not success
    assert "Restored all states" in err
    # it saved last.ckpt, or found that the step checkpoint just written already holds that step
    assert re.search(r"SIGTERM: (saved a resumable checkpoint of step \d+|\S+last\.ckpt already holds step)", err)
    term_step = load_checkpoint(ckpt_dir / "last.ckpt")["global_step"]
    assert 18 <= term_step < STEPS  # the steps after the last step checkpoint were saved too
    assert not (ckpt_dir / "step0000003.ckpt").exists()  # the stale file of the crash was removed on resume

    # 3. resume again and finish (into epoch 2)
    err = _finish(_fit(tmp_path, "--ckpt_path", "last"))
    _finish(uninterrupted)
    assert f"Restored all states from the checkpoint at {ckpt_dir / 'last.ckpt'}" in err
    final, expected = load_checkpoint(ckpt_dir / "last.ckpt"), load_checkpoint(reference / "checkpoints" / "last.ckpt")
    assert final["global_step"] == expected["global_step"] == STEPS
    assert final["state_dict"].keys() == expected["state_dict"].keys()
    for name, value in expected["state_dict"].items():
        torch.testing.assert_close(final["state_dict"][name], value, rtol=0, atol=0, msg=name)
    # every step's training loss: the curve history in the checkpoint and the CSV logs of all three runs
    history, expected_history = (
        final["callbacks"]["TrainingCurves"]["train"]["loss"],
        expected["callbacks"]["TrainingCurves"]["train"]["loss"],
    )
    assert [s for s, _ in history] == list(range(1, STEPS + 1)) and history == expected_history
    logged, expected_logged = _logged_losses(tmp_path), _logged_losses(reference)
    assert len(expected_logged) == STEPS
    assert {s: v for s, v in expected_logged.items() if s in logged} == logged
    assert all(s in logged for s in expected_logged if s >= resume_step)  # nothing after the resume is missing
    # one run in the folder: the newest step checkpoint (save_top_k=1) and last.ckpt, no -v1 names, no temp files
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["last.ckpt", f"step{STEPS:07d}.ckpt", "training_curves.png"]
